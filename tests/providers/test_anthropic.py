"""The Anthropic Messages client against the mock server's /v1/messages over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
import pytest

from skuforge.errors import PermanentError, RateLimitError, TransientError
from skuforge.providers.anthropic import AnthropicProvider
from skuforge.providers.base import Capabilities, Message, Request, Result
from skuforge.testing.mock_openai import MockServer

KEY = "sk-ant-test-0123456789abcdefghijklmnop"
SCHEMA = {
    "type": "object",
    "properties": {"brand": {"type": "string"}, "weight_kg": {"type": "number"}},
    "required": ["brand", "weight_kg"],
}
REQUEST = Request(
    messages=[
        Message(role="system", content="You extract product attributes."),
        Message(role="user", content="brand: Nordlicht\nweight_kg: 1.25\ntitle: Camping lantern"),
    ],
    json_schema=SCHEMA,
)


STRUCTURED = Capabilities(json_schema=True, json_mode=True, streaming=True, schema_dialect="anthropic")


def _provider(server: MockServer, **kw: Any) -> AnthropicProvider:
    kw.setdefault("capabilities", STRUCTURED)
    return AnthropicProvider("claude-haiku-4-5", base_url=server.base, api_key=KEY, **kw)


def _call(server: MockServer, request: Request = REQUEST, **kw: Any) -> Result:
    async def go() -> Result:
        async with _provider(server, **kw) as provider:
            return await provider.generate(request)

    return asyncio.run(go())


def test_json_answer_comes_from_structured_outputs_schema_valid_and_grounded(mock: MockServer) -> None:
    result = _call(mock)
    data = orjson.loads(result.text)
    jsonschema.validate(data, SCHEMA)
    assert data == {"brand": "Nordlicht", "weight_kg": 1.25}
    assert result.finish_reason == "end_turn"
    assert result.request_id and result.model == "anthropic:claude-haiku-4-5"


def test_the_body_asks_for_json_with_output_config_and_never_prefills() -> None:
    body = AnthropicProvider("claude-haiku-4-5", capabilities=STRUCTURED).body(REQUEST)
    schema = body["output_config"]["format"]["schema"]
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert schema["additionalProperties"] is False and schema["required"] == ["brand", "weight_kg"]
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["max_tokens"] > 0


def test_the_system_prompt_is_one_cached_block_apart_from_the_turns() -> None:
    body = AnthropicProvider("claude-haiku-4-5", capabilities=STRUCTURED).body(REQUEST)
    assert body["system"] == [
        {"type": "text", "text": "You extract product attributes.", "cache_control": {"type": "ephemeral"}}
    ]


def test_without_structured_outputs_the_schema_goes_in_the_last_user_turn(mock: MockServer) -> None:
    plain_json = Capabilities(json_mode=True, streaming=True)
    body = AnthropicProvider("claude-3-5-haiku", capabilities=plain_json).body(REQUEST)
    assert "output_config" not in body and body["messages"][-1]["role"] == "user"
    assert '"weight_kg"' in body["messages"][-1]["content"]
    assert body["system"][0]["text"] == "You extract product attributes."  # the prefix stays the same
    data = orjson.loads(_call(mock, capabilities=plain_json).text)
    jsonschema.validate(data, SCHEMA)


def test_usage_counts_cache_reads_as_cached_input(mock: MockServer) -> None:
    mock.configure(cached_share=0.5)
    usage = _call(mock).usage
    assert usage.cached_input_tokens > 0
    assert usage.input_tokens > usage.cached_input_tokens
    assert usage.output_tokens > 0


def test_the_second_request_reads_the_system_prompt_from_the_prompt_cache(mock: MockServer) -> None:
    mock.configure(prefix_cache=True)
    first, second = _call(mock).usage, _call(mock).usage
    assert first.cached_input_tokens == 0 and first.cache_write_tokens > 0
    assert second.cached_input_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    assert first.input_tokens == second.input_tokens


def test_text_answer_without_json_is_text(mock: MockServer) -> None:
    plain = Request(messages=[Message(role="user", content="Write about a camping lantern")])
    result = _call(mock, plain)
    assert not result.text.startswith("{")


def test_an_assistant_prefill_is_refused_as_claude_4_6_refuses_it(mock: MockServer) -> None:
    prefilled = Request(
        messages=[Message(role="user", content="Describe a lantern"), Message(role="assistant", content="{")]
    )
    with pytest.raises(PermanentError) as info:
        _call(mock, prefilled)
    assert info.value.status == 400 and "prefill" in info.value.message


def test_streaming_yields_the_deltas_of_the_json_answer(mock: MockServer) -> None:
    async def go() -> list[str]:
        async with _provider(mock) as provider:
            return [p async for p in provider.stream(REQUEST)]

    pieces = asyncio.run(go())
    assert pieces and all(pieces)
    jsonschema.validate(orjson.loads("".join(pieces)), SCHEMA)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"p429": 1.0}, RateLimitError),
        ({"p500": 1.0}, TransientError),
        ({"pdrop": 1.0}, TransientError),
        ({"pmalformed": 1.0}, TransientError),
    ],
)
def test_faults_map_to_the_same_errors_as_openai(
    mock: MockServer, fault: dict[str, float], error: type
) -> None:
    mock.configure(**fault)
    with pytest.raises(error):
        _call(mock)


def test_wrong_key_is_permanent_and_never_printed(mock: MockServer) -> None:
    mock.configure(api_key="the-right-key")
    with pytest.raises(PermanentError) as info:
        _call(mock)
    assert info.value.status == 401
    assert "ANTHROPIC_API_KEY" in str(info.value)
    assert KEY not in str(info.value) and KEY[:16] not in str(info.value)
