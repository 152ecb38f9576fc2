"""Counters shared by the call wrappers, read by the progress display and the run summary.

One `CallStats` is handed to every wrapper of a client (see `build_client`), so the figures add up across
layers: the cache counts hits, the retry layer counts requests sent, retries, timeouts and tokens, the limiter
counts rate-limit responses and the time requests spent queued. Plain integers updated on one event loop: no
locks, no cost worth measuring.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from skuforge.providers.base import Usage


@dataclass
class CallStats:
    """What the wrappers did. Every field only grows; `snapshot()` gives a copy for display."""

    requests: int = 0
    """Requests handed to the provider (each retry attempt counts once)."""
    succeeded: int = 0
    failed: int = 0
    """Requests that gave up (a permanent error, or retries exhausted)."""
    cache_hits: int = 0
    retries: int = 0
    timeouts: int = 0
    rate_limited: int = 0
    """Rate-limit answers (429) received from the provider."""
    rate_limit_waits: int = 0
    """Times the limiter held its queue for a token bucket or a shared cool-down."""
    queued_s: float = 0.0
    """Total seconds requests waited in the limiter's queue before they were sent."""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """Input tokens the provider read from its prompt cache (a cheaper rate where the vendor has one)."""
    hedges: int = 0
    """Second copies sent for requests still unanswered well past the usual latency."""
    hedge_wins: int = 0
    """Of those, the copies that answered first."""
    deadline_timeouts: int = 0
    """Requests given up at the deadline derived from the observed latencies (then retried)."""
    unavailable: int = 0
    """Times the circuit breaker opened (provider unreachable or key rejected): 0 or 1 per client."""

    def add_usage(self, usage: Usage) -> None:
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens

    @property
    def cache_hit_share(self) -> float | None:
        """Share of input tokens served from the provider's prompt cache; None before any input."""
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else None

    def snapshot(self) -> dict[str, float]:
        """A copy of the counters as a plain dict (for JSON progress events)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for a terminal: what was sent, served from cache, retried and waited."""
        parts = [f"{self.requests} sent", f"{self.cache_hits} cached"]
        if self.retries:
            parts.append(f"{self.retries} retried")
        if self.timeouts:
            parts.append(f"{self.timeouts} timed out")
        if self.hedges:
            parts.append(f"{self.hedges} hedged ({self.hedge_wins} won)")
        if self.deadline_timeouts:
            parts.append(f"{self.deadline_timeouts} past their deadline")
        if self.rate_limited:
            parts.append(f"{self.rate_limited} rate-limited")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.unavailable:
            parts.append("stopped: provider unavailable")
        parts.append(f"{self.input_tokens:,} tokens in / {self.output_tokens:,} out")
        if self.cache_hit_share:
            parts.append(f"{self.cache_hit_share:.0%} of input from the prompt cache")
        return ", ".join(parts)
