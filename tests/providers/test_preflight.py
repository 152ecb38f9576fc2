"""Fail fast: model, key and base URL are checked with one cheap request before anything is sent."""

from __future__ import annotations

import asyncio
import socket

import pytest

from skuforge.calls import build_client
from skuforge.config import Limits, Settings
from skuforge.errors import ConfigError, ProviderUnavailable
from skuforge.providers.anthropic import AnthropicProvider
from skuforge.providers.base import Capabilities, Provider
from skuforge.providers.openai import OpenAIProvider
from skuforge.providers.preflight import preflight, preflight_model
from skuforge.testing.mock_openai import MockConfig, MockServer

KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"


def check(provider: Provider) -> list[str]:
    async def go() -> list[str]:
        async with provider:
            return await preflight(provider)

    return asyncio.run(go())


def openai(base: str, model: str = "gpt-5-mini", **kw: object) -> OpenAIProvider:
    return OpenAIProvider(
        model, base_url=base, api_key=KEY, api_key_env="OPENAI_API_KEY", base_url_env="OPENAI_BASE_URL", **kw
    )  # type: ignore[arg-type]


@pytest.fixture
def server() -> MockServer:  # type: ignore[misc]
    with MockServer(MockConfig(models=["gpt-5-mini", "gpt-5-nano", "claude-haiku-4-5"])) as mock:
        yield mock


def test_a_model_the_server_lists_passes_with_one_request(server: MockServer) -> None:
    assert check(openai(server.url)) == []
    assert server.stats.snapshot()["endpoints"] == {"/v1/models": 1}


def test_a_model_the_server_does_not_offer_is_refused_with_close_names(server: MockServer) -> None:
    with pytest.raises(ConfigError) as info:
        check(openai(server.url, "gpt-5-mnii"))
    assert f"Model 'gpt-5-mnii' is not offered by {server.url} ($OPENAI_BASE_URL)" in info.value.message
    assert "Did you mean 'gpt-5-mini'?" in info.value.message


def test_an_unreachable_base_url_is_unavailable_before_anything_is_sent() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with pytest.raises(ProviderUnavailable) as info:
        check(openai(base))
    assert f"Cannot reach {base} ($OPENAI_BASE_URL) for 'openai:gpt-5-mini': connection refused" in str(
        info.value
    )
    assert "Nothing was sent" in info.value.message


def test_a_rejected_key_is_unavailable_names_the_variable_and_never_the_key(server: MockServer) -> None:
    server.configure(api_key="the-right-key")
    with pytest.raises(ProviderUnavailable) as info:
        check(openai(server.url))
    text = str(info.value)
    assert "rejected the API key" in text and "HTTP 401" in text and "$OPENAI_API_KEY (is set)" in text
    assert KEY not in text and KEY[:16] not in text


def test_a_server_without_a_model_list_is_not_refused(server: MockServer) -> None:
    notes = check(openai(f"{server.base}/no-list"))
    assert len(notes) == 1 and "Could not confirm" in notes[0] and "(/models: 404)" in notes[0]


def test_anthropic_asks_for_the_model_by_name_and_suggests_on_404(server: MockServer) -> None:
    def claude(model: str) -> AnthropicProvider:
        return AnthropicProvider(model, base_url=server.base, api_key=KEY)

    assert check(claude("claude-haiku-4-5")) == []
    with pytest.raises(ConfigError) as info:
        check(claude("claude-haiku-4.5"))
    assert "Did you mean 'claude-haiku-4-5'?" in info.value.message


def test_gemini_lists_models_under_models_slash_and_still_matches(server: MockServer) -> None:
    server.configure(flavor="gemini", models=["gemini-2.5-flash"])
    caps = Capabilities(json_schema=True, schema_dialect="gemini")
    assert check(openai(server.url, "gemini-2.5-flash", capabilities=caps)) == []


def test_the_check_passes_through_the_call_wrappers(server: MockServer) -> None:
    client = build_client(openai(server.url, "gpt-5-nanoo"), Limits(), cache=None)
    with pytest.raises(ConfigError, match="Did you mean 'gpt-5-nano'"):
        check(client)


def test_preflight_model_builds_checks_and_adds_the_price_note(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    server.configure(models=["gpt-5-mini", "my-finetune"])
    assert preflight_model("openai:gpt-5-mini", Settings()) == []
    notes = preflight_model("openai:my-finetune", Settings())
    assert len(notes) == 1 and "its cost will show as unknown" in notes[0]


def test_fake_and_local_models_have_nothing_to_check() -> None:
    assert preflight_model("fake:", Settings()) == []


def test_a_server_you_run_yourself_may_serve_an_unlisted_name(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)  # not OpenAI's own host: llama.cpp serves any name
    notes = preflight_model("openai:whatever-is-loaded", Settings())
    assert any("does not list 'whatever-is-loaded'" in note for note in notes)
