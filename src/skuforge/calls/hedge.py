"""Hedged requests and adaptive deadlines: a request stuck on a bad connection does not cost the timeout.

At scale, a few requests in a thousand hang (a stuck connection, a server that lost them) and the run waits
the full timeout for each. `Hedged` watches the latency of the answers it gets and:

- sends a second copy of a request still unanswered after `hedge_factor` (1.5) x the 95th-percentile
  latency, and takes whichever answers first (the other is cancelled). While the run is draining (the
  executor has started every row, fewer requests are in flight than half its `concurrency` and none is
  queued in the limiter: at the end of every run, when the last wave's stragglers are all it waits for
  and a copy takes capacity nothing else wants), the delay is `drain_factor` (1.1) x p95: a request's
  timer is set for the shorter delay and, when it fires while the run is still busy, waits out the rest
  of the longer one. If the copy fails, or is still unanswered after the same delay, while the first
  still hangs, one more is sent (three copies at most). Hedges are capped at `max_share` of requests,
  so a slow server is never flooded with copies; each copy goes through the limiter (it takes a slot and
  its RPM/TPM) and the budget (it reserves its cost, and a cancelled copy counts as maybe charged);
- gives the request as a whole a deadline derived from the same distribution (`deadline_factor` x p99,
  at least `min_deadline_s`), well under the configured timeout once the latencies are known; a request
  past it raises `TransientError`, which the retry layer retries.

Until `warmup` answers have been seen neither is known. A request sent before then waits for them, and
once they are in it is hedged like any other (with hundreds of requests in flight at the start of a run,
the first wave is too large to leave unhedged: one stuck request in it would cost the whole timeout). It
keeps the configured timeout, not the adaptive deadline: the first answers are the wave's fastest, and a
deadline drawn from them would cut off its slow answers. The counters (`hedges`, `hedge_wins`,
`deadline_timeouts`) go to the run's `CallStats`.

    Retrying(Breaker(Hedged(Limited(Budgeted(provider)))))
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from skuforge.calls.retry import TimeoutClock, pop_clock, push_clock, without_clocks
from skuforge.calls.stats import CallStats
from skuforge.errors import TransientError
from skuforge.providers.base import Provider, Request, Result, Wrapper

DRAINING_BELOW = 0.5
"""A run whose rows have all been started drains once fewer requests are in flight than this share of its
concurrency (see `Hedged`). Both conditions: in a saturated run many slots are briefly outside this layer
(parsing, checking, committing), and with only the share, at 0.9, a 0-latency run of 100,000 rows (S5)
counted as draining and sent 120-290 needless copies; at 0.5 alone, 0-68."""


class Latencies:
    """The last `size` answer latencies and their percentiles (re-sorted every `every` new samples)."""

    def __init__(self, size: int = 512, every: int = 32) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.every, self.seen = every, 0
        self._sorted: list[float] = []

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.seen += 1
        if self.seen % self.every == 0 or len(self._sorted) < self.every:
            self._sorted = sorted(self.samples)

    def quantile(self, q: float) -> float | None:
        if not self._sorted:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]


class Hedged(Wrapper):
    """Hedge slow requests and give each a deadline from the latencies seen (see the module docstring)."""

    def __init__(
        self,
        inner: Provider,
        *,
        timeout_s: float,
        stats: CallStats | None = None,
        hedge_factor: float = 1.5,
        drain_factor: float = 1.1,
        concurrency: int | None = None,
        winding_down: Callable[[], bool] | None = None,
        min_hedge_s: float = 0.05,
        max_share: float = 0.05,
        deadline_factor: float = 4.0,
        min_deadline_s: float = 5.0,
        warmup: int = 32,
    ) -> None:
        super().__init__(inner)
        self.timeout_s, self.stats = timeout_s, stats or CallStats()
        self.hedge_factor, self.min_hedge_s, self.max_share = hedge_factor, min_hedge_s, max_share
        self.drain_factor, self.concurrency = min(drain_factor, hedge_factor), concurrency
        self.winding_down = winding_down
        self.in_flight = 0
        self.deadline_factor, self.min_deadline_s, self.warmup = deadline_factor, min_deadline_s, warmup
        self.latencies = Latencies()
        self.sent = 0
        self._warm_event: asyncio.Event | None = None

    def hedge_after(self, *, draining: bool = False) -> float | None:
        """Seconds to wait before a second copy, or None (still warming up, or hedges used up); the shorter
        delay when `draining`."""
        p95 = self.latencies.quantile(0.95)
        if self.latencies.seen < self.warmup or p95 is None or not self.may_hedge():
            return None
        return max(self.min_hedge_s, (self.drain_factor if draining else self.hedge_factor) * p95)

    def draining(self) -> bool:
        """Whether the run is down to its stragglers: the executor has started every row (`winding_down`),
        fewer requests are in flight than half the concurrency, and none waits in a limiter below (one
        waiting for its RPM would give way to a copy). Never, when the executor or the concurrency does not
        say."""
        if self.concurrency is None or self.winding_down is None or not self.winding_down():
            return False
        return self.in_flight < DRAINING_BELOW * self.concurrency and not getattr(self.inner, "pending", 0)

    def may_hedge(self) -> bool:
        """Whether one more copy stays within `max_share` of the requests sent so far."""
        return self.stats.hedges + 1 <= self.max_share * self.sent

    def deadline(self) -> float:
        """The request's deadline: the configured timeout, or less once the latencies are known."""
        p99 = self.latencies.quantile(0.99)
        if self.latencies.seen < self.warmup or p99 is None:
            return self.timeout_s
        return min(self.timeout_s, max(self.min_deadline_s, self.deadline_factor * p99))

    async def generate(self, request: Request) -> Result:
        self.sent += 1
        self.in_flight += 1
        try:
            return await self._deadlined(request)
        finally:
            self.in_flight -= 1

    async def _deadlined(self, request: Request) -> Result:
        deadline = self.deadline()
        admitted = _Admission(asyncio.get_running_loop())
        try:
            async with asyncio.timeout(deadline) as timeout:
                token = push_clock(TimeoutClock(timeout, deadline))  # the deadline counts from admission
                admission = push_clock(admitted)
                try:
                    return await self._race(request, admitted)
                finally:
                    pop_clock(admission)
                    pop_clock(token)
        except TimeoutError:
            if deadline >= self.timeout_s:
                raise  # the configured timeout: the retry layer reports it
            self.stats.deadline_timeouts += 1
            raise TransientError(
                f"Request to {self.name} took over {deadline:.1f}s, several times its usual latency.",
                "It is sent again; raise limits.timeout_s if long answers are expected.",
            ) from None

    async def _race(self, request: Request, admitted: _Admission) -> Result:
        """The first copy's answer; a second copy once the first has been admitted and then waited past
        the hedge delay. Copies still running when this returns or fails are cancelled.

        Done with callbacks and one timer rather than `asyncio.wait`, and the timer is set at once (a
        limiter that queues the request moves it to the admission): every request passes here, and the
        waits cost more CPU than the rest of this layer (S5 of the scale bench: see docs/scale.md)."""
        loop = admitted.loop

        def spare() -> asyncio.Future[Result] | None:
            if not self.may_hedge():
                return None
            self.stats.hedges += 1
            return asyncio.ensure_future(self._copy(request))

        race = _Race(loop, spare, self._due)
        race.add(asyncio.ensure_future(self.inner.generate(request)))
        try:
            if self.may_hedge() or self.warming():
                first = race.copies[0]
                wait = await self._hedge_delay(first) if self.warming() else self.hedge_after(draining=True)
                if wait is not None and not race.settled.done():
                    race.arm(admitted, wait)
            winner = await race.settled
            if winner.exception() is not None:
                raise race.errors[0]
            self.stats.hedge_wins += int(winner is not race.copies[0])
            self.latencies.add(loop.time() - admitted.at)
            if self._warm_event is not None and not self.warming():
                self._warm_event.set()
            return winner.result()
        finally:
            race.disarm()
            if not all(copy.done() for copy in race.copies):
                await _cancel(race.copies)
            _retrieve(race.copies)

    def warming(self) -> bool:
        return self.latencies.seen < self.warmup

    def _due(self) -> float | None:
        """The hedge delay that applies now (the run may have started draining since the timer was set)."""
        return self.hedge_after(draining=self.draining())

    async def _hedge_delay(self, first: asyncio.Future[Result]) -> float | None:
        """The hedge delay; a request sent while warming up waits for the latencies first (or its answer).
        It keeps the configured timeout: the first answers of a run are its fastest, and a deadline drawn
        from them would cut off the slow answers still due in the first wave."""
        if self.warming() and not first.done():
            warmed: asyncio.Future[Any] = asyncio.ensure_future(self._warmed.wait())
            either: list[asyncio.Future[Any]] = [first, warmed]
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                warmed.cancel()
            if first.done():
                return None
        return self.hedge_after(draining=True)  # the shorter delay: `_Race` waits longer while busy

    @property
    def _warmed(self) -> asyncio.Event:
        if self._warm_event is None:
            self._warm_event = asyncio.Event()
            if not self.warming():
                self._warm_event.set()
        return self._warm_event

    async def _copy(self, request: Request) -> Result:
        without_clocks()  # its own task: its queue time must not hold the first copy's clocks
        return await self.inner.generate(request)


