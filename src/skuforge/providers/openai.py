"""Any OpenAI-compatible chat server (OpenAI, DeepSeek, DashScope, Gemini, vLLM, Ollama, llama.cpp).

No vendor SDK: a request is one orjson dump, one POST on a pooled keep-alive connection and one orjson load
(well under 1 ms of client CPU), which is what lets one process keep thousands of requests in flight.
JSON is asked for the way the server's capabilities (data, from profiles.yaml) say it understands:
`response_format: json_schema` in the server's schema dialect (OpenAI with `strict: true`, Gemini's
subset), else `json_object` with the schema as an instruction appended to the last user turn, so the
system prompt and examples stay a fixed prefix the server's prompt cache can reuse. Cached prompt tokens
are read from `usage.prompt_tokens_details.cached_tokens` (OpenAI, DashScope, Gemini) or
`usage.prompt_cache_hit_tokens` (DeepSeek).
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


class OpenAIProvider(Provider):
    """`POST {base_url}/chat/completions`. The session is created on first use, inside the running loop."""

    remote = True

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        api_key_env: str | None = None,
        capabilities: Capabilities | None = None,
        name: str | None = None,
        connections: int = 4096,
        total_timeout_s: float = 600.0,
        extra_body: dict[str, Any] | None = None,
        base_url_env: str | None = None,
        refuse_unlisted: bool = True,
    ) -> None:
        self.model = model
        self.name = name or f"openai:{model}"
        self.base_url = base_url.rstrip("/")
        self.capabilities = capabilities or Capabilities(json_mode=True, streaming=True)
        self._key = http.Secret(api_key or "")
        self._key_env = api_key_env
        self._base_url_env = base_url_env
        self._refuse_unlisted = refuse_unlisted
        self._connections = connections
        self._total_timeout_s = total_timeout_s
        self._extra_body = extra_body or {}
        self._session: aiohttp.ClientSession | None = None
        self._url = f"{self.base_url}/chat/completions"
        self._where = f"{self.name} at {self.base_url}"

    def __repr__(self) -> str:
        key = "set" if self._key.reveal() else "none"
        return f"OpenAIProvider(name={self.name!r}, base_url={self.base_url!r}, key={key})"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key.reveal():
            headers["Authorization"] = f"Bearer {self._key.reveal()}"
        return headers

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = http.new_session(self._connections, self._total_timeout_s, self._headers())
        return self._session

    def body(self, request: Request, *, stream: bool = False) -> dict[str, Any]:
        """The chat/completions body: messages, parameters and the JSON mode the server supports."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        caps = self.capabilities
        if caps.temperature:
            body["temperature"] = request.temperature
        if request.json_schema is not None and caps.json_schema:
            schema = schemas.convert(request.json_schema, caps.schema_dialect)
            spec: dict[str, Any] = {"name": "output", "schema": schema}
            if caps.schema_dialect == "openai-strict":
                spec["strict"] = True
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif request.json_schema is not None or request.json_mode:
            http.append_to_last_user(messages, http.schema_instruction(request.json_schema))
            if caps.json_mode:
                body["response_format"] = {"type": "json_object"}
        if request.max_tokens is not None:
            body[caps.max_tokens_field] = request.max_tokens
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = request.stop
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return {**body, **self._extra_body}

    async def _post(self, body: dict[str, Any]) -> tuple[bytes, aiohttp.ClientResponse]:
        try:
            async with self.session().post(self._url, data=orjson.dumps(body)) as resp:
                raw = await resp.read()
        except http.NETWORK_FAULTS as exc:
            raise http.network_error(exc, self._where, self.base_url) from None
        if resp.status >= 400:
            raise http.http_error(
                resp.status, resp.headers, raw, where=self._where, key=self._key, key_env=self._key_env
            )
        return raw, resp

    async def generate(self, request: Request) -> Result:
        started = time.perf_counter()
        raw, resp = await self._post(self.body(request))
        data = http.decode_body(raw, self._where)
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise TransientError(f"{self._where} answered without choices[0].message", "Retrying.") from None
        if request.json_schema is not None and self.capabilities.schema_dialect == "openai-strict":
            text = schemas.drop_added_nulls(text, request.json_schema)
        return Result.model_construct(
            text=text,
            usage=_usage(data.get("usage")),
            model=self.name,
            request_id=resp.headers.get("x-request-id") or data.get("id"),
            finish_reason=choice.get("finish_reason"),
            cached=False,
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield content deltas from the server-sent events of `stream: true`."""
        try:
            async with self.session().post(
                self._url, data=orjson.dumps(self.body(request, stream=True))
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    raise http.http_error(
                        resp.status,
                        resp.headers,
                        raw,
                        where=self._where,
                        key=self._key,
                        key_env=self._key_env,
                    )
                async for line in resp.content:
                    piece = _sse_delta(line, self._where)
                    if piece is None:
                        return
                    if piece:
                        yield piece
        except http.NETWORK_FAULTS as exc:
            raise http.network_error(exc, self._where, self.base_url) from None
        raise TransientError(f"{self._where} ended the stream without [DONE]", "The call will be retried.")

    async def preflight(self) -> list[str]:
        """`GET {base}/models`: the server answers, takes the key, and offers the model."""
        server = checks.Server(
            name=self.name, model=self.model, base_url=self.base_url, base_url_env=self._base_url_env,
            key=self._key, key_env=self._key_env, refuse_unlisted=self._refuse_unlisted,
        )  # fmt: skip
        return await checks.check_openai(self.session(), server)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _usage(raw: Any) -> Usage:
    """Usage with cached prompt tokens as OpenAI, DashScope and Gemini (details) or DeepSeek report them."""
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if cached is None:
        cached = raw.get("prompt_cache_hit_tokens")
    return Usage.model_construct(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=int(cached or 0),
        cache_write_tokens=0,
    )


def _sse_delta(line: bytes, where: str) -> str | None:
    """One SSE line -> its content delta ('' for none), or None at `data: [DONE]`."""
    line = line.strip()
    if not line.startswith(b"data:"):
        return ""
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return None
    event = http.decode_body(payload, where)
    if "error" in event:
        raise TransientError(f"{where} sent an error mid-stream: {http.error_detail(payload)}", "Retrying.")
    choices = event.get("choices") or []
    if not choices:
        return ""
    return (choices[0].get("delta") or {}).get("content") or ""
