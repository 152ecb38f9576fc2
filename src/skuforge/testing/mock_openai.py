"""A real OpenAI-compatible (and Anthropic-style) mock server on aiohttp.web, for tests and benchmarks.

    with MockServer(MockConfig(p500=0.2)) as server:   # background thread, own loop, free port
        provider = OpenAIProvider("gpt-4o-mini", base_url=server.url)

    python -m skuforge.testing.mock_openai --port 8999 --latency-ms 50 --rpm 600 --pdrop 0.05

Faults are chosen from (prompt hash, attempt number for that prompt): a retry of a failed request draws
again and can succeed, and a rerun of the whole scenario sees the same faults. Answers come from the fake
provider's generator, so JSON answers are schema-valid. Endpoints live in the ROUTES table; subclass MockApp
(or pass `routes=` to MockServer) to add more, e.g. batch APIs.

Bodies are checked as the vendor would (`mock_rules`): `flavor` picks which OpenAI-compatible vendor the
chat endpoint plays (openai, deepseek, qwen, gemini), which shapes it accepts and how it reports cached
prompt tokens; `/v1/messages` plays Anthropic. With `prefix_cache`, the server caches the system prompt the
way the vendors do: the first request with a given system prefix misses, later ones read it from the cache
(for Anthropic only when the body marks it with `cache_control`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from skuforge.providers.fake import draw, fake_answer
from skuforge.providers.tokens import estimate_tokens
from skuforge.testing import mock_rules
from skuforge.testing.mock_state import MockStats, PrefixCache, RateLimiter, embed, fmt_duration, moderate

Handler = Callable[["MockApp", web.Request], Awaitable[web.StreamResponse]]
_SCHEMA_BLOCK = re.compile(r"```json\s*(\{.*?\})\s*```", re.S)
DEFAULT_FLAGGED = {
    "kill": "violence",
    "bomb": "violence",
    "weapon": "violence",
    "hate": "hate",
    "nude": "sexual",
    "cocaine": "illicit",
    "毒品": "illicit",
    "枪支": "violence",
}


class MockConfig(BaseModel):
    """How the mock behaves. Fault rates are per attempt and add up (hang, drop, 500, malformed, 429)."""

    model_config = ConfigDict(extra="forbid")
    latency_ms: float = Field(default=0.0, ge=0, description="base latency per request")
    per_token_ms: float = Field(default=0.0, ge=0, description="added latency per output token")
    capacity: int | None = Field(default=None, ge=1, description="requests served at once; the rest queue")
    rpm: float | None = Field(default=None, gt=0)
    tpm: float | None = Field(default=None, gt=0)
    rate_burst_s: float | None = Field(
        default=None, gt=0, description="RPM/TPM bucket size in seconds of rate (default a full minute)"
    )
    p500: float = Field(default=0.0, ge=0, le=1)
    pdrop: float = Field(
        default=0.0, ge=0, le=1, description="headers + part of the body, then the connection closes"
    )
    phang: float = Field(
        default=0.0, ge=0, le=1, description="never answer (until hang_s or the server stops)"
    )
    pmalformed: float = Field(default=0.0, ge=0, le=1, description="200 with a body that is not JSON")
    p429: float = Field(default=0.0, ge=0, le=1, description="random 429s, besides the RPM/TPM limits")
    retry_after_s: float = Field(default=0.05, ge=0, description="Retry-After sent with random 429s")
    send_retry_after: bool = Field(
        default=True, description="False: only x-ratelimit-reset-* headers tell the wait"
    )
    hang_s: float = Field(default=3600.0, gt=0)
    output_tokens: int | None = Field(
        default=None, ge=1, description="fixed output size; None derives it per prompt"
    )
    cached_share: float = Field(
        default=0.0, ge=0, le=1, description="share of prompt tokens reported as cached"
    )
    flavor: Literal["openai", "deepseek", "qwen", "gemini"] = Field(
        default="openai", description="which vendor /v1/chat/completions plays (body rules, usage shape)"
    )
    prefix_cache: bool = Field(default=False, description="cache system prompts; repeats read from cache")
    cache_min_tokens: int = Field(default=0, ge=0, description="shortest prefix the prompt cache keeps")
    anthropic_prefill: bool = Field(default=False, description="accept an assistant prefill (old Claude)")
    api_key: str | None = Field(default=None, description="when set, other keys get 401")
    seed: int = 0
    models: list[str] = Field(default_factory=lambda: ["gpt-4o-mini", "gpt-4o", "mock-model"])
    embedding_dim: int = Field(default=256, ge=8)
    flagged_words: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FLAGGED))


class _Fault(Exception):
    """Raised inside a handler to answer with an error response instead."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _prompt_key(*parts: Any) -> str:
    return hashlib.blake2b(orjson.dumps(parts), digest_size=12).hexdigest()


