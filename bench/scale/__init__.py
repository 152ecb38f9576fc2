"""The scale suite: skuforge's client against a mock OpenAI server in its own process, beside a reference
client (`openai.AsyncOpenAI` + a semaphore), on the scenarios of issue 8. Run `python -m bench scale`."""
