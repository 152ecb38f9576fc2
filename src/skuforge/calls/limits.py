"""Concurrency, requests-per-minute and tokens-per-minute limits, with a shared cool-down after a 429.

`Limited` admits requests from ONE first-in-first-out queue of futures. Nothing polls: a waiting request is a
future in a deque; the queue is re-examined ("pumped") only when something changes — a request finishes, a
timer armed for the moment the head of the queue becomes admissible fires, or a waiter is cancelled. There is
at most one timer at a time, so ten thousand pending requests cost ten thousand futures and no CPU.

Rate buckets use GCRA (the "generic cell rate algorithm"): a token bucket stored as one number, the
theoretical arrival time `tat`. A request of cost `c` is admitted at time `t` when `t >= tat - burst_s`,
and then `tat = max(tat, t) + c / rate`. A cost bigger than the burst simply pushes `tat` further out, so
one huge prompt cannot wedge the queue. TPM costs are estimated before the call (prompt tokens from the
provider's `count_tokens` plus `max_tokens`, or a default output estimate) and corrected from the usage the
provider returns.

A `RateLimitError` (429) from the provider starts a cool-down that holds EVERY new request — not only the one
that got the 429 — until `retry_after` has passed, and halves an adaptive factor that scales both the
concurrency and the rates (multiplicative decrease). Each success adds `recover_step` back (additive
increase), so the client settles just under what the server accepts. Requests admitted before a slow-down
that come back 429 afterwards do not halve the factor again: one burst of 429s is one signal.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from skuforge.calls.retry import hold_timeout, restart_timeout
from skuforge.calls.stats import CallStats
from skuforge.errors import RateLimitError
from skuforge.providers.base import Provider, Request, Result, Usage, Wrapper


class _Bucket:
    """A token bucket as GCRA: `per_minute` tokens per minute, bursts of `burst_s` seconds' worth."""

    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.burst_s = burst_s
        self.tat = -math.inf

    def ready_at(self) -> float:
        """The earliest time a request may pass this bucket."""
        return self.tat - self.burst_s

    def take(self, now: float, cost: float, factor: float) -> None:
        self.tat = max(self.tat, now) + cost / (self.rate * factor)

    def correct(self, delta: float, factor: float) -> None:
        """Charge (or refund, when negative) the difference between the estimate and the real cost."""
        self.tat += delta / (self.rate * factor)


@dataclass(eq=False)
class _Waiter:
    cost: float
    future: asyncio.Future[int]
    enqueued: float = field(default=0.0)


