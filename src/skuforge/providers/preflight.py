"""Fail fast: check the model, the key and the base URL before any item is sent or any progress is drawn.

    notes = preflight_model("openai:gpt-5-mini", settings)   # sync: builds, checks, closes the provider
    notes = await preflight(provider)                          # async; wrappers pass it through

One cheap request per provider: `GET {base}/models` on OpenAI-compatible servers (the list tells whether
the model exists), `GET {base}/v1/models/{model}` on Anthropic (aliases resolve there). Local and fake
models have no server and pass at once. What it raises:

- ProviderUnavailable: the base URL cannot be reached, or the key is rejected (401/403). Nothing was sent.
- ConfigError: the server does not offer the model; the hint lists close names it does offer.

A server without a model list (404), or one that is busy (429, 5xx), does not stop the run: the note says
the model could not be confirmed. Only the vendor's own host refuses an unlisted model: a server you run
yourself (a custom base URL) may serve any name, so there an unlisted model is a note. The notes also
say when a model has no price (its cost shows as unknown).
"""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass

import aiohttp
import orjson

from skuforge.config import Settings, load_settings
from skuforge.errors import ConfigError, ProviderUnavailable
from skuforge.providers import http
from skuforge.providers.base import Provider

PREFLIGHT_TIMEOUT = aiohttp.ClientTimeout(total=15, sock_connect=5)


@dataclass(frozen=True, slots=True)
class Server:
    """What a preflight needs to know about one hosted provider."""

    name: str  # provider:model
    model: str
    base_url: str
    base_url_env: str | None
    key: http.Secret
    key_env: str | None
    refuse_unlisted: bool = True  # False for a self-run server: some serve any name and list another

    @property
    def where(self) -> str:
        env = f" (${self.base_url_env})" if self.base_url_env else ""
        return f"{self.base_url}{env}"


async def preflight(provider: Provider) -> list[str]:
    """Check `provider` (or the provider a wrapper wraps) before a run; see the module docstring."""
    return await provider.preflight()


def preflight_model(model: str, settings: Settings | None = None) -> list[str]:
    """Build the provider for `model`, check it and close it; returns notes worth printing (for the CLI)."""
    from skuforge.providers.prices import price_notes
    from skuforge.providers.registry import get_provider

    if _in_event_loop():  # before anything is built, so no provider or coroutine is left behind
        raise RuntimeError(
            "preflight_model blocks on the network: from async code, run it off the event loop "
            "(starlette's run_in_threadpool, asyncio.to_thread)"
        )
    settings = settings or load_settings()
    provider = get_provider(model, settings)

    async def check() -> list[str]:
        try:
            return await preflight(provider)
        finally:
            await provider.aclose()

    return [*asyncio.run(check()), *price_notes(model, settings)]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def get(session: aiohttp.ClientSession, url: str, server: Server) -> tuple[int, bytes]:
    """One GET with the preflight timeout; an unreachable server is ProviderUnavailable at once."""
    try:
        async with session.get(url, timeout=PREFLIGHT_TIMEOUT) as resp:
            return resp.status, await resp.read()
    except http.NETWORK_FAULTS as exc:
        raise unreachable(server, http.connect_reason(exc)) from None


def unreachable(server: Server, reason: str) -> ProviderUnavailable:
    return ProviderUnavailable(
        f"Cannot reach {server.where} for '{server.name}': {reason}. Nothing was sent.",
        "Check the base URL and that the server is running (or the network), then run the command again.",
    )


def rejected(server: Server, status: int, raw: bytes) -> ProviderUnavailable:
    detail = server.key.redact(http.error_detail(raw))
    env = server.key_env or "THE_KEY"
    state = "is set" if server.key.reveal() else "is not set"
    return ProviderUnavailable(
        f"{server.where} rejected the API key for '{server.name}' (HTTP {status}: {detail}). "
        "Nothing was sent.",
        f"Check ${env} ({state}): export {env}=... with a key for this server, then run the command again.",
    )


def model_ids(raw: bytes) -> list[str] | None:
    """Model ids from an OpenAI- or Anthropic-style list body (`data: [{id}]`), or None if it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]


def offers(ids: list[str], model: str) -> bool:
    """Whether a server's model list has `model` ('models/x' for Gemini, 'x:latest' for Ollama count)."""
    names = {i.removeprefix("models/") for i in ids}
    return model in names or f"{model}:latest" in names


def not_offered(server: Server, ids: list[str]) -> ConfigError:
    names = sorted({i.removeprefix("models/") for i in ids})
    close = difflib.get_close_matches(server.model, names, n=3, cutoff=0.5)
    guess = f" Did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(close or names[:12]) + (" ..." if not close and len(names) > 12 else "")
    return ConfigError(
        f"Model '{server.model}' is not offered by {server.where}.{guess}",
        f"It offers: {shown}. Fix --model (write it as '{server.name.partition(':')[0]}:<model>').",
    )


async def check_openai(session: aiohttp.ClientSession, server: Server) -> list[str]:
    """`GET {base}/models`: reachable, key accepted, and the model in the list when there is one."""
    status, raw = await get(session, f"{server.base_url}/models", server)
    if status in (401, 403):
        raise rejected(server, status, raw)
    ids = model_ids(raw) if status == 200 else None
    if ids is None:
        return [f"Could not confirm that {server.base_url} offers '{server.model}' (/models: {status})."]
    if not offers(ids, server.model):
        if server.refuse_unlisted:
            raise not_offered(server, ids)
        return [
            f"{server.base_url} does not list '{server.model}' ({', '.join(ids[:5])}); sending it anyway."
        ]
    return []


async def check_anthropic(session: aiohttp.ClientSession, server: Server) -> list[str]:
    """`GET {base}/v1/models/{model}` (aliases resolve there); on 404 the list gives suggestions."""
    status, raw = await get(session, f"{server.base_url}/v1/models/{server.model}", server)
    if status in (401, 403):
        raise rejected(server, status, raw)
    if status == 200:
        return []
    if status == 404 and server.refuse_unlisted:
        _, listed = await get(session, f"{server.base_url}/v1/models?limit=1000", server)
        raise not_offered(server, model_ids(listed) or [])
    return [f"Could not confirm that {server.base_url} offers '{server.model}' (HTTP {status})."]