def _schema_in(texts: Any) -> dict[str, Any] | None:
    """The last ```json schema block in `texts` (an instruction carrying the schema), if any."""
    found = None
    for text in texts:
        for match in _SCHEMA_BLOCK.finditer(text):
            found = match.group(1)
    if found is None:
        return None
    try:
        schema = orjson.loads(found)
    except orjson.JSONDecodeError:
        return None
    return schema if isinstance(schema, dict) else None


def chat_usage(flavor: str, prompt_tokens: int, out_tokens: int, cached: int) -> dict[str, Any]:
    """`usage` as each vendor reports it: DeepSeek's cache hit/miss counts, the others' prompt details."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": out_tokens,
        "total_tokens": prompt_tokens + out_tokens,
    }
    if flavor == "deepseek":
        usage.update(prompt_cache_hit_tokens=cached, prompt_cache_miss_tokens=prompt_tokens - cached)
    else:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def anthropic_answer_spec(
    body: dict[str, Any], system: str, pairs: list[tuple[str, str]]
) -> tuple[dict[str, Any] | None, bool, str]:
    """(schema, JSON wanted, prefill) of a Messages body: `output_config.format`, else a schema given as an
    instruction, else an old-style '{' prefill continued from the system prompt's schema."""
    prefill = pairs[-1][1] if pairs and pairs[-1][0] == "assistant" else ""
    if (schema := mock_rules.output_schema(body)) is not None:
        return schema, True, prefill
    if prefill.startswith("{"):
        return _schema_in([system]), True, prefill
    schema = _schema_in([system, *(c for role, c in pairs if role == "user")])
    return schema, schema is not None, prefill


