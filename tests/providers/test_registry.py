"""Resolving provider:model names: profiles as data, did-you-mean, key errors that say what to do."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from skuforge.config import Settings
from skuforge.errors import ConfigError
from skuforge.providers import Message, Request, get_provider
from skuforge.providers.anthropic import AnthropicProvider
from skuforge.providers.fake import FakeProvider
from skuforge.providers.openai import OpenAIProvider
from skuforge.testing.mock_openai import MockServer

SECRET = "sk-proj-SECRETSECRET0123456789abcdefghij"


def _error(name: str, settings: Settings | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        get_provider(name, settings or Settings())
    return info.value


def test_openai_name_resolves_with_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    provider = get_provider("openai:gpt-4o-mini", Settings())
    assert isinstance(provider, OpenAIProvider)
    assert provider.name == "openai:gpt-4o-mini" and provider.base_url == "https://api.openai.com/v1"
    assert provider.capabilities.json_schema


def test_a_model_missing_from_the_price_table_still_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    assert get_provider("openai:gpt-7-turbo", Settings()).name == "openai:gpt-7-turbo"
    assert isinstance(get_provider("anthropic:claude-fable-9", Settings()), AnthropicProvider)


def test_a_misspelt_provider_suggests_the_known_one() -> None:
    assert "Did you mean 'anthropic'?" in _error("antropic:claude-sonnet-4").message


def test_a_name_without_provider_suggests_the_full_name() -> None:
    assert "Did you mean 'openai:gpt-4o-mini'?" in _error("gpt-4o-mini").message


def test_missing_key_says_exactly_what_to_export() -> None:
    error = _error("openai:gpt-4o-mini")
    assert "$OPENAI_API_KEY is not set" in error.message
    assert "export OPENAI_API_KEY=..." in (error.hint or "")
    assert "OPENAI_BASE_URL=http://HOST:PORT/v1" in (error.hint or "")


def test_anthropic_missing_key_names_its_variable() -> None:
    error = _error("anthropic:claude-sonnet-4-20250514")
    assert "ANTHROPIC_API_KEY" in str(error)


def test_a_custom_base_url_runs_without_a_key_and_any_model(
    mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
    provider = get_provider("openai:my-finetune", Settings())
    assert isinstance(provider, OpenAIProvider) and provider.base_url == mock.url

    async def go() -> str:
        async with provider:
            return (
                await provider.generate(Request(messages=[Message(role="user", content="hi there")]))
            ).text

    assert asyncio.run(go())


def test_named_profiles_are_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
    deepseek = get_provider("deepseek:deepseek-flash", Settings())
    qwen = get_provider("qwen:qwen-plus", Settings())
    ollama = get_provider("ollama:llama3.2", Settings())
    assert isinstance(deepseek, OpenAIProvider) and deepseek.base_url == "https://api.deepseek.com"
    assert not deepseek.capabilities.json_schema and deepseek.capabilities.json_mode
    assert isinstance(qwen, OpenAIProvider) and "dashscope" in qwen.base_url
    assert isinstance(ollama, OpenAIProvider) and ollama.base_url == "http://localhost:11434/v1"


def test_vllm_takes_its_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_BASE_URL", "http://127.0.0.1:8001/v1")
    provider = get_provider("vllm:Qwen/Qwen2.5-7B-Instruct", Settings())
    assert isinstance(provider, OpenAIProvider) and provider.base_url == "http://127.0.0.1:8001/v1"
    assert provider.model == "Qwen/Qwen2.5-7B-Instruct"


def test_settings_override_base_url_and_capabilities_and_add_profiles() -> None:
    settings = Settings(
        providers={
            "ollama": {"base_url": "http://127.0.0.1:9999/v1", "capabilities": {"json_schema": False}},
            "together": {"base_url": "http://127.0.0.1:7777/v1"},
        }
    )
    ollama = get_provider("ollama:qwen2.5", settings)
    assert isinstance(ollama, OpenAIProvider) and ollama.base_url == "http://127.0.0.1:9999/v1"
    assert not ollama.capabilities.json_schema and ollama.capabilities.json_mode
    assert isinstance(get_provider("together:m", settings), OpenAIProvider)


def test_a_bad_provider_override_is_a_config_error() -> None:
    error = _error("ollama:x", Settings(providers={"ollama": {"base_ur": "http://x"}}))
    assert "Provider 'ollama'" in error.message


def test_anthropic_resolves_dated_model_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    provider = get_provider("anthropic:claude-3-5-haiku-20241022", Settings())
    assert isinstance(provider, AnthropicProvider)


def test_a_priced_model_becomes_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  openai:gpt-9: {input: 1, output: 2}\n", encoding="utf-8")
    assert isinstance(get_provider("openai:gpt-9", Settings(prices=prices)), OpenAIProvider)


def test_fake_variants_resolve_and_unknown_ones_suggest() -> None:
    assert isinstance(get_provider("fake:", Settings()), FakeProvider)
    echo = get_provider("fake:echo", Settings())
    assert isinstance(echo, FakeProvider) and echo.options.mode == "echo"
    flaky = get_provider("fake:flaky", Settings())
    assert isinstance(flaky, FakeProvider) and flaky.options.fail_rate == 0.1
    assert "Did you mean 'fake:slow'?" in _error("fake:slwo").message


def test_keys_never_appear_in_repr_errors_or_logs(
    mock: MockServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
    mock.configure(api_key="another-key")
    provider = get_provider("openai:gpt-4o-mini", Settings())
    seen = [repr(provider), str(vars(provider))]

    async def go() -> None:
        async with provider:
            await provider.generate(Request(messages=[Message(role="user", content="x y z")]))

    with pytest.raises(Exception) as info:
        asyncio.run(go())
    seen += [str(info.value), repr(info.value), repr(info.value.args), caplog.text]
    for text in seen:
        assert SECRET not in text and SECRET[:10] not in text


def test_gemini_is_a_named_profile_of_its_openai_compatible_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    gemini = get_provider("gemini:gemini-2.5-flash", Settings())
    assert isinstance(gemini, OpenAIProvider)
    assert gemini.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert gemini.capabilities.json_schema and gemini.capabilities.schema_dialect == "gemini"


def test_local_names_go_to_the_local_provider_which_checks_the_model() -> None:
    assert "Did you mean 'qwen2.5-0.5b'?" in str(_error("local:qwen2.5-0.5bb"))


def test_a_misspelt_model_without_a_key_gets_the_key_error_and_a_did_you_mean() -> None:
    error = _error("openai:gpt5-mini")
    assert "$OPENAI_API_KEY is not set. Did you mean 'openai:gpt-5-mini'?" in error.message


def test_gpt5_models_get_no_temperature_and_max_completion_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    request = Request(messages=[Message(role="user", content="hi")], max_tokens=40)
    gpt5 = get_provider("openai:gpt-5-mini", Settings())
    older = get_provider("openai:gpt-4o-mini", Settings())
    assert isinstance(gpt5, OpenAIProvider) and isinstance(older, OpenAIProvider)
    assert "temperature" not in gpt5.body(request) and gpt5.body(request)["max_completion_tokens"] == 40
    assert older.body(request)["temperature"] == 0.0


def test_deepseek_runs_without_thinking_and_overrides_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k")
    deepseek = get_provider("deepseek:deepseek-flash", Settings())
    assert isinstance(deepseek, OpenAIProvider)
    assert deepseek.body(Request(messages=[Message(role="user", content="hi")]))["thinking"] == {
        "type": "disabled"
    }
    bad = Settings(providers={"openai": {"model_capabilities": {"gpt-9*": {"temperature": "sometimes"}}}})
    assert "Provider 'openai'" in _error("openai:gpt-9", bad).message
