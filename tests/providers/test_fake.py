"""The fake provider: schema-valid, grounded, deterministic answers with lengths that vary."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
import pytest

from skuforge.errors import PermanentError, TransientError
from skuforge.providers.base import Message, Request, Result
from skuforge.providers.fake import FakeOptions, FakeProvider, fake_answer

ROW = (
    "Product data:\n"
    "brand: Acme\n"
    "title: Insulated stainless steel water bottle 750ml, leak-proof lid\n"
    "material: stainless steel\n"
    "price: 24.90\n"
    "capacity_ml: 750"
)
SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "brand": {"type": "string"},
            "material": {"type": "string", "maxLength": 30},
            "capacity_ml": {"type": "integer", "minimum": 1},
            "color": {"type": ["string", "null"], "enum": ["black", "white", None]},
        },
        "required": ["brand", "material", "capacity_ml", "color"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "selling_points": {
                "type": "array",
                "minItems": 3,
                "maxItems": 5,
                "uniqueItems": True,
                "items": {"type": "string", "minLength": 10, "maxLength": 80},
            },
        },
        "required": ["selling_points"],
    },
    {
        "type": "object",
        "$defs": {
            "qa": {
                "type": "object",
                "properties": {"q": {"type": "string"}, "a": {"type": "string"}},
                "required": ["q", "a"],
            }
        },
        "properties": {
            "faq": {"type": "array", "items": {"$ref": "#/$defs/qa"}},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "in_stock": {"type": "boolean"},
            "updated": {"type": "string", "format": "date"},
            "tags": {"anyOf": [{"type": "null"}, {"type": "array", "items": {"type": "string"}}]},
        },
        "required": ["faq", "score", "in_stock"],
    },
    {
        "allOf": [
            {"type": "object", "properties": {"title": {"type": "string", "maxLength": 60}}},
            {"required": ["title"]},
        ]
    },
]


def _request(content: str = ROW, **kw: Any) -> Request:
    return Request(messages=[Message(role="user", content=content)], **kw)


def _gen(provider: FakeProvider, request: Request) -> Result:
    return asyncio.run(provider.generate(request))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_json_answers_validate_against_the_schema(schema: dict[str, Any]) -> None:
    result = _gen(FakeProvider(), _request(json_schema=schema))
    jsonschema.validate(orjson.loads(result.text), schema)


def test_fields_named_in_the_data_are_answered_from_the_data() -> None:
    data = orjson.loads(_gen(FakeProvider(), _request(json_schema=SCHEMAS[0])).text)
    assert data["brand"] == "Acme"
    assert data["material"] == "stainless steel"
    assert data["capacity_ml"] == 750


def test_strings_are_built_from_words_of_the_product_data() -> None:
    data = orjson.loads(_gen(FakeProvider(), _request(json_schema=SCHEMAS[1])).text)
    source = ROW.lower()
    for point in data["selling_points"]:
        assert all(word.lower().strip(",") in source for word in point.split())


def test_answers_are_deterministic_and_the_seed_changes_them() -> None:
    request = _request(json_schema=SCHEMAS[1])
    first, again = _gen(FakeProvider(), request), _gen(FakeProvider(), request)
    other = _gen(FakeProvider(seed=7), request)
    assert first.text == again.text and first.usage == again.usage
    assert other.text != first.text


def test_output_lengths_vary_between_requests() -> None:
    provider = FakeProvider()
    lengths = {_gen(provider, _request(f"{ROW}\nsku: A{i}")).usage.output_tokens for i in range(20)}
    assert len(lengths) > 5


def test_usage_estimates_input_and_output_tokens() -> None:
    result = _gen(FakeProvider(), _request())
    assert result.usage.input_tokens > 10 and result.usage.output_tokens > 0


def test_chinese_data_yields_chinese_words() -> None:
    text = fake_answer([("user", "品牌：象印\n商品：不锈钢保温杯 750毫升")], schema={"type": "string"})
    assert any("\u4e00" <= ch <= "\u9fff" for ch in orjson.loads(text))


def test_script_answers_and_raises_in_order_then_falls_back_to_generation() -> None:
    provider = FakeProvider(script=["first", TransientError("boom"), PermanentError("bad")])
    assert _gen(provider, _request()).text == "first"
    with pytest.raises(TransientError):
        _gen(provider, _request())
    with pytest.raises(PermanentError):
        _gen(provider, _request())
    assert _gen(provider, _request()).text
    assert provider.calls == 4 and len(provider.requests) == 4


def test_fail_rate_faults_some_attempts_and_a_retry_can_succeed() -> None:
    provider = FakeProvider(fail_rate=0.5)
    failures = 0
    for i in range(40):
        for _attempt in range(10):
            try:
                _gen(provider, _request(f"row {i}"))
                break
            except TransientError:
                failures += 1
        else:
            pytest.fail(f"row {i} never succeeded")
    assert 5 < failures < 80


def test_malformed_rate_returns_broken_json() -> None:
    result = _gen(FakeProvider(malformed_rate=1.0), _request(json_schema=SCHEMAS[0]))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(result.text)


def test_echo_returns_the_user_message() -> None:
    assert _gen(FakeProvider.from_variant("echo"), _request("say this")).text == "say this"


def test_options_reject_unknown_keys() -> None:
    with pytest.raises(ValueError):
        FakeOptions(fail_rat=0.1)  # type: ignore[call-arg]


def test_stream_yields_the_answer_in_pieces() -> None:
    async def go() -> list[str]:
        return [p async for p in FakeProvider().stream(_request())]

    pieces = asyncio.run(go())
    assert len(pieces) > 1
    assert "".join(pieces) == _gen(FakeProvider(), _request()).text