class MockApp:
    """The handlers and their state. One instance per server; config can change while it runs."""

    ROUTES: list[tuple[str, str, str]] = [
        ("POST", "/v1/chat/completions", "chat_completions"),
        ("POST", "/v1/messages", "messages"),
        ("POST", "/v1/embeddings", "embeddings"),
        ("POST", "/v1/moderations", "moderations"),
        ("GET", "/v1/models", "models"),
        ("GET", "/v1/models/{model}", "model"),
        ("GET", "/_stats", "get_stats"),
        ("POST", "/_reset", "post_reset"),
        ("POST", "/_config", "post_config"),
    ]

    def __init__(self, config: MockConfig | None = None) -> None:
        self.stats = MockStats()
        self.prompt_cache = PrefixCache()
        self.stopping: asyncio.Event | None = None
        self.configure(config or MockConfig())

    def configure(self, config: MockConfig) -> None:
        self.config = config
        self.limiter = (
            RateLimiter(config.rpm, config.tpm, config.rate_burst_s) if (config.rpm or config.tpm) else None
        )
        self.slots = asyncio.Semaphore(config.capacity) if config.capacity else None

    def build(self, extra: Sequence[tuple[str, str, Handler]] = ()) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for method, path, attr in self.ROUTES:
            app.router.add_route(method, path, getattr(self, attr))
        for method, path, fn in extra:
            app.router.add_route(method, path, functools.partial(fn, self))
        app.middlewares.append(self._faults_to_responses)
        return app

    @web.middleware
    async def _faults_to_responses(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)  # type: ignore[no-any-return,unused-ignore]
        except _Fault as fault:
            return fault.response

    # ---- errors ----------------------------------------------------------------------------------------

    @staticmethod
    def error(status: int, message: str, kind: str, *, style: str = "openai", headers: Any = None) -> _Fault:
        if style == "anthropic":
            body = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            body = {"error": {"message": message, "type": kind, "code": kind}}
        return _Fault(
            web.Response(
                status=status, body=orjson.dumps(body), headers=headers, content_type="application/json"
            )
        )

    def check_key(self, request: web.Request, style: str) -> None:
        want = self.config.api_key
        if not want:
            return
        if style == "anthropic":
            given = request.headers.get("x-api-key", "")
        else:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given != want:  # echoes the key like the real APIs do, so clients must redact it
            raise self.error(401, f"Incorrect API key provided: {given}.", "invalid_api_key", style=style)

    async def read_json(self, request: web.Request, style: str) -> dict[str, Any]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise self.error(
                400, "The request body is not valid JSON.", "invalid_request_error", style=style
            ) from None
        if not isinstance(body, dict):
            raise self.error(
                400, "The request body must be a JSON object.", "invalid_request_error", style=style
            )
        return body

    # ---- the shared life of a generation request -------------------------------------------------------

    async def admit(self, request: web.Request, key: str, tokens: int, style: str) -> str | None:
        """Count the request, apply limits and pick this attempt's fault (None, 'drop' or 'malformed')."""
        cfg = self.config
        attempt = self.stats.received(request.path, key)
        if self.limiter is not None:
            wait, headers = self.limiter.admit(tokens)
            if wait:
                self.stats.fault("rate_limit")
                if cfg.send_retry_after:
                    headers["retry-after"] = f"{wait:.3f}"
                raise self.error(429, "Rate limit reached.", "rate_limit_error", style=style, headers=headers)
        u = draw(key, attempt, f"fault/{cfg.seed}")
        for kind, rate in (
            ("hang", cfg.phang),
            ("drop", cfg.pdrop),
            ("500", cfg.p500),
            ("malformed", cfg.pmalformed),
            ("429", cfg.p429),
        ):
            if u < rate:
                self.stats.fault(kind)
                return await self._inject(request, kind, style)
            u -= rate
        return None

    async def _inject(self, request: web.Request, kind: str, style: str) -> str | None:
        if kind == "hang":
            assert self.stopping is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=self.config.hang_s)
            if request.transport is not None:
                request.transport.close()
            raise self.error(504, "hung request released", "timeout", style=style)
        if kind == "500":
            raise self.error(
                500, "The server had an error while processing your request.", "server_error", style=style
            )
        if kind == "429":
            headers = {
                "x-ratelimit-reset-requests": fmt_duration(self.config.retry_after_s),
                "x-ratelimit-remaining-requests": "0",
            }
            if self.config.send_retry_after:
                headers["retry-after"] = f"{self.config.retry_after_s:.3f}"
            raise self.error(
                429, "Rate limit reached (injected).", "rate_limit_error", style=style, headers=headers
            )
        return kind

    async def serve(
        self, work: Callable[[], Awaitable[web.StreamResponse]], out_tokens: int
    ) -> web.StreamResponse:
        """Hold a capacity slot while waiting out the latency, then answer."""
        if self.slots is not None:
            await self.slots.acquire()
        self.stats.enter()
        try:
            delay = (self.config.latency_ms + self.config.per_token_ms * out_tokens) / 1000
            if delay:
                await asyncio.sleep(delay)
            return await work()
        finally:
            self.stats.leave()
            if self.slots is not None:
                self.slots.release()

    async def send(
        self, request: web.Request, body: bytes, fault: str | None, key: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        """Send a JSON answer, or its injected fault: cut off mid-body, or not JSON at all."""
        if fault == "malformed":
            body = body[: len(body) // 2] + b"<<not json"
        if fault != "drop":
            transport = request.transport
            if fault is None and transport is not None and not transport.is_closing():
                self.stats.succeeded(key)  # an answer to a client that has gone is no success it saw
            return web.Response(body=body, headers=headers, content_type="application/json")
        resp = web.StreamResponse(headers=headers)
        resp.content_type = "application/json"
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        return self._cut(request, resp)

    @staticmethod
    def _cut(request: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # aiohttp drops the connection quietly; the client sees a cut body

    def answer(
        self, pairs: list[tuple[str, str]], schema: Any, json_mode: bool, max_tokens: Any
    ) -> tuple[str, int, str]:
        """(text, output tokens, finish reason) for a prompt; fixed size when output_tokens is set."""
        cfg = self.config
        text = fake_answer(
            pairs, schema=schema, json_mode=json_mode, seed=cfg.seed, target_tokens=cfg.output_tokens
        )
        tokens = cfg.output_tokens or estimate_tokens(text)
        if isinstance(max_tokens, int) and tokens > max_tokens and not (schema or json_mode):
            return text[: int(max_tokens / 0.27)], max_tokens, "length"
        return text, tokens, "stop"

    # ---- OpenAI chat completions -----------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.check_key(request, "openai")
        body = await self.read_json(request, "openai")
        if (problem := mock_rules.chat_error(body, self.config.flavor)) is not None:
            self.stats.fault("invalid_request")
            raise self.error(400, problem, "invalid_request_error")
        messages = body["messages"]
        pairs = [(str(m.get("role")), _text_of(m.get("content"))) for m in messages if isinstance(m, dict)]
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        if fmt.get("type") == "json_object":  # the schema travels as an instruction; a model follows it
            schema = _schema_in(c for _, c in pairs)
        model = str(body["model"])
        key = _prompt_key(model, pairs, fmt)
        prompt_tokens = sum(estimate_tokens(c) for _, c in pairs)
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        expected = self.config.output_tokens or limit or 256
        fault = await self.admit(request, key, prompt_tokens + int(expected), "openai")
        text, out_tokens, finish = self.answer(pairs, schema, fmt.get("type") == "json_object", limit)
        prefix = "\n".join(c for role, c in pairs if role == "system")
        cached = self.cached_tokens(model, prefix, prompt_tokens, marked=True)[0]
        usage = chat_usage(self.config.flavor, prompt_tokens, out_tokens, cached)
        if fault is None:
            self.stats.bill(prompt_tokens, out_tokens, cached)
        rid = f"chatcmpl-{key[:12]}-{self.stats.per_prompt[key]}"
        headers = {"x-request-id": f"req_{key[:16]}", **(self.limiter.headers(0, 0) if self.limiter else {})}
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self.serve(
                lambda: self._stream_chat(
                    request, rid, model, text, finish, usage if include else None, fault, key, headers
                ),
                out_tokens,
            )
        payload = {
            "id": rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": usage,
        }
        return await self.serve(
            lambda: self.send(request, orjson.dumps(payload), fault, key, headers), out_tokens
        )

    async def _stream_chat(
        self,
        request: web.Request,
        rid: str,
        model: str,
        text: str,
        finish: str,
        usage: dict[str, Any] | None,
        fault: str | None,
        key: str,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await resp.prepare(request)
        pieces = re.findall(r"\S+\s*", text) or [text]
        base = {"id": rid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], reason: str | None = None, extra: Any = None) -> bytes:
            event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
            if extra is not None:
                event = {**base, "choices": [], "usage": extra}
            return b"data: " + orjson.dumps(event) + b"\n\n"

        await resp.write(chunk({"role": "assistant", "content": ""}))
        for i, piece in enumerate(pieces):
            if fault == "drop" and i >= len(pieces) // 2:
                return self._cut(request, resp)
            await resp.write(chunk({"content": piece}))
        if fault == "malformed":
            await resp.write(b"data: {not json\n\n")
            return resp
        await resp.write(chunk({}, finish))
        if usage is not None:
            await resp.write(chunk({}, None, usage))
        await resp.write(b"data: [DONE]\n\n")
        self.stats.succeeded(key)
        return resp

    # ---- Anthropic messages ----------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        self.check_key(request, "anthropic")
        if not request.headers.get("anthropic-version"):
            raise self.error(
                400, "anthropic-version header is required.", "invalid_request_error", style="anthropic"
            )
        body = await self.read_json(request, "anthropic")
        if (problem := mock_rules.anthropic_error(body, prefill=self.config.anthropic_prefill)) is not None:
            self.stats.fault("invalid_request")
            raise self.error(400, problem, "invalid_request_error", style="anthropic")
        turns = body["messages"]
        system = _text_of(body.get("system") or "")
        pairs = [(str(m.get("role")), _text_of(m.get("content"))) for m in turns if isinstance(m, dict)]
        model = str(body["model"])
        key = _prompt_key(model, system, pairs)
        prompt_tokens = estimate_tokens(system) + sum(estimate_tokens(c) for _, c in pairs)
        fault = await self.admit(request, key, prompt_tokens + int(body["max_tokens"]), "anthropic")
        schema, json_mode, prefill = anthropic_answer_spec(body, system, pairs)
        text, out_tokens, finish = self.answer(pairs, schema, json_mode, body.get("max_tokens"))
        if prefill and text.startswith(prefill):
            text = text[len(prefill) :]
        marked = bool(mock_rules.cache_breakpoints(body))
        read, written = self.cached_tokens(model, system, prompt_tokens, marked=marked)
        usage = {
            "input_tokens": prompt_tokens - read - written,
            "output_tokens": out_tokens,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }
        mid = f"msg_{key[:20]}"
        headers = {"request-id": f"req_{key[:16]}"}
        reason = "end_turn" if finish == "stop" else "max_tokens"
        if body.get("stream"):
            return await self.serve(
                lambda: self._stream_messages(request, mid, model, text, reason, usage, fault, key, headers),
                out_tokens,
            )
        payload = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": reason,
            "usage": usage,
        }
        return await self.serve(
            lambda: self.send(request, orjson.dumps(payload), fault, key, headers), out_tokens
        )

    async def _stream_messages(
        self,
        request: web.Request,
        mid: str,
        model: str,
        text: str,
        reason: str,
        usage: dict[str, Any],
        fault: str | None,
        key: str,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def event(kind: str, data: dict[str, Any]) -> bytes:
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"

        start = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "usage": usage,
        }
        await resp.write(event("message_start", {"message": start}))
        await resp.write(
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        )
        pieces = re.findall(r"\S+\s*", text) or [text]
        for i, piece in enumerate(pieces):
            if fault == "drop" and i >= len(pieces) // 2:
                return self._cut(request, resp)
            delta = {"index": 0, "delta": {"type": "text_delta", "text": piece}}
            await resp.write(event("content_block_delta", delta))
        await resp.write(event("content_block_stop", {"index": 0}))
        await resp.write(
            event(
                "message_delta",
                {"delta": {"stop_reason": reason}, "usage": {"output_tokens": usage["output_tokens"]}},
            )
        )
        await resp.write(event("message_stop", {}))
        self.stats.succeeded(key)
        return resp

    # ---- embeddings, moderations, models ---------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        self.check_key(request, "openai")
        body = await self.read_json(request, "openai")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise self.error(400, "'input' must be a string or a list of strings.", "invalid_request_error")
        self.stats.received(request.path, None)
        dim = int(body.get("dimensions") or self.config.embedding_dim)
        data = [{"object": "embedding", "index": i, "embedding": embed(t, dim)} for i, t in enumerate(texts)]
        tokens = sum(estimate_tokens(t) for t in texts)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model") or "mock-embedding",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def moderations(self, request: web.Request) -> web.StreamResponse:
        self.check_key(request, "openai")
        body = await self.read_json(request, "openai")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list):
            raise self.error(400, "'input' must be a string or a list of strings.", "invalid_request_error")
        self.stats.received(request.path, None)
        results = [
            moderate(_text_of(t) if not isinstance(t, str) else t, self.config.flagged_words) for t in texts
        ]
        payload = {"id": f"modr-{_prompt_key(texts)[:12]}", "model": "mock-moderation", "results": results}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    def _model_ids(self) -> list[str]:
        prefix = "models/" if self.config.flavor == "gemini" else ""
        return [f"{prefix}{m}" for m in self.config.models]

    async def models(self, request: web.Request) -> web.StreamResponse:
        """The model list: OpenAI's shape, or Anthropic's when the request carries anthropic-version."""
        style = "anthropic" if request.headers.get("anthropic-version") else "openai"
        self.check_key(request, style)
        self.stats.received(request.path, None)
        if style == "anthropic":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
                    for m in self.config.models]  # fmt: skip
            page = {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None}
            return web.Response(body=orjson.dumps(page), content_type="application/json")
        listed = [
            {"id": m, "object": "model", "created": 0, "owned_by": "skuforge-mock"} for m in self._model_ids()
        ]
        return web.Response(
            body=orjson.dumps({"object": "list", "data": listed}), content_type="application/json"
        )

    async def model(self, request: web.Request) -> web.StreamResponse:
        """One model by id (Anthropic resolves aliases here; OpenAI's "retrieve model")."""
        style = "anthropic" if request.headers.get("anthropic-version") else "openai"
        self.check_key(request, style)
        self.stats.received(request.path, None)
        name = request.match_info["model"]
        if name not in self.config.models:
            raise self.error(404, f"model: {name}", "not_found_error", style=style)
        data = {"type": "model", "id": name, "display_name": name} if style == "anthropic" else {
            "id": name, "object": "model", "created": 0, "owned_by": "skuforge-mock"}  # fmt: skip
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    def cached_tokens(self, model: str, prefix: str, prompt_tokens: int, *, marked: bool) -> tuple[int, int]:
        """(read, written) prompt-cache tokens: the prefix cache when on (and the body marks the prefix,
        for Anthropic), else the configured flat share read from the cache."""
        if self.config.prefix_cache:
            if not marked:
                return 0, 0
            read, written = self.prompt_cache.lookup(
                model, prefix, estimate_tokens(prefix), self.config.cache_min_tokens
            )
            return min(read, prompt_tokens), min(written, prompt_tokens - min(read, prompt_tokens))
        return int(prompt_tokens * self.config.cached_share), 0

    # ---- control ---------------------------------------------------------------------------------------

    async def get_stats(self, request: web.Request) -> web.StreamResponse:
        detail = request.query.get("detail") in ("1", "true")
        return web.Response(body=orjson.dumps(self.stats.snapshot(detail)), content_type="application/json")

    async def post_reset(self, request: web.Request) -> web.StreamResponse:
        self.stats.reset()
        self.prompt_cache.reset()
        self.configure(self.config)
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    async def post_config(self, request: web.Request) -> web.StreamResponse:
        changes = await self.read_json(request, "openai")
        try:
            self.configure(MockConfig.model_validate({**self.config.model_dump(), **changes}))
        except ValueError as exc:
            raise self.error(400, f"Bad mock config: {exc}", "invalid_request_error") from None
        return web.Response(body=orjson.dumps(self.config.model_dump()), content_type="application/json")


