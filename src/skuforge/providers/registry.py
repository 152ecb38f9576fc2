"""Resolve `provider:model` names to providers.

Providers are data (profiles.yaml, overridable and extendable under `providers:` in the config file), never
guessed from a model's name. Any model name is accepted: the server says whether it exists (see
`skuforge.providers.preflight`, run before any item is sent), and a model missing from the price table runs
with its cost unknown.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from functools import lru_cache
from importlib import resources
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skuforge import yamlfile
from skuforge.config import Settings, load_settings
from skuforge.errors import ConfigError
from skuforge.providers.base import Capabilities, Provider
from skuforge.providers.prices import guess_model, load_prices


class Profile(BaseModel):
    """One named provider: which client, where, which key, what it can do."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["openai", "anthropic", "local", "fake"] = "openai"
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    key: Literal["required", "optional", "none"] = "optional"
    check_models: bool = False  # accepted for older config files: the preflight now asks the server
    key_url: str | None = None
    capabilities: Capabilities = Capabilities()
    model_capabilities: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="capability overrides for models matching a pattern, e.g. 'gpt-5*'"
    )
    extra_body: dict[str, Any] | None = None
    connections: int = 4096

    @field_validator("model_capabilities")
    @classmethod
    def _valid_overrides(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for override in value.values():
            Capabilities.model_validate(override)
        return value

    def capabilities_for(self, model: str) -> Capabilities:
        """The profile's capabilities with the overrides of every pattern `model` matches, in order."""
        data = self.capabilities.model_dump()
        for pattern, override in self.model_capabilities.items():
            if fnmatch.fnmatchcase(model, pattern):
                data.update(override)
        return Capabilities.model_validate(data)


@lru_cache(maxsize=1)
def _shipped_profiles() -> dict[str, dict[str, Any]]:
    text = resources.files("skuforge.providers").joinpath("profiles.yaml").read_text(encoding="utf-8")
    return dict(yamlfile.load(text))


def profiles(settings: Settings | None = None) -> dict[str, Profile]:
    """Shipped profiles merged with `settings.providers` (field by field; capabilities too)."""
    raw = {name: dict(p) for name, p in _shipped_profiles().items()}
    for name, override in (settings.providers if settings else {}).items():
        base = raw.get(name, {})
        caps = {**base.get("capabilities", {}), **(override.get("capabilities") or {})}
        raw[name] = {**base, **override, "capabilities": caps}
    out: dict[str, Profile] = {}
    for name, data in raw.items():
        try:
            out[name] = Profile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(
                f"Provider '{name}' in the config is not valid: {exc}",
                "Allowed keys: kind, base_url, base_url_env, api_key_env, key, capabilities, "
                "model_capabilities, extra_body.",
            ) from exc
    return out


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _split(name: str, settings: Settings) -> tuple[str, str]:
    if ":" in name:
        provider, _, model = name.partition(":")
        return provider.strip().lower(), model.strip()
    known = load_prices(settings.prices).known_models()
    match = [k for k in known if k.partition(":")[2] == name]
    guess = f" Did you mean '{match[0]}'?" if match else _did_you_mean(name, known)
    raise ConfigError(
        f"Model '{name}' has no provider.{guess}",
        "Name models as provider:model, e.g. 'openai:gpt-4o-mini', 'local:qwen2.5-0.5b' or 'fake:'.",
    )


def get_provider(name: str, settings: Settings | None = None) -> Provider:
    """The provider for `provider:model`, e.g. 'openai:gpt-4o-mini', 'deepseek:deepseek-chat', 'fake:'."""
    settings = settings or load_settings()
    provider, model = _split(name, settings)
    table = profiles(settings)
    if provider not in table:
        raise ConfigError(
            f"Unknown provider '{provider}' in model '{name}'.{_did_you_mean(provider, list(table))}",
            f"Known providers: {', '.join(sorted(table))}. Add others under 'providers:' in config.yaml.",
        )
    profile = table[provider]
    if profile.kind == "fake":
        return _fake(model)
    if profile.kind == "local":
        from skuforge.providers.local import LocalProvider

        return LocalProvider.from_name(model)
    if not model:
        raise ConfigError(f"Model name missing in '{name}'.", f"Write it as '{provider}:<model>'.")
    return _hosted(provider, model, profile, settings)


def _fake(variant: str) -> Provider:
    from skuforge.providers.fake import VARIANTS, FakeProvider

    if variant not in VARIANTS:
        options = [f"fake:{v}" for v in VARIANTS if v]
        raise ConfigError(
            f"Unknown fake model 'fake:{variant}'.{_did_you_mean(f'fake:{variant}', options)}",
            f"Fake models: 'fake:', {', '.join(repr(o) for o in options)}.",
        )
    return FakeProvider.from_variant(variant) if variant else FakeProvider(name="fake:")


def _base_url(provider: str, profile: Profile) -> tuple[str, bool]:
    """The base URL to use, and whether it is on the shipped profile's own (hosted) host."""
    custom = (os.environ.get(profile.base_url_env) or "").strip() if profile.base_url_env else ""
    url = custom or profile.base_url
    if not url:
        env = profile.base_url_env or "the base URL"
        raise ConfigError("No base URL for this provider.", f"Set {env} or 'base_url' in config.yaml.")
    shipped = _shipped_profiles().get(provider, {}).get("base_url") or profile.base_url or ""
    default_host = urlparse(shipped).hostname
    return url, urlparse(url).hostname == default_host


def _hosted(provider: str, model: str, profile: Profile, settings: Settings) -> Provider:
    full = f"{provider}:{model}"
    base_url, is_default = _base_url(provider, profile)
    key = (os.environ.get(profile.api_key_env) or "").strip() if profile.api_key_env else ""
    if not key and profile.key == "required" and is_default:
        guess = guess_model(full, settings.prices)  # a hint only: the server says which models exist
        raise ConfigError(
            f"No API key for '{full}': ${profile.api_key_env} is not set.{guess}", _key_hint(profile)
        )
    kwargs: dict[str, Any] = {
        "base_url": base_url,
        "api_key": key or None,
        "api_key_env": profile.api_key_env,
        "base_url_env": profile.base_url_env,
        "refuse_unlisted": is_default,  # a server you run may serve any model name
        "capabilities": profile.capabilities_for(model),
        "name": full,
        "connections": profile.connections,
    }
    if profile.kind == "anthropic":
        from skuforge.providers.anthropic import AnthropicProvider

        return AnthropicProvider(model, **kwargs)
    from skuforge.providers.openai import OpenAIProvider

    return OpenAIProvider(model, extra_body=profile.extra_body, **kwargs)


def _key_hint(profile: Profile) -> str:
    where = f" (get one at {profile.key_url})" if profile.key_url else ""
    lines = [f"Run: export {profile.api_key_env}=...{where}."]
    if profile.kind == "openai" and profile.base_url_env:
        lines.append(
            f"To use another OpenAI-compatible server, export {profile.base_url_env}=http://HOST:PORT/v1 "
            "(a local server needs no key)."
        )
    elif profile.base_url_env:
        lines.append(f"To use a compatible gateway, export {profile.base_url_env}=https://HOST.")
    lines.append("To run offline instead, use the model 'local:qwen2.5-0.5b'.")
    return " ".join(lines)
