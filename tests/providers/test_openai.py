"""The OpenAI-compatible client against the real mock server over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
import pytest

from skuforge.errors import PermanentError, RateLimitError, TransientError
from skuforge.providers.base import Capabilities, Message, Request, Result
from skuforge.providers.openai import OpenAIProvider
from skuforge.testing.mock_openai import MockServer

KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"
SCHEMA = {
    "type": "object",
    "properties": {
        "brand": {"type": "string"},
        "color": {"enum": ["black", "white", "silver"]},
        "selling_points": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 5},
    },
    "required": ["brand", "color", "selling_points"],
    "additionalProperties": False,
}
ROW = "Product data:\nbrand: Acme\ntitle: Insulated steel water bottle 750ml\ncolor: silver"


def _request(content: str = ROW, **kw: Any) -> Request:
    return Request(messages=[Message(role="user", content=content)], **kw)


def _provider(server: MockServer, **kw: Any) -> OpenAIProvider:
    caps = kw.pop("capabilities", Capabilities(json_schema=True, json_mode=True, streaming=True))
    return OpenAIProvider("gpt-4o-mini", base_url=server.url, api_key=KEY, capabilities=caps, **kw)


def _call(server: MockServer, request: Request, **kw: Any) -> Result:
    async def go() -> Result:
        async with _provider(server, **kw) as provider:
            return await provider.generate(request)

    return asyncio.run(go())


def _fault(server: MockServer, request: Request | None = None) -> Exception:
    with pytest.raises(Exception) as info:
        _call(server, request or _request())
    return info.value


def test_text_answer_has_usage_request_id_and_finish_reason(mock: MockServer) -> None:
    mock.configure(cached_share=0.5)
    result = _call(mock, _request())
    assert result.text and result.model == "openai:gpt-4o-mini"
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0
    assert result.usage.cached_input_tokens == result.usage.input_tokens // 2
    assert result.request_id and result.request_id.startswith("req_")
    assert result.finish_reason == "stop"
    assert result.latency_s > 0


def test_json_schema_answer_is_schema_valid_and_grounded(mock: MockServer) -> None:
    result = _call(mock, _request(json_schema=SCHEMA))
    data = orjson.loads(result.text)
    jsonschema.validate(data, SCHEMA)
    assert data["brand"] == "Acme"


def test_json_mode_answer_is_a_json_object(mock: MockServer) -> None:
    result = _call(mock, _request(json_mode=True))
    assert isinstance(orjson.loads(result.text), dict)


def test_schema_goes_after_the_data_when_the_server_only_has_json_mode(mock: MockServer) -> None:
    provider = _provider(mock, capabilities=Capabilities(json_mode=True))
    request = Request(
        messages=[Message(role="system", content="You write copy."), Message(role="user", content=ROW)],
        json_schema=SCHEMA,
    )
    body = provider.body(request)
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0] == {"role": "system", "content": "You write copy."}  # a cacheable prefix
    assert body["messages"][-1]["content"].startswith(ROW)
    assert '"selling_points"' in body["messages"][-1]["content"]
    jsonschema.validate(
        orjson.loads(_call(mock, request, capabilities=Capabilities(json_mode=True)).text), SCHEMA
    )


def test_json_schema_body_is_strict_for_openai_and_plain_for_other_servers(mock: MockServer) -> None:
    strict = Capabilities(json_schema=True, schema_dialect="openai-strict")
    body = _provider(mock, capabilities=strict).body(_request(json_schema=SCHEMA, max_tokens=50, seed=3))
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"]["additionalProperties"] is False
    assert body["max_tokens"] == 50 and body["seed"] == 3
    plain = _provider(mock).body(_request(json_schema=SCHEMA))
    assert plain["response_format"]["json_schema"] == {"name": "output", "schema": SCHEMA}


def test_max_tokens_cuts_a_text_answer_with_finish_reason_length(mock: MockServer) -> None:
    mock.configure(output_tokens=200)
    result = _call(mock, _request(max_tokens=10))
    assert result.finish_reason == "length"
    assert result.usage.output_tokens == 10


def test_random_429_is_a_rate_limit_error_with_retry_after_header(mock: MockServer) -> None:
    mock.configure(p429=1.0, retry_after_s=2.5)
    error = _fault(mock)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == pytest.approx(2.5)


def test_429_without_retry_after_uses_x_ratelimit_reset(mock: MockServer) -> None:
    mock.configure(p429=1.0, retry_after_s=0.02, send_retry_after=False)
    error = _fault(mock)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == pytest.approx(0.02)


def test_rpm_limit_answers_429_with_reset_headers(mock: MockServer) -> None:
    mock.configure(rpm=1, send_retry_after=False)
    _call(mock, _request("first"))
    error = _fault(mock, _request("second"))
    assert isinstance(error, RateLimitError)
    assert error.retry_after is not None and 30 < error.retry_after <= 60
    assert mock.stats.faults["rate_limit"] == 1


def test_server_error_is_transient(mock: MockServer) -> None:
    mock.configure(p500=1.0)
    error = _fault(mock)
    assert isinstance(error, TransientError) and not isinstance(error, RateLimitError)
    assert error.status == 500


def test_dropped_connection_is_transient(mock: MockServer) -> None:
    mock.configure(pdrop=1.0)
    error = _fault(mock)
    assert type(error) is TransientError
    assert "connection failed" in error.message


def test_malformed_body_is_transient(mock: MockServer) -> None:
    mock.configure(pmalformed=1.0)
    error = _fault(mock)
    assert type(error) is TransientError
    assert "malformed response body" in error.message


def test_hang_is_ended_by_the_session_timeout_as_transient(mock: MockServer) -> None:
    mock.configure(phang=1.0)
    error = _fault_with(mock, total_timeout_s=0.3)
    assert type(error) is TransientError


def _fault_with(server: MockServer, **kw: Any) -> Exception:
    with pytest.raises(Exception) as info:
        _call(server, _request(), **kw)
    return info.value


def test_401_is_permanent_names_the_env_var_and_never_the_key(mock: MockServer) -> None:
    mock.configure(api_key="sk-the-right-one")
    error = _fault_with(mock, api_key_env="OPENAI_API_KEY")
    assert isinstance(error, PermanentError) and error.status == 401
    assert "OPENAI_API_KEY" in str(error)
    assert KEY not in str(error) and KEY[:16] not in str(error) and KEY not in repr(error.args)


def test_404_for_a_wrong_path_is_permanent(mock: MockServer) -> None:
    async def go() -> None:
        async with OpenAIProvider("gpt-4o-mini", base_url=mock.base + "/nope") as provider:
            await provider.generate(_request())

    with pytest.raises(PermanentError) as info:
        asyncio.run(go())
    assert info.value.status == 404


def test_connection_refused_is_transient() -> None:
    async def go() -> None:
        async with OpenAIProvider("m", base_url="http://127.0.0.1:9/v1") as provider:
            await provider.generate(_request())

    with pytest.raises(TransientError):
        asyncio.run(go())


def test_streaming_yields_deltas_that_join_to_the_answer(mock: MockServer) -> None:
    async def go() -> tuple[list[str], str]:
        async with _provider(mock) as provider:
            pieces = [p async for p in provider.stream(_request())]
            mock.reset()
            whole = await provider.generate(_request())
            return pieces, whole.text

    pieces, whole = asyncio.run(go())
    assert len(pieces) > 3
    assert "".join(pieces) == whole


def test_a_stream_cut_midway_is_transient(mock: MockServer) -> None:
    mock.configure(pdrop=1.0)

    async def go() -> list[str]:
        async with _provider(mock) as provider:
            return [p async for p in provider.stream(_request())]

    with pytest.raises(TransientError):
        asyncio.run(go())


def test_one_provider_serves_many_concurrent_requests_on_one_session(mock: MockServer) -> None:
    mock.configure(latency_ms=300)  # long enough for all 200 to be sent before the first answers

    async def go() -> list[Result]:
        async with _provider(mock) as provider:
            results = await asyncio.gather(*(provider.generate(_request(f"row {i}")) for i in range(200)))
            assert provider.session() is provider.session()
            return results

    results = asyncio.run(go())
    assert len({r.request_id for r in results}) == 200
    assert mock.stats.max_concurrent > 50


def test_repr_shows_no_key(mock: MockServer) -> None:
    provider = _provider(mock)
    assert KEY not in repr(provider) and KEY not in str(vars(provider))