async def _start(
    app: MockApp, host: str, port: int, routes: Sequence[tuple[str, str, Handler]]
) -> tuple[web.AppRunner, int]:
    app.stopping = asyncio.Event()
    runner = web.AppRunner(app.build(routes), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    return runner, sock.getsockname()[1]


class MockServer:
    """Runs a MockApp in a background thread with its own event loop, on 127.0.0.1 and a free port."""

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: Sequence[tuple[str, str, Handler]] = (),
    ) -> None:
        self.app = MockApp(config)
        self.host, self.port, self.routes = host, port, routes
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, `http://127.0.0.1:PORT/v1`."""
        return f"{self.base}/v1"

    @property
    def base(self) -> str:
        """The root URL (Anthropic-style clients add /v1/messages themselves)."""
        return f"http://{self.host}:{self.port}"

    @property
    def stats(self) -> MockStats:
        return self.app.stats

    @property
    def config(self) -> MockConfig:
        return self.app.config

    def configure(self, **changes: Any) -> None:
        """Change the config live (validated); limiter and capacity start afresh."""
        new = MockConfig.model_validate({**self.app.config.model_dump(), **changes})
        self._call(lambda: self.app.configure(new))

    def reset(self) -> None:
        self.app.stats.reset()

    def _call(self, fn: Callable[[], None]) -> None:
        if self._loop is None:
            fn()
            return
        done = threading.Event()

        def call() -> None:
            fn()
            done.set()

        self._loop.call_soon_threadsafe(call)
        done.wait(5)

    def start(self) -> MockServer:
        self._thread = threading.Thread(target=self._run, name="mock-openai", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner, self.port = loop.run_until_complete(_start(self.app, self.host, self.port, self.routes))
            self.app.configure(self.app.config)  # semaphore created inside this loop
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        assert self.app.stopping is not None
        loop.run_until_complete(self.app.stopping.wait())
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self.app.stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self.app.stopping.set)
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m skuforge.testing.mock_openai", description=__doc__.splitlines()[0]
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    for flag, field in (
        ("--latency-ms", "latency_ms"),
        ("--per-token-ms", "per_token_ms"),
        ("--rpm", "rpm"),
        ("--tpm", "tpm"),
        ("--p500", "p500"),
        ("--pdrop", "pdrop"),
        ("--phang", "phang"),
        ("--pmalformed", "pmalformed"),
        ("--p429", "p429"),
        ("--retry-after-s", "retry_after_s"),
        ("--cached-share", "cached_share"),
        ("--rate-burst-s", "rate_burst_s"),
        ("--hang-s", "hang_s"),
    ):
        p.add_argument(flag, dest=field, type=float, default=None)
    for flag, field in (("--capacity", "capacity"), ("--output-tokens", "output_tokens"), ("--seed", "seed")):
        p.add_argument(flag, dest=field, type=int, default=None)
    p.add_argument("--api-key", dest="api_key", default=None)
    return p


async def _serve_forever(app: MockApp, host: str, port: int) -> None:
    runner, port = await _start(app, host, port, ())
    app.configure(app.config)
    loop = asyncio.get_running_loop()
    assert app.stopping is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stopping.set)
    print(f"mock_openai listening on http://{host}:{port}/v1", flush=True)
    await app.stopping.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    config = MockConfig(**{k: v for k, v in args.items() if v is not None})
    asyncio.run(_serve_forever(MockApp(config), host, port))


if __name__ == "__main__":
    main()