class _Race:
    """The copies of one request; `settled` is the first copy that answered, or the last to fail.

    `hedge()` adds a copy made by `spare` (None when the hedges' share is used up). When a hedge fails (a
    500, a dropped connection), or is itself unanswered after the hedge delay, while the first copy still
    hangs, one more is sent, up to `MAX_COPIES`, so a stuck request whose hedge failed or hung too does not
    wait for its deadline. When no more copies may be sent and every one but the stuck first has failed,
    the race ends with their error at once, and the retry layer sends the request again (S3r of the scale
    benchmark: a hung request whose two hedges both failed waited out the 5 s deadline at the end of the
    run, 0.5 s past everything else)."""

    MAX_COPIES = 3

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        spare: Callable[[], asyncio.Future[Result] | None],
        due: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.loop, self.spare, self.due = loop, spare, due
        self.copies: list[asyncio.Future[Result]] = []
        self.errors: list[BaseException] = []
        self.settled: asyncio.Future[asyncio.Future[Result]] = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.wait = 0.0
        self.admission: _Admission | None = None

    def add(self, copy: asyncio.Future[Result]) -> None:
        self.copies.append(copy)
        copy.add_done_callback(self._done)

    def arm(self, admission: _Admission, wait: float) -> None:
        """A copy `wait` seconds after the first was admitted (later if `due()`, the delay that applies when
        the timer fires, is longer; from its admission if a limiter holds it now), and another each
        `wait` seconds after while none has answered."""
        self.admission, self.wait = admission, wait
        admission.on_admit = self._rearm
        self.timer = self.loop.call_at(admission.at + wait, self._on_timer)

    def disarm(self) -> None:
        if self.admission is not None:
            self.admission.on_admit = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _rearm(self) -> None:
        """The first copy was admitted after waiting in a limiter's queue: its delay counts from now."""
        if self.admission is not None and len(self.copies) == 1 and not self.settled.done():
            self.disarm()
            self.arm(self.admission, self.wait)

    def _on_timer(self) -> None:
        self.timer = None
        admission = self.admission
        if len(self.copies) == 1 and admission is not None:
            if admission.held:
                return  # queued in a limiter: `_rearm` sets the timer again once it is admitted
            due = self.due()
            if due is not None and admission.at + due > self.loop.time() + 0.001:
                self.timer = self.loop.call_at(admission.at + due, self._on_timer)  # busy: the longer delay
                return
        self.hedge()
        if not self.settled.done() and 1 < len(self.copies) < self.MAX_COPIES:
            self.timer = self.loop.call_later(self.wait, self._on_timer)

    def hedge(self) -> None:
        if self.settled.done() or len(self.copies) >= self.MAX_COPIES:
            return
        if all(c.done() for c in self.copies):  # every copy failed: the race is being settled
            return
        copy = self.spare()
        if copy is not None:
            self.add(copy)

    def _done(self, copy: asyncio.Future[Result]) -> None:
        if self.settled.done():
            return
        error = asyncio.CancelledError() if copy.cancelled() else copy.exception()
        if error is not None:
            self.errors.append(error)
            if copy is not self.copies[0]:
                made = len(self.copies)
                self.hedge()  # the hedge failed and the first copy still hangs: one more
                if len(self.copies) == made and all(c.done() for c in self.copies[1:]):
                    self.settled.set_result(copy)  # only the stuck first copy is left: the retry layer
                    return  # sends the request again rather than wait for its deadline
        if error is None or all(c.done() for c in self.copies):
            self.settled.set_result(copy)


class _Admission:
    """A clock that notes when the limiter admitted the request (the hedge delay and the latency count from
    then): at once unless a limiter holds it in its queue (`hold`) and admits it later (`restart`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.at, self.held = loop, loop.time(), False
        self.on_admit: Callable[[], None] | None = None

    def hold(self) -> None:
        self.held = True

    def restart(self) -> None:
        self.held, self.at = False, self.loop.time()
        if self.on_admit is not None:
            self.on_admit()


async def _cancel(futures: list[asyncio.Future[Result]]) -> None:
    """Cancel the copies still running and wait for them to unwind (a cancelled copy may have been
    charged; the budget wrapper below counts it as uncertain)."""
    running = [f for f in futures if not f.done()]
    for future in running:
        future.cancel()
    await asyncio.gather(*running, return_exceptions=True)


def _retrieve(futures: list[asyncio.Future[Result]]) -> None:
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()  # retrieved: a failed loser is not an unhandled error
