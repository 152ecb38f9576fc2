"""The Anthropic Messages client against the mock server's /v1/messages over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
import pytest

from skuforge.errors import PermanentError, RateLimitError, TransientError
from skuforge.providers.anthropic import AnthropicProvider
from skuforge.providers.base import Message, Request, Result
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


def _call(server: MockServer, request: Request = REQUEST, **kw: Any) -> Result:
    async def go() -> Result:
        async with AnthropicProvider("claude-3-5-haiku", base_url=server.base, api_key=KEY, **kw) as provider:
            return await provider.generate(request)

    return asyncio.run(go())


def test_json_answer_is_prefilled_schema_valid_and_grounded(mock: MockServer) -> None:
    result = _call(mock)
    data = orjson.loads(result.text)
    jsonschema.validate(data, SCHEMA)
    assert data == {"brand": "Nordlicht", "weight_kg": 1.25}
    assert result.finish_reason == "end_turn"
    assert result.request_id and result.model == "anthropic:claude-3-5-haiku"


def test_system_prompt_travels_apart_with_the_schema_instruction() -> None:
    body = AnthropicProvider("claude-3-5-haiku").body(REQUEST)
    assert body["system"].startswith("You extract product attributes.")
    assert '"weight_kg"' in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert body["messages"][-1]["content"] == "{"
    assert body["max_tokens"] > 0


def test_usage_counts_cache_reads_as_cached_input(mock: MockServer) -> None:
    mock.configure(cached_share=0.5)
    usage = _call(mock).usage
    assert usage.cached_input_tokens > 0
    assert usage.input_tokens > usage.cached_input_tokens
    assert usage.output_tokens > 0


def test_text_answer_without_json_has_no_prefill(mock: MockServer) -> None:
    plain = Request(messages=[Message(role="user", content="Write about a camping lantern")])
    result = _call(mock, plain)
    assert not result.text.startswith("{")


def test_streaming_yields_the_prefill_and_the_deltas(mock: MockServer) -> None:
    async def go() -> list[str]:
        async with AnthropicProvider("claude-3-5-haiku", base_url=mock.base, api_key=KEY) as provider:
            return [p async for p in provider.stream(REQUEST)]

    pieces = asyncio.run(go())
    assert pieces[0] == "{" and len(pieces) >= 2
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
