"""The circuit breaker: a provider that cannot be reached, or rejects the key, stops every request at once."""

from __future__ import annotations

import asyncio
import socket

import pytest
from calls_fakes import Scripted, ask, run_virtual

from skuforge.calls import Breaker, CallStats, build_client
from skuforge.config import Limits
from skuforge.errors import PermanentError, ProviderUnavailable, TransientError
from skuforge.providers.base import Message, Request
from skuforge.providers.http import ConnectError
from skuforge.providers.openai import OpenAIProvider

URL = "http://127.0.0.1:9/v1"


def refused() -> ConnectError:
    return ConnectError(f"openai:x at {URL}: connection failed", url=URL, reason="connection refused")


async def attempts(client: Breaker, n: int) -> list[BaseException | None]:
    """Send `n` requests one after the other; what each raised (None for an answer)."""
    out: list[BaseException | None] = []
    for i in range(n):
        try:
            await client.generate(ask(f"row {i}"))
            out.append(None)
        except (TransientError, PermanentError, ProviderUnavailable) as exc:
            out.append(exc)
    return out


def test_five_connection_failures_in_a_row_open_it_and_say_what_to_do() -> None:
    inner = Scripted([refused() for _ in range(5)])
    errors = run_virtual(attempts(Breaker(inner), 5))
    assert all(isinstance(e, ConnectError) for e in errors[:4])
    opened = errors[4]
    assert isinstance(opened, ProviderUnavailable)
    assert f"cannot reach {URL}: connection refused" in opened.message
    assert "nothing was spent for it" in opened.message and "skuforge resume JOB" in opened.message


def test_once_open_nothing_more_reaches_the_provider() -> None:
    inner = Scripted([refused() for _ in range(5)])
    breaker = Breaker(inner)
    errors = run_virtual(attempts(breaker, 50))
    assert len(inner.calls) == 5 and breaker.is_open
    assert all(e is errors[4] for e in errors[4:])


def test_an_answer_in_between_resets_the_count() -> None:
    inner = Scripted([*(refused() for _ in range(4)), "ok", *(refused() for _ in range(4)), "ok"])
    breaker = Breaker(inner)
    errors = run_virtual(attempts(breaker, 10))
    assert not breaker.is_open and errors[4] is None and errors[9] is None


@pytest.mark.parametrize(
    "fault",
    [TransientError("HTTP 500", status=500), TransientError("connection dropped mid-answer")],
)
def test_server_errors_and_dropped_answers_never_open_it(fault: TransientError) -> None:
    breaker = Breaker(Scripted([fault for _ in range(20)]))
    errors = run_virtual(attempts(breaker, 20))
    assert not breaker.is_open and all(isinstance(e, TransientError) for e in errors)


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_opens_it_at_once(status: int) -> None:
    rejected = PermanentError("openai:x answered HTTP 401: bad key", "Check $OPENAI_API_KEY", status=status)
    stats = CallStats()
    inner = Scripted([rejected, "never sent"])
    errors = run_virtual(attempts(Breaker(inner, stats=stats), 3))
    assert all(isinstance(e, ProviderUnavailable) and e.status == status for e in errors)
    assert "rejected the API key" in str(errors[0]) and "OPENAI_API_KEY" in str(errors[0])
    assert len(inner.calls) == 1 and stats.unavailable == 1


def test_other_permanent_errors_pass_through() -> None:
    bad = PermanentError("HTTP 400: context too long", status=400)
    breaker = Breaker(Scripted([bad]))
    (error,) = run_virtual(attempts(breaker, 1))
    assert error is bad and not breaker.is_open


def test_in_a_client_retries_stop_as_soon_as_it_opens() -> None:
    """Seven attempts per request are allowed; an unreachable server costs five in all, not 7 x rows."""
    inner = Scripted([refused() for _ in range(100)])
    client = build_client(inner, Limits(concurrency=1, max_retries=6), cache=None)

    async def rows() -> list[BaseException]:
        out: list[BaseException] = []
        for i in range(20):
            with pytest.raises((ProviderUnavailable, TransientError)) as info:
                await client.generate(ask(f"row {i}"))
            out.append(info.value)
        return out

    errors = run_virtual(rows())
    assert len(inner.calls) == 5
    assert all(isinstance(e, ProviderUnavailable) for e in errors)


def test_a_refused_connection_over_real_http_is_a_connect_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/v1"

    async def go() -> None:
        async with OpenAIProvider("gpt-5-mini", base_url=base) as provider:
            await provider.generate(Request(messages=[Message(role="user", content="hi")]))

    with pytest.raises(ConnectError) as info:
        asyncio.run(go())
    assert info.value.url == base and info.value.reason == "connection refused"
