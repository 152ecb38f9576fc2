"""Provider batch APIs: OpenAI Batch (Files + /v1/batches) and Anthropic Message Batches.

A batch API takes many requests at once and answers within hours at about half the price. Each client here
does four things, all over the provider's own pooled aiohttp session and the same fault mapping as online
calls: turn a request into one line, submit a file of lines, poll a batch, and read its per-line results.
Which line is which is carried by its `custom_id` (at most 64 characters of [A-Za-z0-9_-], as Anthropic
requires), so results can arrive in any order, and a line that failed or expired is simply sent again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from skuforge.errors import ConfigError, ProviderError
from skuforge.providers import http
from skuforge.providers.base import Provider, Request, Usage


@dataclass(slots=True)
class LineResult:
    """The outcome of one line: the answer's text and usage, or an error and whether to send it again."""

    custom_id: str
    text: str | None = None
    usage: Usage | None = None
    error: str | None = None
    retry: bool = True


class BatchAPI(ABC):
    """One provider's batch endpoints. States from `poll`: 'running', 'ended' (results ready), 'failed'."""

    name = ""
    provider: Any

    @abstractmethod
    def line(self, custom_id: str, request: Request) -> bytes:
        """One request as it goes into a batch (one JSONL line, or one element of a JSON list)."""

    @abstractmethod
    async def submit(self, lines: list[bytes]) -> str:
        """Send the lines as one batch; returns the batch id."""

    @abstractmethod
    async def poll(self, batch_id: str) -> str:
        """The batch's state: 'running', 'ended' or 'failed'."""

    @abstractmethod
    async def results(self, batch_id: str, custom_ids: list[str]) -> list[LineResult]:
        """A result for every one of `custom_ids`: answered, failed, or missing (expired)."""

    @abstractmethod
    async def cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch; lines already answered are still returned."""

    def text(self, result: LineResult, request: Request) -> str:
        """The answer as the online provider would give it (e.g. Anthropic's JSON prefill put back)."""
        return result.text or ""

    async def _call(self, method: str, url: str, **kwargs: Any) -> bytes:
        where = f"{self.provider.name} batch API at {url}"
        try:
            async with self.provider.session().request(method, url, **kwargs) as resp:
                raw = await resp.read()
        except http.NETWORK_FAULTS as exc:
            raise http.network_error(exc, where) from None
        if resp.status >= 400:
            raise http.http_error(
                resp.status,
                resp.headers,
                raw,
                where=where,
                key=self.provider._key,
                key_env=self.provider._key_env,
            )
        return raw

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        return http.decode_body(await self._call(method, url, **kwargs), f"{self.provider.name} batch API")

    async def aclose(self) -> None:
        await self.provider.aclose()


def _missing(custom_ids: list[str], seen: set[str], why: str) -> list[LineResult]:
    return [LineResult(cid, error=why, retry=True) for cid in custom_ids if cid not in seen]


class OpenAIBatchAPI(BatchAPI):
    """`POST /files` (purpose=batch), `POST /batches`, `GET /batches/{id}`, `GET /files/{id}/content`."""

    name = "openai-batch"
    RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
    ENDED = frozenset({"completed", "expired", "cancelled"})

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.base = provider.base_url

    def line(self, custom_id: str, request: Request) -> bytes:
        body = self.provider.body(request)
        return orjson.dumps(
            {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
        )

    async def submit(self, lines: list[bytes]) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field(
            "file",
            b"\n".join(lines) + b"\n",
            filename="skuforge-batch.jsonl",
            content_type="application/jsonl",
        )
        payload = form()  # the session's JSON content type must not override the multipart one
        uploaded = await self._json(
            "POST", f"{self.base}/files", data=payload, headers={"Content-Type": payload.content_type}
        )
        body = {
            "input_file_id": uploaded["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        created = await self._json("POST", f"{self.base}/batches", data=orjson.dumps(body))
        return str(created["id"])

    async def poll(self, batch_id: str) -> str:
        self._last = await self._json("GET", f"{self.base}/batches/{batch_id}")
        status = self._last.get("status")
        if status in self.RUNNING:
            return "running"
        return "ended" if status in self.ENDED else "failed"

    async def results(self, batch_id: str, custom_ids: list[str]) -> list[LineResult]:
        info = await self._json("GET", f"{self.base}/batches/{batch_id}")
        out: list[LineResult] = []
        for field in ("output_file_id", "error_file_id"):
            if file_id := info.get(field):
                raw = await self._call("GET", f"{self.base}/files/{file_id}/content")
                out += [self._parse(orjson.loads(x)) for x in raw.splitlines() if x.strip()]
        why = f"batch {batch_id} ended ({info.get('status')}) without an answer for this line"
        return out + _missing(custom_ids, {r.custom_id for r in out}, why)

    @staticmethod
    def _parse(record: dict[str, Any]) -> LineResult:
        cid = str(record.get("custom_id"))
        response = record.get("response") or {}
        if record.get("error") or not response:
            err = record.get("error") or {}
            return LineResult(cid, error=f"{err.get('code', 'error')}: {err.get('message', '')}".strip())
        status = int(response.get("status_code") or 0)
        body = response.get("body") or {}
        if status != 200:
            detail = http.error_detail(orjson.dumps(body))
            return LineResult(cid, error=f"HTTP {status}: {detail}", retry=status == 429 or status >= 500)
        try:
            text = body["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            return LineResult(cid, error="answer without choices[0].message")
        usage = body.get("usage") or {}
        return LineResult(
            cid,
            text=text,
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
            ),
        )

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", f"{self.base}/batches/{batch_id}/cancel")


class AnthropicBatchAPI(BatchAPI):
    """`POST /v1/messages/batches`, `GET /v1/messages/batches/{id}`, then its `results_url` (JSONL)."""

    name = "anthropic-batch"

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.base = f"{provider.base_url}/v1/messages/batches"

    def line(self, custom_id: str, request: Request) -> bytes:
        return orjson.dumps({"custom_id": custom_id, "params": self.provider.body(request)})

    async def submit(self, lines: list[bytes]) -> str:
        body = b'{"requests":[' + b",".join(lines) + b"]}"
        created = await self._json("POST", self.base, data=body)
        return str(created["id"])

    async def poll(self, batch_id: str) -> str:
        info = await self._json("GET", f"{self.base}/{batch_id}")
        return "ended" if info.get("processing_status") == "ended" else "running"

    async def results(self, batch_id: str, custom_ids: list[str]) -> list[LineResult]:
        info = await self._json("GET", f"{self.base}/{batch_id}")
        url = info.get("results_url") or f"{self.base}/{batch_id}/results"
        raw = await self._call("GET", url)
        out = [self._parse(orjson.loads(x)) for x in raw.splitlines() if x.strip()]
        return out + _missing(
            custom_ids, {r.custom_id for r in out}, f"batch {batch_id} has no result for it"
        )

    @staticmethod
    def _parse(record: dict[str, Any]) -> LineResult:
        cid = str(record.get("custom_id"))
        result = record.get("result") or {}
        kind = result.get("type")
        if kind != "succeeded":
            error = (result.get("error") or {}).get("error") or {}
            permanent = error.get("type") == "invalid_request_error"
            return LineResult(
                cid, error=f"{kind}: {error.get('message', '')}".strip(": "), retry=not permanent
            )
        message = result.get("message") or {}
        blocks = message.get("content") or []
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        usage = message.get("usage") or {}
        return LineResult(
            cid,
            text=text,
            usage=Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
            ),
        )

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", f"{self.base}/{batch_id}/cancel")


def batch_api_for(provider: Provider) -> BatchAPI:
    """The batch API of a hosted provider; other providers (local, fake, Ollama...) have none."""
    from skuforge.providers.anthropic import AnthropicProvider
    from skuforge.providers.openai import OpenAIProvider

    inner = provider
    while hasattr(inner, "inner"):
        inner = inner.inner
    if isinstance(inner, OpenAIProvider) and inner.capabilities.batch:
        return OpenAIBatchAPI(inner)
    if isinstance(inner, AnthropicProvider) and inner.capabilities.batch:
        return AnthropicBatchAPI(inner)
    raise ConfigError(
        f"'{provider.name}' has no batch API that skuforge can use.",
        "Use --mode online for it, or a provider with `batch: true` in its capabilities (openai, anthropic).",
    )


__all__ = ["AnthropicBatchAPI", "BatchAPI", "LineResult", "OpenAIBatchAPI", "ProviderError", "batch_api_for"]
