"""build_client: Cached(Retrying(Breaker(Limited(provider)))) — the order matters, and it is pinned here."""

from __future__ import annotations

import asyncio
from pathlib import Path

from calls_fakes import HANG, Scripted, ask, run_virtual

from skuforge.calls import Breaker, Cached, CallStats, Limited, ResponseCache, Retrying, build_client
from skuforge.config import Limits
from skuforge.errors import RateLimitError


def test_build_client_puts_the_cache_outside_retries_outside_the_breaker_outside_limits(
    tmp_path: Path,
) -> None:
    provider = Scripted()
    with ResponseCache(tmp_path / "cache.db") as cache:
        client = build_client(provider, Limits(concurrency=4, rpm=100), cache=cache)
    assert isinstance(client, Cached)
    assert isinstance(client.inner, Retrying)
    assert isinstance(client.inner.inner, Breaker)
    assert isinstance(client.inner.inner.inner, Limited)
    assert client.inner.inner.inner.inner is provider
    assert client.name == provider.name


def test_without_a_cache_the_client_starts_at_retries() -> None:
    client = build_client(Scripted(), Limits(), cache=None)
    assert isinstance(client, Retrying)


def test_a_cache_hit_takes_no_limiter_slot(tmp_path: Path) -> None:
    provider = Scripted(["cached answer", HANG])
    stats = CallStats()

    async def main() -> str:
        with ResponseCache(tmp_path / "cache.db") as cache:
            client = build_client(provider, Limits(concurrency=1, timeout_s=600), cache=cache, stats=stats)
            await client.generate(ask("product 1"))
            busy = asyncio.ensure_future(client.generate(ask("product 2")))  # holds the only slot
            await asyncio.sleep(1)
            hit = await client.generate(ask("product 1"))
            busy.cancel()
            await asyncio.gather(busy, return_exceptions=True)
            return hit.text

    assert run_virtual(main()) == "cached answer"
    assert len(provider.calls) == 2
    assert stats.cache_hits == 1


def test_each_retry_goes_back_through_the_limiter_and_waits_out_the_cool_down() -> None:
    provider = Scripted([RateLimitError("429 too many requests", retry_after=20), "ok"])
    stats = CallStats()

    client = build_client(provider, Limits(concurrency=2, max_retries=2), cache=None, stats=stats)
    assert run_virtual(client.generate(ask())).text == "ok"
    assert provider.started[0] == 0.0
    assert provider.started[1] >= 20.0
    assert (stats.requests, stats.retries, stats.rate_limited, stats.succeeded) == (2, 1, 1, 1)


def test_one_stats_object_adds_up_every_layer(tmp_path: Path) -> None:
    provider = Scripted(["a", "b"])
    stats = CallStats()

    async def main() -> None:
        with ResponseCache(tmp_path / "cache.db") as cache:
            client = build_client(provider, Limits(), cache=cache, stats=stats)
            for text in ("x", "y", "x", "y", "x"):
                await client.generate(ask(text))

    run_virtual(main())
    assert stats.requests == 2 and stats.cache_hits == 3
    assert stats.input_tokens == 20 and stats.output_tokens == 10
    assert "2 sent, 3 cached" in stats.summary()
