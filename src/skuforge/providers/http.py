"""HTTP plumbing shared by the hosted providers: one pooled session, fault mapping, secret redaction.

Fault mapping is the contract the retry wrapper relies on:
429 -> RateLimitError (retry_after from Retry-After, retry-after-ms or x-ratelimit-reset-*),
408/409/5xx, dropped connections, cut bodies and malformed bodies -> TransientError,
other 4xx -> PermanentError (401/403 name the key's environment variable, never the key).
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from skuforge.errors import PermanentError, ProviderError, RateLimitError, TransientError

# Raised by aiohttp when a connection drops, a body is cut short or the server closes mid-answer.
NETWORK_FAULTS = (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError, OSError)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
RETRYABLE = frozenset({408, 409, 425, 429})


class Secret:
    """An API key that never prints: repr/str show only that it is set."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """Remove the key (and any long prefix of it a server echoes back) from `text`."""
        if not self._value:
            return text
        text = text.replace(self._value, "[redacted]")
        for size in (24, 16, 10):
            if len(self._value) > size:
                text = text.replace(self._value[:size], "[redacted]")
        return text

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__


def new_session(
    connections: int, total_timeout_s: float, headers: Mapping[str, str]
) -> aiohttp.ClientSession:
    """One pooled keep-alive session per provider, sized for thousands of requests in flight."""
    connector = aiohttp.TCPConnector(
        limit=connections,
        limit_per_host=0,
        keepalive_timeout=30,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    timeout = aiohttp.ClientTimeout(total=total_timeout_s, sock_connect=30)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers=dict(headers),
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


def parse_duration(value: str | None) -> float | None:
    """'1s', '6m0s', '20ms', '1h2m3.5s' or plain seconds ('2', '0.5') -> seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts:
        return None
    return sum(float(num) * _UNITS[unit] for num, unit in parts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: Retry-After / retry-after-ms, else the x-ratelimit-reset-* of an exhausted limit."""
    if ms := headers.get("retry-after-ms"):
        seconds = parse_duration(ms)
        if seconds is not None:
            return seconds / 1000
    if after := headers.get("retry-after"):
        seconds = parse_duration(after)
        if seconds is None:
            try:
                seconds = max(0.0, email.utils.parsedate_to_datetime(after).timestamp() - time.time())
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            return seconds
    resets: dict[str, float] = {}
    for kind in ("requests", "tokens"):
        seconds = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
        if seconds is not None:
            resets[kind] = seconds
    exhausted = [v for k, v in resets.items() if headers.get(f"x-ratelimit-remaining-{k}") == "0"]
    candidates = exhausted or list(resets.values())
    return max(candidates) if candidates else None


def error_detail(raw: bytes, limit: int = 300) -> str:
    """The server's own error message from an OpenAI- or Anthropic-shaped body, else the start of the body."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:limit].decode("utf-8", "replace").strip()
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:limit]
        if isinstance(err, str):
            return err[:limit]
    return raw[:limit].decode("utf-8", "replace").strip()


def http_error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    where: str,
    key: Secret | None,
    key_env: str | None,
) -> ProviderError:
    """Map an HTTP fault to the error the retry wrapper understands; the message never carries the key."""
    detail = error_detail(raw)
    if key is not None:
        detail = key.redact(detail)
    message = f"{where} answered HTTP {status}: {detail}"
    if status == 429:
        wait = retry_after(headers)
        hint = f"Rate limited; retry after {wait:g}s." if wait is not None else "Rate limited; slow down."
        return RateLimitError(message, hint + " Lower --concurrency or set limits.rpm/tpm.", retry_after=wait)
    if status in RETRYABLE or status >= 500:
        return TransientError(
            message, "The server had a temporary fault; the call will be retried.", status=status
        )
    if status in (401, 403):
        env = f"${key_env}" if key_env else "the API key"
        hint = (
            f"The server rejected the key: check {env} (export {key_env or 'THE_KEY'}=...) and the base URL."
        )
        return PermanentError(message, hint, status=status)
    if status == 404:
        return PermanentError(
            message, "Check the model name and the base URL (it usually ends in /v1).", status=status
        )
    if "context" in detail.lower() and ("length" in detail.lower() or "too long" in detail.lower()):
        return PermanentError(
            message, "The prompt is too long for this model; shorten the input.", status=status
        )
    return PermanentError(message, "The server rejected the request; it will not be retried.", status=status)


def network_error(exc: BaseException, where: str) -> TransientError:
    """A dropped connection, cut body or session timeout: worth retrying."""
    kind = type(exc).__name__
    detail = str(exc) or kind
    return TransientError(f"{where}: connection failed ({kind}: {detail})", "The call will be retried.")


def decode_body(raw: bytes, where: str) -> dict[str, Any]:
    """Parse a response body; a malformed body (not the model's output) is a transient server fault."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TransientError(
            f"{where} sent a malformed response body ({exc})", "The call will be retried."
        ) from None
    if not isinstance(body, dict):
        raise TransientError(
            f"{where} sent a response body that is not a JSON object", "The call will be retried."
        )
    return body


def schema_instruction(schema: dict[str, Any] | None) -> str:
    """A system note asking for JSON, for servers that cannot enforce the schema themselves."""
    if schema is None:
        return "Answer with one JSON object and nothing else."
    text = orjson.dumps(schema).decode()
    return f"Answer with one JSON object and nothing else, matching this JSON Schema:\n```json\n{text}\n```"
