"""Anthropic's Messages API over lean aiohttp (no SDK).

The system prompt travels apart from the turns, as one text block marked `cache_control: ephemeral`: it
is the recipe's static prefix, so from the second request on Claude reads it from the prompt cache (a tenth
of the input price) instead of processing it again. JSON comes from structured outputs,
`output_config.format` with the schema in Claude's subset (see `schemas`), when the profile says the
server enforces schemas; otherwise from an instruction carrying the schema, appended to the last user turn.
No assistant prefill: Claude 4.6 models answer HTTP 400 to one.
Usage maps input_tokens + cache reads + cache writes to input tokens, reads to cached input tokens and
writes to cache-write tokens (billed above the input price).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from skuforge.errors import TransientError
from skuforge.providers import http, schemas
from skuforge.providers import preflight as checks
from skuforge.providers.base import Capabilities, Provider, Request, Result, Usage

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096


class AnthropicProvider(Provider):
    """`POST {base_url}/v1/messages` with x-api-key and anthropic-version headers."""

    remote = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.anthropic.com",
        api_key: str | None = None,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        capabilities: Capabilities | None = None,
        name: str | None = None,
        connections: int = 4096,
        total_timeout_s: float = 600.0,
        base_url_env: str | None = None,
        refuse_unlisted: bool = True,
    ) -> None:
        self.model = model
        self.name = name or f"anthropic:{model}"
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v1"):
            self.base_url = self.base_url[:-3]
        self.capabilities = capabilities or Capabilities(json_mode=True, streaming=True, batch=True)
        self._key = http.Secret(api_key or "")
        self._key_env = api_key_env
        self._base_url_env = base_url_env
        self._refuse_unlisted = refuse_unlisted
        self._connections = connections
        self._total_timeout_s = total_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._url = f"{self.base_url}/v1/messages"
        self._where = f"{self.name} at {self.base_url}"

    def __repr__(self) -> str:
        key = "set" if self._key.reveal() else "none"
        return f"AnthropicProvider(name={self.name!r}, base_url={self.base_url!r}, key={key})"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
            if self._key.reveal():
                headers["x-api-key"] = self._key.reveal()
            self._session = http.new_session(self._connections, self._total_timeout_s, headers)
        return self._session

    def body(self, request: Request, *, stream: bool = False) -> dict[str, Any]:
        """Messages body: the system prompt apart (a cached prefix), turns in order, the JSON asked for."""
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        turns = [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"]
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": turns,
            "temperature": request.temperature,
        }
        if system:
            body["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
        if request.json_schema is not None and self.capabilities.json_schema:
            schema = schemas.convert(request.json_schema, self.capabilities.schema_dialect)
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif request.json_schema is not None or request.json_mode:
            http.append_to_last_user(turns, http.schema_instruction(request.json_schema))
        if request.stop:
            body["stop_sequences"] = request.stop
        if stream:
            body["stream"] = True
        return body

    def _fault(self, resp: aiohttp.ClientResponse, raw: bytes) -> Exception:
        return http.http_error(
            resp.status, resp.headers, raw, where=self._where, key=self._key, key_env=self._key_env
        )

    async def generate(self, request: Request) -> Result:
        started = time.perf_counter()
        try:
            async with self.session().post(self._url, data=orjson.dumps(self.body(request))) as resp:
                raw = await resp.read()
        except http.NETWORK_FAULTS as exc:
            raise http.network_error(exc, self._where, self.base_url) from None
        if resp.status >= 400:
            raise self._fault(resp, raw)
        data = http.decode_body(raw, self._where)
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise TransientError(
                f"{self._where} answered without a content list", "The call will be retried."
            )
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        return Result.model_construct(
            text=text,
            usage=_usage(data.get("usage")),
            model=self.name,
            request_id=resp.headers.get("request-id") or data.get("id"),
            finish_reason=data.get("stop_reason"),
            cached=False,
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield text deltas from the `content_block_delta` events."""
        try:
            async with self.session().post(
                self._url, data=orjson.dumps(self.body(request, stream=True))
            ) as resp:
                if resp.status >= 400:
                    raise self._fault(resp, await resp.read())
                async for line in resp.content:
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    event = http.decode_body(line[5:].strip(), self._where)
                    kind = event.get("type")
                    if kind == "message_stop":
                        return
                    if kind == "error":
                        raise TransientError(f"{self._where} sent an error mid-stream: {event}", "Retrying.")
                    if kind == "content_block_delta":
                        text = (event.get("delta") or {}).get("text")
                        if text:
                            yield text
        except http.NETWORK_FAULTS as exc:
            raise http.network_error(exc, self._where, self.base_url) from None
        raise TransientError(
            f"{self._where} ended the stream without message_stop", "The call will be retried."
        )

    async def preflight(self) -> list[str]:
        """`GET {base}/v1/models/{model}`: the server answers, takes the key, and knows the model."""
        server = checks.Server(
            name=self.name, model=self.model, base_url=self.base_url, base_url_env=self._base_url_env,
            key=self._key, key_env=self._key_env, refuse_unlisted=self._refuse_unlisted,
        )  # fmt: skip
        return await checks.check_anthropic(self.session(), server)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    read = int(raw.get("cache_read_input_tokens") or 0)
    written = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage.model_construct(
        input_tokens=int(raw.get("input_tokens") or 0) + read + written,
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_input_tokens=read,
        cache_write_tokens=written,
    )
