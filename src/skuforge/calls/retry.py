"""Retries with exponential backoff and full jitter, and a per-request timeout.

`Retrying` retries what is worth retrying (`TransientError`, including `RateLimitError`) and nothing else: a
`PermanentError` (bad request, bad key, context too long) is raised at once. Backoff is "full jitter"
(a uniform draw in [0, min(cap, base * 2**n)]), which spreads thousands of clients that failed together; a
rate-limit answer waits at least the `retry_after` the server gave.

The base differs by fault. A 429 says the server is overloaded: 0.5 s, doubling. A 500, a dropped
connection or a timeout is usually one bad request or connection, and the next attempt goes to a server
that is answering others: 0.1 s, doubling (0.1, 0.2, 0.4 ... up to the cap, so a server that keeps failing
is still backed off within a few attempts, and the breaker stops every request when it cannot be reached).
At the end of a run the last requests wait for exactly these retries: with 3% 500s and 1% dropped
connections (S3 of the scale benchmark) the shorter base took 0.2-0.3 s off a 6.7 s run.

The timeout clock of an attempt runs only while the request is *sent*, not while it waits in a limiter's
queue: a `Limited` layer underneath calls `hold_timeout()` when the request has to queue and
`restart_timeout()` once it admits it, so a request that queued for a minute behind a rate limit is not timed
out for it.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar, Token
from typing import Protocol

from skuforge.calls.stats import CallStats
from skuforge.errors import PermanentError, ProviderError, RateLimitError, TransientError
from skuforge.providers.base import Provider, Request, Result, Wrapper


class Clock(Protocol):
    """Something that times a request and must not count the time it waits in a limiter's queue."""

    def hold(self) -> None: ...

    def restart(self) -> None: ...


class TimeoutClock:
    """An `asyncio.Timeout` of `seconds` that stops while the request queues and restarts when admitted."""

    def __init__(self, timeout: asyncio.Timeout, seconds: float) -> None:
        self.timeout, self.seconds = timeout, seconds

    def hold(self) -> None:
        if not self.timeout.expired():
            self.timeout.reschedule(None)

    def restart(self) -> None:
        if not self.timeout.expired():
            self.timeout.reschedule(asyncio.get_running_loop().time() + self.seconds)


# The clocks of the request being sent (the retry layer's attempt timeout, a hedge's deadline), for a
# limiter below to hold while the request queues and restart once it is admitted.
_clocks: ContextVar[tuple[Clock, ...]] = ContextVar("skuforge_clocks", default=())


def hold_timeout() -> None:
    """Stop the current request's clocks (called by a limiter before the request queues)."""
    for clock in _clocks.get():
        clock.hold()


def restart_timeout() -> None:
    """Start the current request's clocks now (called by a limiter when it admits the request)."""
    for clock in _clocks.get():
        clock.restart()


def push_clock(clock: Clock) -> Token[tuple[Clock, ...]]:
    """Add `clock` to the current request's clocks; `pop_clock(token)` removes it."""
    return _clocks.set((*_clocks.get(), clock))


def pop_clock(token: Token[tuple[Clock, ...]]) -> None:
    try:
        _clocks.reset(token)
    except ValueError:  # closed from another context (a coroutine finalised by the garbage collector)
        _clocks.set(())


def without_clocks() -> None:
    """Start a request that no outer clock should wait for (a hedge's extra copy, in its own task)."""
    _clocks.set(())


def backoff_s(attempt: int, *, base_s: float, cap_s: float, draw: float) -> float:
    """Full-jitter delay before retry number `attempt` (1-based); `draw` is uniform in [0, 1)."""
    return draw * min(cap_s, base_s * 2 ** (attempt - 1))


class Retrying(Wrapper):
    """Retry transient faults with backoff; time out slow attempts; never retry a permanent error."""

    def __init__(
        self,
        inner: Provider,
        *,
        max_retries: int = 6,
        timeout_s: float = 120.0,
        base_s: float = 0.5,
        error_base_s: float = 0.1,
        cap_s: float = 30.0,
        stats: CallStats | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
        timed_below: bool = False,
    ) -> None:
        super().__init__(inner)
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.timed_below = timed_below  # a layer below (`Hedged`) times attempts out by `timeout_s`
        self.base_s = base_s  # after a 429
        self.error_base_s = error_base_s  # after any other transient fault
        self.cap_s = cap_s
        self.stats = stats or CallStats()
        self._sleep = sleep
        self._draw = draw

    async def generate(self, request: Request) -> Result:
        attempts = self.max_retries + 1
        last: ProviderError | None = None
        for attempt in range(1, attempts + 1):
            try:
                result = await self._attempt(request)
            except PermanentError:
                self.stats.failed += 1
                raise
            except TransientError as exc:
                last = exc
                if attempt == attempts:
                    break
                self.stats.retries += 1
                await self._sleep(self._delay(attempt, exc))
                continue
            self.stats.succeeded += 1
            self.stats.add_usage(result.usage)
            return result
        self.stats.failed += 1
        assert last is not None
        raise _gave_up(last, attempts) from last

    async def _attempt(self, request: Request) -> Result:
        """One attempt under the timeout; a timeout becomes a TransientError that says how long it waited.
        When a layer below already times attempts out (`timed_below`), no second timer is set."""
        self.stats.requests += 1
        try:
            if self.timed_below:
                return await self.inner.generate(request)
            async with asyncio.timeout(self.timeout_s) as timeout:
                token = push_clock(TimeoutClock(timeout, self.timeout_s))
                try:
                    return await self.inner.generate(request)
                finally:
                    pop_clock(token)
        except TimeoutError as exc:
            self.stats.timeouts += 1
            raise TransientError(
                f"Request to {self.name} timed out after {self.timeout_s:g}s.",
                "The server is slow or overloaded; raise limits.timeout_s or lower limits.concurrency.",
            ) from exc

    def _delay(self, attempt: int, exc: TransientError) -> float:
        if not isinstance(exc, RateLimitError):
            return backoff_s(attempt, base_s=self.error_base_s, cap_s=self.cap_s, draw=self._draw())
        delay = backoff_s(attempt, base_s=self.base_s, cap_s=self.cap_s, draw=self._draw())
        return max(delay, exc.retry_after or 0.0)

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Streams are not retried: text already shown cannot be taken back. Each piece gets the timeout."""
        pieces = self.inner.stream(request)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        piece = await anext(pieces)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    self.stats.timeouts += 1
                    raise TransientError(
                        f"Stream from {self.name} stalled for {self.timeout_s:g}s.",
                        "Raise limits.timeout_s, or check that the server is up.",
                    ) from exc
                yield piece
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]


def _gave_up(last: ProviderError, attempts: int) -> ProviderError:
    """The last error, same class and fields, with the attempt count in its message."""
    err = copy.copy(last)
    err.message = f"{last.message} (gave up after {attempts} attempts)"
    err.args = (err.message,)
    return err
