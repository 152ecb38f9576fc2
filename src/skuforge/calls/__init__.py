"""Wrappers around a provider: limits, retries, cache. Each is itself a `Provider`; the engine sees only that.

    build_client(provider, limits, cache=..., budget=...)
        ->  Cached(Retrying(Breaker(Hedged(Limited(Budgeted(provider))))))

The cache is outermost, so a hit takes no limiter slot, no retry budget and no money; each retry attempt goes
back through the limiter and takes a new slot (and waits out any cool-down a 429 started), then reserves its
cost against the budget. The attempt timeout starts when the limiter sends the request, not while it queues.
The breaker sees every attempt; once the provider cannot be reached or rejects the key it stops them all
(ProviderUnavailable, never retried). For a remote provider, `Hedged` sends a second copy of a request
stuck well past the usual latency (at most `limits.hedge_share` of requests; each copy takes a limiter slot
and reserves its cost) and gives each request a deadline from the latencies seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from skuforge.calls.breaker import Breaker
from skuforge.calls.budget import Budget, Budgeted
from skuforge.calls.cache import Cached, ResponseCache
from skuforge.calls.hedge import Hedged
from skuforge.calls.limits import Limited
from skuforge.calls.retry import Retrying, backoff_s
from skuforge.calls.stats import CallStats
from skuforge.config import Limits
from skuforge.providers.base import Provider
from skuforge.providers.prices import Price

__all__ = [
    "Breaker",
    "Budget",
    "Budgeted",
    "CallStats",
    "Cached",
    "Hedged",
    "Limited",
    "ResponseCache",
    "Retrying",
    "backoff_s",
    "build_client",
]


def build_client(
    provider: Provider,
    limits: Limits,
    *,
    cache: ResponseCache | None,
    stats: CallStats | None = None,
    budget: Budget | None = None,
    price: Price | None = None,
    winding_down: Callable[[], bool] | None = None,
) -> Provider:
    """Compose the wrappers around `provider` from `limits`; every layer reports into one `CallStats`.
    `winding_down` says when the executor has started every row of the run (`Hedged` then hedges the
    stragglers sooner); the local executor tells it."""
    stats = stats if stats is not None else CallStats()
    client: Provider = provider
    if budget is not None:
        client = Budgeted(client, budget, price)
    hedging = provider.remote and limits.hedge_share > 0
    room = math.ceil(limits.concurrency * limits.hedge_share) if hedging else 0  # the copies' own slots
    client = Limited(
        client, concurrency=limits.concurrency + room, rpm=limits.rpm, tpm=limits.tpm, stats=stats
    )
    if hedging:
        client = Hedged(
            client,
            timeout_s=limits.timeout_s,
            max_share=limits.hedge_share,
            concurrency=limits.concurrency,
            winding_down=winding_down,
            stats=stats,
        )
    client = Breaker(client, stats=stats)  # unreachable or key rejected: stop every attempt (not retried)
    client = Retrying(
        client,
        max_retries=limits.max_retries,
        timeout_s=limits.timeout_s,
        stats=stats,
        timed_below=hedging,  # Hedged's deadline is the timeout or less: one timer per attempt, not two
    )
    if cache is not None:
        client = Cached(client, cache, stats=stats)
    return client
