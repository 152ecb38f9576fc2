"""The limiter: concurrency, RPM/TPM buckets, the shared cool-down after a 429, adaptive slow-down."""

from __future__ import annotations

import asyncio

import pytest
from calls_fakes import HANG, Scripted, ask, now, run_virtual

from skuforge.calls import CallStats, Limited
from skuforge.errors import RateLimitError


def test_limiter_never_exceeds_concurrency_and_uses_all_of_it() -> None:
    provider = Scripted(delay_s=0.1)
    limited = Limited(provider, concurrency=3)

    async def main() -> None:
        await asyncio.gather(*(limited.generate(ask()) for _ in range(50)))

    run_virtual(main())
    assert provider.max_active == 3
    assert len(provider.calls) == 50
    assert limited.in_flight == 0


def test_rpm_bucket_spreads_requests_one_per_interval_after_the_burst() -> None:
    provider = Scripted()
    limited = Limited(provider, concurrency=100, rpm=60, burst_s=1.0)

    async def main() -> None:
        await asyncio.gather(*(limited.generate(ask()) for _ in range(8)))

    run_virtual(main())
    starts = [round(t - provider.started[0], 6) for t in provider.started]
    # 60 rpm is one a second; a one-second burst lets the second one through at once.
    assert starts == [0, 0, 1, 2, 3, 4, 5, 6]


def test_tpm_bucket_charges_the_estimate_then_corrects_it_from_usage() -> None:
    provider = Scripted()  # every answer reports 10 + 5 = 15 tokens used
    limited = Limited(provider, concurrency=1, tpm=6000, burst_s=0.0)  # 100 tokens a second

    async def main() -> None:
        for _ in range(3):  # estimate: 3 prompt words + 100 max_tokens = 103 tokens
            await limited.generate(ask("one two three", max_tokens=100))

    run_virtual(main())
    starts = [round(t - provider.started[0], 6) for t in provider.started]
    assert starts == [0, 0.15, 0.3]  # charged 15 real tokens each, not the 103 estimated


def test_a_429_with_retry_after_pauses_every_new_request_until_it_passes() -> None:
    provider = Scripted([RateLimitError("slow down", retry_after=30)])
    stats = CallStats()
    limited = Limited(provider, concurrency=10, stats=stats)

    async def main() -> list[float]:
        with pytest.raises(RateLimitError):
            await limited.generate(ask())
        await asyncio.sleep(5)
        await asyncio.gather(*(limited.generate(ask()) for _ in range(5)))
        return provider.started[1:]

    later = run_virtual(main())
    assert len(later) == 5
    assert min(later) >= 30
    assert stats.rate_limited == 1
    assert stats.rate_limit_waits >= 1


def test_a_burst_of_429s_halves_the_speed_once_and_successes_recover_it() -> None:
    errors = [RateLimitError("busy", retry_after=1) for _ in range(4)]
    provider = Scripted(errors, delay_s=0.1)
    limited = Limited(provider, concurrency=8, recover_step=0.1)

    async def main() -> None:
        results = await asyncio.gather(*(limited.generate(ask()) for _ in range(4)), return_exceptions=True)
        assert all(isinstance(r, RateLimitError) for r in results)
        assert limited.factor == 0.5 and limited.effective_concurrency == 4
        for _ in range(5):
            await limited.generate(ask())

    run_virtual(main())
    assert limited.factor == pytest.approx(1.0)
    assert limited.effective_concurrency == 8


def test_after_a_slow_down_fewer_requests_run_at_once() -> None:
    provider = Scripted([RateLimitError("busy", retry_after=1)], delay_s=1.0)
    limited = Limited(provider, concurrency=8, recover_step=0.0)

    async def main() -> None:
        with pytest.raises(RateLimitError):
            await limited.generate(ask())
        provider.max_active = 0
        await asyncio.gather(*(limited.generate(ask()) for _ in range(20)))

    run_virtual(main())
    assert provider.max_active == 4


def test_a_cancelled_waiter_gives_its_place_to_the_next_one() -> None:
    provider = Scripted([HANG, "second"])
    limited = Limited(provider, concurrency=1)

    async def main() -> str:
        first = asyncio.ensure_future(limited.generate(ask()))
        await asyncio.sleep(0)
        waiting = asyncio.ensure_future(limited.generate(ask()))
        await asyncio.sleep(0)
        waiting.cancel()
        third = asyncio.ensure_future(limited.generate(ask()))
        await asyncio.sleep(1)
        first.cancel()
        result = await third
        with pytest.raises(asyncio.CancelledError):
            await waiting
        with pytest.raises(asyncio.CancelledError):
            await first
        return result.text

    assert run_virtual(main()) == "second"
    assert len(provider.calls) == 2
    assert limited.in_flight == 0 and limited.pending == 0


def test_thousands_of_pending_requests_arm_at_most_one_timer_per_admission() -> None:
    provider = Scripted()
    stats = CallStats()
    limited = Limited(provider, concurrency=50, rpm=600_000, burst_s=0.01, stats=stats)

    async def main() -> float:
        await asyncio.gather(*(limited.generate(ask()) for _ in range(5000)))
        return now()

    finished = run_virtual(main())
    assert len(provider.calls) == 5000
    # 10,000 a second after a burst of 100: about half a second of (virtual) time, no polling in between.
    assert 0.45 <= finished <= 0.55
    assert stats.rate_limit_waits <= 5000