class Limited(Wrapper):
    """Hold requests to `concurrency` in flight, `rpm` requests and `tpm` tokens per minute."""

    def __init__(
        self,
        inner: Provider,
        *,
        concurrency: int,
        rpm: float | None = None,
        tpm: float | None = None,
        burst_s: float = 1.0,
        default_output_tokens: int = 256,
        default_cooldown_s: float = 1.0,
        min_factor: float = 0.05,
        recover_step: float = 0.02,
        stats: CallStats | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        super().__init__(inner)
        self.concurrency = concurrency
        self.default_output_tokens = default_output_tokens
        self.default_cooldown_s = default_cooldown_s
        self.min_factor = min_factor
        self.recover_step = recover_step
        self.stats = stats or CallStats()
        self._rpm = _Bucket(rpm, burst_s) if rpm else None
        self._tpm = _Bucket(tpm, burst_s) if tpm else None
        self._waiters: deque[_Waiter] = deque()
        self._in_flight = 0
        self._factor = 1.0
        self._epoch = 0
        self._cooldown_until = -math.inf
        self._timer: asyncio.TimerHandle | None = None

    # -- what callers and the progress display can read -------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def pending(self) -> int:
        """Requests waiting for admission (cancelled ones not yet swept may be counted)."""
        return len(self._waiters)

    @property
    def factor(self) -> float:
        """The adaptive slow-down factor in (0, 1]: 1 is full speed."""
        return self._factor

    @property
    def effective_concurrency(self) -> int:
        return max(1, int(self.concurrency * self._factor + 1e-9))  # 0.5 + 5 * 0.1 is 0.9999…

    # -- the provider surface ---------------------------------------------------------------------------

    async def generate(self, request: Request) -> Result:
        cost = self._estimate(request)
        ticket = await self._acquire(cost)
        try:
            result = await self.inner.generate(request)
        except RateLimitError as exc:
            self._slow_down(ticket, exc)
            raise
        else:
            self._speed_up()
            self._settle(cost, result.usage)
            return result
        finally:
            self._release()

    async def stream(self, request: Request) -> AsyncIterator[str]:
        cost = self._estimate(request)
        ticket = await self._acquire(cost)
        try:
            async for piece in self.inner.stream(request):
                yield piece
        except RateLimitError as exc:
            self._slow_down(ticket, exc)
            raise
        else:
            self._speed_up()
        finally:
            self._release()

    # -- admission --------------------------------------------------------------------------------------

    def _estimate(self, request: Request) -> float:
        """Tokens this request will likely use; only computed when a TPM limit is set."""
        if self._tpm is None:
            return 0.0
        prompt = sum(self.inner.count_tokens(m.content) for m in request.messages)
        return float(prompt + (request.max_tokens or self.default_output_tokens))

    async def _acquire(self, cost: float) -> int:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiters and self._ready_at(cost, now) is None:
            ticket = self._admit(cost, now)
        else:
            waiter = _Waiter(cost, loop.create_future(), now)
            hold_timeout()  # queue time does not count against the attempt's timeout
            self._waiters.append(waiter)
            if self._waiters[0] is waiter or self._waiters[0].future.done():
                self._pump()  # nobody else will: arm the timer (or admit at once)
            try:
                ticket = await waiter.future
            except asyncio.CancelledError:
                if waiter.future.done() and not waiter.future.cancelled():
                    self._release()  # admitted in the same instant it was cancelled: hand the slot back
                else:
                    loop.call_soon(self._pump)  # the head may have changed
                raise
            restart_timeout()  # only after a wait: admitted at once, the clocks never stopped
        return ticket

    def _ready_at(self, cost: float, now: float) -> float | None:
        """None if a request of `cost` may go now; else when it may (inf: when a slot frees up)."""
        if self._in_flight >= self.effective_concurrency:
            return math.inf
        ready = self._cooldown_until
        if self._rpm is not None:
            ready = max(ready, self._rpm.ready_at())
        if self._tpm is not None and cost:
            ready = max(ready, self._tpm.ready_at())
        return None if ready <= now else ready

    def _admit(self, cost: float, now: float) -> int:
        self._in_flight += 1
        if self._rpm is not None:
            self._rpm.take(now, 1.0, self._factor)
        if self._tpm is not None and cost:
            self._tpm.take(now, cost, self._factor)
        return self._epoch

    def _pump(self) -> None:
        """Admit waiters from the head of the queue while they fit; otherwise arm one timer or wait."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waiters:
            head = self._waiters[0]
            if head.future.done():  # cancelled while waiting
                self._waiters.popleft()
                continue
            ready = self._ready_at(head.cost, now)
            if ready is None:
                self._waiters.popleft()
                self.stats.queued_s += now - head.enqueued
                head.future.set_result(self._admit(head.cost, now))
                continue
            if ready != math.inf:
                self._arm(loop, ready)
            return

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            if self._timer.when() <= when:
                return  # an earlier (or equal) wake-up is already set; it will re-examine the queue
            self._timer.cancel()
        self.stats.rate_limit_waits += 1
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._pump()

    def _release(self) -> None:
        self._in_flight -= 1
        self._pump()

    # -- adapting to the server -------------------------------------------------------------------------

    def _slow_down(self, ticket: int, exc: RateLimitError) -> None:
        """A 429: hold every new request until retry_after, and halve the factor once per signal."""
        self.stats.rate_limited += 1
        now = asyncio.get_running_loop().time()
        wait = exc.retry_after if exc.retry_after is not None else self.default_cooldown_s
        self._cooldown_until = max(self._cooldown_until, now + wait)
        if ticket == self._epoch:
            self._factor = max(self.min_factor, self._factor / 2)
            self._epoch += 1

    def _speed_up(self) -> None:
        self._factor = min(1.0, self._factor + self.recover_step)

    def _settle(self, estimate: float, usage: Usage) -> None:
        """Correct the TPM bucket with the tokens the provider says it used."""
        actual = usage.input_tokens + usage.output_tokens
        if self._tpm is not None and estimate and actual:
            self._tpm.correct(actual - estimate, self._factor)
