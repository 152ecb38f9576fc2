"""Batch endpoints for the mock server: OpenAI Files + Batches and Anthropic Message Batches.

    batches = MockBatches(BatchConfig(fail_share=0.1, expire_share=0.05))
    with MockServer(MockConfig(), routes=batches.routes()) as server: ...

A batch moves validating -> in_progress -> completed (OpenAI) or in_progress -> ended (Anthropic), one state
per `polls_per_state` retrievals, so a client must poll. Lines fail or expire by a draw fixed by (prompt,
attempt): a resubmitted line draws again and usually succeeds, and a rerun sees the same faults. Answers
come from the same generator as the online endpoints, so a line answers the same in either mode.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from skuforge.providers.fake import draw
from skuforge.providers.tokens import estimate_tokens
from skuforge.testing.mock_openai import Handler, MockApp, _prompt_key, _text_of, anthropic_answer_spec


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    polls_per_state: int = Field(1, ge=1, description="retrievals before a batch moves to its next state")
    fail_share: float = Field(0.0, ge=0, le=1, description="lines answered with a 500 in the error file")
    expire_share: float = Field(0.0, ge=0, le=1, description="lines that expire unanswered")
    max_lines: int = Field(50_000, ge=1, description="lines per input file, as the hosted API")
    max_bytes: int = Field(200 * 1024 * 1024, ge=1, description="bytes per input file")
    seed: int = 0


@dataclass
class _Batch:
    id: str
    kind: str  # openai | anthropic
    lines: list[dict[str, Any]]
    state: str
    polls: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    results: bytes = b""
    counts: dict[str, int] = field(default_factory=dict)


class MockBatches:
    """The batch state of one mock server: uploaded files, batches, and counters tests read."""

    def __init__(self, config: BatchConfig | None = None) -> None:
        self.config = config or BatchConfig()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.attempts: Counter[str] = Counter()
        self.lines_received = 0
        self.billed: Counter[str] = Counter()  # tokens of the lines answered: what the vendor bills
        self.cancelled = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v1/files", self._bound("upload")),
            ("GET", "/v1/files/{id}/content", self._bound("content")),
            ("POST", "/v1/batches", self._bound("create")),
            ("GET", "/v1/batches/{id}", self._bound("retrieve")),
            ("POST", "/v1/batches/{id}/cancel", self._bound("cancel")),
            ("POST", "/v1/messages/batches", self._bound("a_create")),
            ("GET", "/v1/messages/batches/{id}", self._bound("a_retrieve")),
            ("GET", "/v1/messages/batches/{id}/results", self._bound("a_results")),
            ("POST", "/v1/messages/batches/{id}/cancel", self._bound("a_cancel")),
        ]

    def _bound(self, name: str) -> Handler:
        method = getattr(self, name)

        async def handler(app: MockApp, request: web.Request) -> web.StreamResponse:
            return await method(app, request)

        return handler

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    # ---- OpenAI files ----------------------------------------------------------------------------------

    async def upload(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        app.check_key(request, "openai")
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not hasattr(upload, "file"):
            raise app.error(400, "Send purpose=batch and a file.", "invalid_request_error")
        data = upload.file.read()  # type: ignore[union-attr]
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        if len(data) > self.config.max_bytes or lines > self.config.max_lines:
            raise app.error(
                400, f"File too large: {len(data)} bytes, {lines} lines.", "invalid_request_error"
            )
        file_id = self._new_id("file")
        self.files[file_id] = data
        body = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "purpose": "batch",
            "filename": getattr(upload, "filename", "batch.jsonl"),
        }
        return _json(body)

    async def content(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        app.check_key(request, "openai")
        data = self.files.get(request.match_info["id"])
        if data is None:
            raise app.error(404, "No such file.", "not_found")
        return web.Response(body=data, content_type="application/jsonl")

    # ---- OpenAI batches --------------------------------------------------------------------------------

    async def create(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        app.check_key(request, "openai")
        body = await app.read_json(request, "openai")
        data = self.files.get(str(body.get("input_file_id")))
        if data is None:
            raise app.error(400, "input_file_id is not an uploaded file.", "invalid_request_error")
        if body.get("endpoint") != "/v1/chat/completions":
            raise app.error(400, "Only /v1/chat/completions is supported.", "invalid_request_error")
        lines = [orjson.loads(x) for x in data.splitlines() if x.strip()]
        if duplicate := _duplicate_id(lines):  # the real API fails such a file at validation
            raise app.error(
                400, f"Duplicate custom_id '{duplicate}' in the input file.", "invalid_request_error"
            )
        batch = _Batch(self._new_id("batch"), "openai", lines, "validating")
        self.batches[batch.id] = batch
        self.lines_received += len(lines)
        return _json(self._openai_view(batch))

    async def retrieve(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        app.check_key(request, "openai")
        batch = self._get(app, request, "openai")
        self._advance(app, batch, ("validating", "in_progress", "completed"))
        return _json(self._openai_view(batch))

    async def cancel(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        batch = self._get(app, request, "openai")
        if batch.state in ("validating", "in_progress"):
            batch.state = "cancelled"
            self.cancelled += 1
        return _json(self._openai_view(batch))

    def _get(self, app: MockApp, request: web.Request, kind: str) -> _Batch:
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.kind != kind:
            raise app.error(404, "No such batch.", "not_found", style=kind)
        return batch

    def _advance(self, app: MockApp, batch: _Batch, states: tuple[str, ...]) -> None:
        if batch.state not in states[:-1]:
            return
        batch.polls += 1
        if batch.polls < self.config.polls_per_state:
            return
        batch.polls = 0
        batch.state = states[states.index(batch.state) + 1]
        if batch.state == states[-1]:
            self._finish(app, batch)

    def _finish(self, app: MockApp, batch: _Batch) -> None:
        good: list[bytes] = []
        bad: list[bytes] = []
        for line in batch.lines:
            outcome, record = self._answer_line(app, batch.kind, line)
            if outcome == "succeeded":
                self.billed.update(_line_usage(batch.kind, record))
            (good if outcome == "succeeded" else bad).append(orjson.dumps(record))
            batch.counts[outcome] = batch.counts.get(outcome, 0) + 1
        if batch.kind == "anthropic":
            batch.results = b"\n".join(good + bad) + b"\n"
            return
        if good:
            batch.output_file_id = self._new_id("file")
            self.files[batch.output_file_id] = b"\n".join(good) + b"\n"
        if bad:
            batch.error_file_id = self._new_id("file")
            self.files[batch.error_file_id] = b"\n".join(bad) + b"\n"

    def _answer_line(self, app: MockApp, kind: str, line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        body = line.get("body") if kind == "openai" else line.get("params")
        body = body if isinstance(body, dict) else {}
        custom_id = str(line.get("custom_id"))
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        pairs = [(str(m.get("role")), _text_of(m.get("content"))) for m in messages]
        key = _prompt_key(kind, str(body.get("system") or ""), pairs)
        with self._lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        u = draw(key, attempt, f"batch/{self.config.seed}")
        if u < self.config.expire_share:
            return "expired", _expired(kind, custom_id)
        if u < self.config.expire_share + self.config.fail_share:
            return "errored", _errored(kind, custom_id)
        return "succeeded", _succeeded(app, kind, custom_id, body, pairs)

    def _openai_view(self, batch: _Batch) -> dict[str, Any]:
        done = sum(batch.counts.values())
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "status": batch.state,
            "input_file_id": None,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "completion_window": "24h",
            "request_counts": {
                "total": len(batch.lines),
                "completed": batch.counts.get("succeeded", 0),
                "failed": done - batch.counts.get("succeeded", 0),
            },
        }

    # ---- Anthropic message batches ---------------------------------------------------------------------

    async def a_create(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        app.check_key(request, "anthropic")
        body = await app.read_json(request, "anthropic")
        lines = body.get("requests")
        if not isinstance(lines, list) or not lines:
            raise app.error(
                400, "'requests' must be a non-empty list.", "invalid_request_error", style="anthropic"
            )
        if len(lines) > self.config.max_lines:
            raise app.error(
                400, f"Too many requests: {len(lines)}.", "invalid_request_error", style="anthropic"
            )
        if duplicate := _duplicate_id(lines):
            raise app.error(
                400, f"Duplicate custom_id '{duplicate}'.", "invalid_request_error", style="anthropic"
            )
        batch = _Batch(self._new_id("msgbatch"), "anthropic", lines, "in_progress")
        self.batches[batch.id] = batch
        self.lines_received += len(lines)
        return _json(self._anthropic_view(request, batch))

    async def a_retrieve(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        app.check_key(request, "anthropic")
        batch = self._get(app, request, "anthropic")
        self._advance(app, batch, ("in_progress", "ended"))
        return _json(self._anthropic_view(request, batch))

    async def a_results(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        batch = self._get(app, request, "anthropic")
        if batch.state != "ended":
            raise app.error(400, "The batch has not ended.", "invalid_request_error", style="anthropic")
        return web.Response(body=batch.results, content_type="application/binary")

    async def a_cancel(self, app: MockApp, request: web.Request) -> web.StreamResponse:
        batch = self._get(app, request, "anthropic")
        if batch.state == "in_progress":
            batch.state = "ended"
            self.cancelled += 1
            batch.results = (
                b"\n".join(
                    orjson.dumps({"custom_id": line.get("custom_id"), "result": {"type": "canceled"}})
                    for line in batch.lines
                )
                + b"\n"
            )
        return _json(self._anthropic_view(request, batch))

    def _anthropic_view(self, request: web.Request, batch: _Batch) -> dict[str, Any]:
        ended = batch.state == "ended"
        root = f"{request.scheme}://{request.host}"
        counts = {
            "processing": 0 if ended else len(batch.lines),
            "succeeded": batch.counts.get("succeeded", 0),
            "errored": batch.counts.get("errored", 0),
            "canceled": 0,
            "expired": batch.counts.get("expired", 0),
        }
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.state,
            "request_counts": counts,
            "results_url": f"{root}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _duplicate_id(lines: list[Any]) -> str | None:
    """The first custom_id that two lines share: OpenAI and Anthropic refuse such a batch."""
    seen: set[str] = set()
    for line in lines:
        cid = str(line.get("custom_id")) if isinstance(line, dict) else ""
        if cid in seen:
            return cid
        seen.add(cid)
    return None


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _succeeded(
    app: MockApp, kind: str, custom_id: str, body: dict[str, Any], pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    if kind == "anthropic":  # as the online /v1/messages: JSON for output_config.format (or a '{' prefill)
        system = _text_of(body.get("system") or "")
        schema, json_mode, prefill = anthropic_answer_spec(body, system, pairs)
        text, out_tokens, _ = app.answer(pairs, schema, json_mode, body.get("max_tokens"))
        text = text[len(prefill) :] if prefill and text.startswith(prefill) else text
        prompt_tokens = estimate_tokens(system) + sum(estimate_tokens(c) for _, c in pairs)
        message = {
            "id": f"msg_{custom_id}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": prompt_tokens, "output_tokens": out_tokens},
        }
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    text, out_tokens, finish = app.answer(
        pairs, schema, fmt.get("type") == "json_object", body.get("max_tokens")
    )
    prompt_tokens = sum(estimate_tokens(c) for _, c in pairs)
    completion = {
        "id": f"chatcmpl-{custom_id}",
        "object": "chat.completion",
        "model": body.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out_tokens,
            "total_tokens": prompt_tokens + out_tokens,
        },
    }
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": f"req_{custom_id}", "body": completion},
        "error": None,
    }


def _line_usage(kind: str, record: dict[str, Any]) -> dict[str, int]:
    """Input and output tokens of one answered line (billed at the batch price)."""
    if kind == "anthropic":
        usage = record["result"]["message"]["usage"]
        return {"input": usage["input_tokens"], "output": usage["output_tokens"]}
    usage = record["response"]["body"]["usage"]
    return {"input": usage["prompt_tokens"], "output": usage["completion_tokens"]}


def _errored(kind: str, custom_id: str) -> dict[str, Any]:
    if kind == "anthropic":
        error = {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
        return {"custom_id": custom_id, "result": {"type": "errored", "error": error}}
    body = {"error": {"message": "The server had an error processing your request.", "type": "server_error"}}
    return {
        "id": f"batch_req_{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": 500, "request_id": f"req_{custom_id}", "body": body},
        "error": None,
    }


def _expired(kind: str, custom_id: str) -> dict[str, Any]:
    if kind == "anthropic":
        return {"custom_id": custom_id, "result": {"type": "expired"}}
    error = {
        "code": "batch_expired",
        "message": "This request could not be executed before the batch expired.",
    }
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": None, "error": error}
