"""Request-shape contracts: every hosted model the README names runs against the mock with the body its
vendor documents (the mock refuses, with a 400, what the vendor would refuse)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from skuforge.config import Settings
from skuforge.engine.packing import pack_request
from skuforge.providers import get_provider
from skuforge.providers.base import Message, Provider, Request
from skuforge.providers.preflight import preflight
from skuforge.recipes.loader import load_recipe
from skuforge.testing.mock_openai import MockConfig, MockServer

README = Path(__file__).resolve().parents[2] / "README.md"
HOSTED = re.compile(r"`((?:openai|anthropic|deepseek|qwen|gemini):[A-Za-z0-9._-]+)`")
FLAVOR = {
    "openai": "openai",
    "deepseek": "deepseek",
    "qwen": "qwen",
    "gemini": "gemini",
    "anthropic": "openai",
}
BASE_ENV = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "deepseek": "DEEPSEEK_BASE_URL",
    "qwen": "DASHSCOPE_BASE_URL",
    "gemini": "GEMINI_BASE_URL",
}
ROW = {
    "sku": "K-1",
    "title": "Acme 304 stainless steel electric kettle 1.7 L, black",
    "description": "A 1.7 litre kettle with a stainless steel body and a black handle.",
    "brand": "",
    "color": "",
    "material": "",
    "category": "Kitchen",
}


def readme_models() -> list[str]:
    return sorted(set(HOSTED.findall(README.read_text(encoding="utf-8"))))


def recipe_request(name: str) -> Request:
    recipe = load_recipe(name, [])
    step = recipe.steps[0]
    params = recipe.resolve_params({})
    request = step.build_request(ROW, {}, step.variants(params)[0], params, row_label="1")
    assert request is not None
    return request


def requests() -> dict[str, Request]:
    attributes = recipe_request("attributes")
    return {
        "attributes": attributes,
        "selling_points": recipe_request("selling_points"),
        "packed": pack_request([attributes, attributes], ["1", "2"]),
        "text": Request(messages=[Message(role="user", content="Describe a steel kettle in one line.")]),
    }


def test_the_readme_names_a_current_model_of_every_hosted_vendor() -> None:
    names = readme_models()
    assert {n.partition(":")[0] for n in names} == set(BASE_ENV)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> tuple[Provider, MockServer]:
    name: str = request.param
    vendor, _, model = name.partition(":")
    with MockServer(MockConfig(flavor=FLAVOR[vendor], models=[model])) as server:  # type: ignore[arg-type]
        monkeypatch.setenv(BASE_ENV[vendor], server.base if vendor == "anthropic" else server.url)
        yield get_provider(name, Settings()), server


def run_all(provider: Provider) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with provider:
            assert await preflight(provider) == []
            return {kind: (await provider.generate(r)).text for kind, r in requests().items()}

    return asyncio.run(go())


@pytest.mark.parametrize("served", readme_models(), indirect=True)
def test_every_readme_model_runs_against_the_mock_with_its_vendors_body(
    served: tuple[Provider, MockServer],
) -> None:
    provider, server = served
    answers = run_all(provider)  # a body the vendor refuses would be a 400 here (PermanentError)
    for kind, request in requests().items():
        if request.json_schema is not None:
            jsonschema.validate(orjson.loads(answers[kind]), request.json_schema)
    assert server.stats.snapshot()["faults"] == {}
    assert_body_shape(provider, requests()["attributes"])


def assert_body_shape(provider: Provider, request: Request) -> None:
    body: dict[str, Any] = provider.body(request)  # type: ignore[attr-defined]
    vendor = provider.name.partition(":")[0]
    if vendor == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert body["messages"][-1]["role"] == "user"
    elif vendor == "openai":
        spec = body["response_format"]["json_schema"]
        assert spec["strict"] is True and spec["schema"]["additionalProperties"] is False
        assert "max_tokens" not in body and "temperature" not in body  # a GPT-5 model takes neither
    elif vendor == "gemini":
        assert body["response_format"]["type"] == "json_schema"
        assert "additionalProperties" not in orjson.dumps(body["response_format"]).decode()
    else:  # deepseek, qwen: JSON mode, the schema as an instruction after the data
        assert body["response_format"] == {"type": "json_object"}
        assert body.get("thinking", {"type": "disabled"}) == {"type": "disabled"}
        assert body["messages"][0]["content"] == request.messages[0].content
        assert "JSON Schema" in body["messages"][-1]["content"]
