"""Retries: backoff with full jitter, retry_after honoured, permanent errors raised at once, timeouts."""

from __future__ import annotations

import pytest
from calls_fakes import HANG, Scripted, ask, now, run_virtual

from skuforge.calls import CallStats, Limited, Retrying, backoff_s
from skuforge.errors import PermanentError, RateLimitError, TransientError


class Sleeps:
    """Records the delays asked for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def test_retry_succeeds_after_transient_faults_and_counts_them() -> None:
    provider = Scripted([TransientError("502 bad gateway"), TransientError("connection reset"), "fine"])
    stats, sleeps = CallStats(), Sleeps()
    client = Retrying(provider, error_base_s=0.5, cap_s=30, stats=stats, sleep=sleeps, draw=lambda: 0.999)

    result = run_virtual(client.generate(ask()))

    assert result.text == "fine"
    assert len(provider.calls) == 3
    assert (stats.requests, stats.retries, stats.succeeded, stats.failed) == (3, 2, 1, 0)
    assert stats.input_tokens == 10 and stats.output_tokens == 5
    assert sleeps.delays == [pytest.approx(0.4995), pytest.approx(0.999)]


def test_retry_gives_up_after_the_last_attempt_and_says_how_many() -> None:
    provider = Scripted([TransientError(f"500 number {i}", "try later") for i in range(10)])
    stats = CallStats()
    client = Retrying(provider, max_retries=2, stats=stats, sleep=Sleeps())

    with pytest.raises(TransientError) as caught:
        run_virtual(client.generate(ask()))

    assert len(provider.calls) == 3
    assert caught.value.message == "500 number 2 (gave up after 3 attempts)"
    assert caught.value.hint == "try later"
    assert stats.failed == 1 and stats.retries == 2


def test_a_permanent_error_is_never_retried() -> None:
    provider = Scripted([PermanentError("401 invalid API key", status=401), "never reached"])
    client = Retrying(provider, sleep=Sleeps())

    with pytest.raises(PermanentError) as caught:
        run_virtual(client.generate(ask()))

    assert len(provider.calls) == 1
    assert caught.value.status == 401
    assert "gave up" not in caught.value.message


def test_a_server_error_is_retried_sooner_than_a_rate_limit() -> None:
    faults = [TransientError("500"), RateLimitError("429"), TransientError("dropped"), "ok"]
    sleeps = Sleeps()
    client = Retrying(Scripted(faults), sleep=sleeps, draw=lambda: 0.999)

    assert run_virtual(client.generate(ask())).text == "ok"
    assert sleeps.delays == [pytest.approx(0.0999), pytest.approx(0.999), pytest.approx(0.3996)]


def test_a_rate_limit_waits_at_least_retry_after() -> None:
    provider = Scripted([RateLimitError("429", retry_after=7.0), "ok"])
    sleeps = Sleeps()
    client = Retrying(provider, sleep=sleeps, draw=lambda: 0.0)

    assert run_virtual(client.generate(ask())).text == "ok"
    assert sleeps.delays == [7.0]


def test_a_rate_limit_error_keeps_its_class_and_retry_after_when_giving_up() -> None:
    provider = Scripted([RateLimitError("429", retry_after=2.0) for _ in range(3)])
    client = Retrying(provider, max_retries=1, sleep=Sleeps())

    with pytest.raises(RateLimitError) as caught:
        run_virtual(client.generate(ask()))

    assert caught.value.retry_after == 2.0
    assert "gave up after 2 attempts" in caught.value.message


def test_a_slow_attempt_times_out_as_a_transient_error() -> None:
    provider = Scripted([HANG, HANG])
    stats = CallStats()
    client = Retrying(provider, max_retries=1, timeout_s=5, stats=stats, sleep=Sleeps())

    with pytest.raises(TransientError) as caught:
        run_virtual(client.generate(ask()))

    assert "timed out after 5s" in caught.value.message
    assert "gave up after 2 attempts" in caught.value.message
    assert stats.timeouts == 2


def test_the_timeout_clock_starts_when_the_limiter_sends_the_request() -> None:
    provider = Scripted(delay_s=8.0)
    client = Retrying(Limited(provider, concurrency=1), timeout_s=10, max_retries=0)

    async def main() -> float:
        import asyncio

        await asyncio.gather(client.generate(ask()), client.generate(ask()), client.generate(ask()))
        return now()

    assert run_virtual(main()) == pytest.approx(24.0)  # three 8 s calls in a row, none timed out
    assert provider.started == [0.0, 8.0, 16.0]


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    delays = [backoff_s(n, base_s=0.5, cap_s=30, draw=1.0) for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_s(5, base_s=0.5, cap_s=30, draw=0.0) == 0.0
