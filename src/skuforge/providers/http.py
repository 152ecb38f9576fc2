"""HTTP plumbing shared by the hosted providers: one pooled session, fault mapping, secret redaction.

Fault mapping is the contract the retry wrapper relies on:
429 -> RateLimitError (retry_after from Retry-After, retry-after-ms or x-ratelimit-reset-*),
408/409/5xx, dropped connections, cut bodies and malformed bodies -> TransientError,
other 4xx -> PermanentError (401/403 name the key's environment variable, never the key).
A connection that could not even be opened (refused, unknown host, connect timeout) is a `ConnectError`,
a TransientError that the circuit breaker (`skuforge.calls.breaker`) counts: many in a row mean the base URL
is wrong or down, and every request would fail the same way.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import socket
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from skuforge.errors import PermanentError, ProviderError, RateLimitError, TransientError

# Raised by aiohttp when a connection drops, a body is cut short or the server closes mid-answer.
NETWORK_FAULTS = (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError, OSError)
# Raised when no connection could be opened at all: nothing reached the server, nothing was spent.
CONNECT_FAULTS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    ConnectionRefusedError,
    socket.gaierror,
    *((aiohttp.ConnectionTimeoutError,) if hasattr(aiohttp, "ConnectionTimeoutError") else ()),
)


class ConnectError(TransientError):
    """No connection to `url` could be opened (`reason` says why). Retried, and counted by the breaker."""

    def __init__(self, message: str, hint: str | None = None, *, url: str, reason: str) -> None:
        super().__init__(message, hint)
        self.url, self.reason = url, reason


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


def network_error(exc: BaseException, where: str, url: str = "") -> TransientError:
    """A dropped connection, cut body or timeout: worth retrying. No connection at all: a ConnectError."""
    kind = type(exc).__name__
    detail = str(exc) or kind
    message = f"{where}: connection failed ({kind}: {detail})"
    if isinstance(exc, CONNECT_FAULTS):
        reason = connect_reason(exc)
        return ConnectError(message, "The call will be retried.", url=url or where, reason=reason)
    return TransientError(message, "The call will be retried.")


def connect_reason(exc: BaseException) -> str:
    """A short reason a connection could not be opened: 'connection refused', 'unknown host', ..."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "unknown host (DNS lookup failed)"
        if isinstance(cause, TimeoutError) or "timeout" in type(cause).__name__.lower():
            return "no answer to the connection attempt (timed out)"
        cause = getattr(cause, "os_error", None) or cause.__cause__
    return str(exc) or type(exc).__name__


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


def append_to_last_user(messages: list[dict[str, Any]], note: str) -> None:
    """Add `note` to the last user turn (or a new one), so the system prompt and examples before it stay a
    fixed prefix that a server's prompt cache can reuse from one row to the next."""
    for message in reversed(messages):
        if message["role"] == "user":
            message["content"] = f"{message['content']}\n\n{note}"
            return
    messages.append({"role": "user", "content": note})
