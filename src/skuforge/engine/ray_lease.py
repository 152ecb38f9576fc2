"""Limits and money for the Ray executor, shared by every worker of a run and handed out in leases.

One `Coordinator` actor per run holds the job's limits (`--concurrency`, `--rpm`, `--tpm`), the cool-down
after a 429 and the job's budget ledger, which it opens from the store and writes back to it exactly as a
local run does (`calls.budget.Budget`: spent, uncertain, durable holds). Workers do not call it per request.
A worker takes a *lease*: a number of concurrent slots, a number of requests and tokens it may send now, and
an amount of money it may reserve; it spends the lease locally (`Leased`, a provider wrapper, one `take` per
attempt) and comes back when it is used up, reporting what its attempts really cost. That is one call per
lease, and a lease covers many requests.

Leases expire. A worker holding one renews it by heartbeat every `ttl_s / 3`; a lease not renewed for
`ttl_s` (its worker died or hangs) is taken back by the coordinator: its slots go to other workers and its
money is counted as *uncertain* (its requests may have been charged), so a lost worker neither leaks a slot
nor lets the job spend past `--max-cost`.

    coordinator = ray.remote(Coordinator).options(...).remote(Shares(...), store_url=..., job_id=...)
    lease = LeaseClient(coordinator, holder="worker-3")
    await lease.open()                       # the first lease: how many slots this worker has
    client = Leased(provider, lease, price)  # under the local limiter, inside the retries
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from skuforge.calls.budget import Budget, estimate_cost
from skuforge.errors import BudgetExceeded, ProviderUnavailable, RateLimitError, TransientError
from skuforge.providers.base import Provider, Request, Result, Wrapper
from skuforge.providers.prices import Price

LEASE_TTL_S = 30.0
QUANTUM_S = 1.0
"""A lease of requests under an RPM limit covers at most this many seconds of the worker's share."""


@dataclass(slots=True)
class Shares:
    """The run's limits, as the coordinator divides them."""

    concurrency: int
    rpm: float | None = None
    tpm: float | None = None
    workers: int = 1
    max_cost: float | None = None
    ttl_s: float = LEASE_TTL_S
    burst_s: float = 1.0


@dataclass(slots=True)
class Report:
    """What a worker's attempts did with its lease since its last report."""

    settled_estimate: float = 0.0  # reservations of attempts that were answered (or refused by the server)
    spent: float = 0.0  # what those attempts really cost
    uncertain: float = 0.0  # reservations of attempts sent and never answered: may have been charged
    returned: float = 0.0  # money the worker gives back unused
    token_delta: float = 0.0  # tokens really used minus tokens estimated
    unused_requests: float = 0.0  # requests and tokens of the last lease it never used (given back)
    unused_tokens: float = 0.0

    def empty(self) -> bool:
        return not (
            self.settled_estimate or self.spent or self.uncertain or self.returned or self.token_delta
        )


@dataclass(slots=True)
class Grant:
    slots: int
    requests: float
    tokens: float
    money: float
    ttl_s: float
    stop: str | None = None  # "budget": no money left for even one request


@dataclass(slots=True)
class _Holder:
    slots: int = 0
    credit: float = 0.0
    seen: float = field(default_factory=time.monotonic)


class Coordinator:
    """The run's shared limits and ledger (see the module docstring); one async Ray actor per run."""

    def __init__(self, shares: Shares, *, store_url: str | None = None, job_id: str = "") -> None:
        from skuforge.store import open_store

        self.shares = shares
        self.holders: dict[str, _Holder] = {}
        self.order: dict[str, int] = {}  # first-lease order, for dividing the slots
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.tat_r = self.tat_t = -math.inf
        self.cool_until = 0.0
        self.leases = self.expired = self.peak_slots = 0
        self.summaries: list[Any] = []  # blocks finished since the driver last asked
        self.rows_in = self.rows_out = 0  # rows the plan stage passed on, rows workers reported back
        self.stop_reason: tuple[str, str] | None = None
        self.store = open_store(store_url) if store_url else None
        self.budget = (
            Budget.open(self.store, job_id, shares.max_cost)
            if self.store is not None
            else Budget(shares.max_cost)
        )
        self._reaper: asyncio.Task[None] | None = None

    # -- leases --------------------------------------------------------------------------------------------
    async def lease(
        self,
        holder: str,
        requests: int,
        tokens: float,
        money: float,
        need: float,
        report: Report | None = None,
    ) -> Grant:
        """A new lease for `holder` (reporting on its last one): slots (kept until released), `requests` and
        `tokens` it may send now, and money: at least `need` (one request's estimate), up to `money`."""
        self._start_reaper()
        if report is not None:
            self._apply(holder, report)
        current = self.holders.get(holder)
        if current is None or current.slots == 0:
            current = await self._seat(holder)
        current.seen = time.monotonic()
        grant_money = self._money(current, money, need)
        if grant_money is None and self.stop_reason is None:
            self.stop_reason = ("budget", "The next request would take the job past its cost limit.")
        if self.stop_reason is not None:
            return Grant(current.slots, 0, 0, 0.0, self.shares.ttl_s, stop=self.stop_reason[0])
        assert grant_money is not None
        requests_now = self._requests(requests)
        tokens_now = tokens if self.shares.tpm else math.inf
        await asyncio.sleep(self._wait(requests_now, tokens_now))
        self.leases += 1
        return Grant(current.slots, requests_now, tokens_now, grant_money, self.shares.ttl_s)

    def release(self, holder: str, report: Report) -> None:
        """The worker is idle: settle its report, take back its slots and any money it still holds."""
        self._apply(holder, report)
        gone = self.holders.pop(holder, None)
        if gone is not None:
            self.budget.settle(gone.credit, 0.0)
            self._free(gone.slots)

    def heartbeat(self, holder: str) -> bool:
        """Keep `holder`'s lease alive; False when it had already expired (the worker must lease again)."""
        found = self.holders.get(holder)
        if found is None:
            return False
        found.seen = time.monotonic()
        return True

    def cooldown(self, seconds: float) -> None:
        """A worker was told 429: no new lease for anyone until `seconds` have passed."""
        self.cool_until = max(self.cool_until, time.monotonic() + seconds)

    # -- the parts of a lease ----------------------------------------------------------------------------
    async def _seat(self, holder: str) -> _Holder:
        """Slots for a worker: its share of the concurrency, waiting while others hold them all."""
        self.order.setdefault(holder, len(self.order))
        base, extra = divmod(self.shares.concurrency, max(1, self.shares.workers))
        share = max(1, base + (1 if self.order[holder] % max(1, self.shares.workers) < extra else 0))
        while self._free_slots() < 1:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiters.append(future)
            await future
        seat = self.holders.setdefault(holder, _Holder())
        seat.slots = min(share, self._free_slots())
        self.peak_slots = max(self.peak_slots, self.shares.concurrency - self._free_slots())
        return seat

    def _free_slots(self) -> int:
        return self.shares.concurrency - sum(h.slots for h in self.holders.values())

    def _free(self, slots: int) -> None:
        if slots:
            while self.waiters:
                future = self.waiters.popleft()
                if not future.done():
                    future.set_result(None)

    def _money(self, holder: _Holder, want: float, need: float) -> float | None:
        """Money reserved for the lease (durably, in the store's ledger); None when not even `need` fits."""
        if self.budget.limit is None:
            return math.inf
        room = self.budget.remaining or 0.0
        if room < need or need <= 0 and room <= 0:
            self.budget.exhausted = True
            return None
        amount = min(max(want, need), room)
        if not self.budget.reserve(amount):
            return None
        holder.credit += amount
        return amount

    def _requests(self, wanted: int) -> float:
        if not self.shares.rpm:
            return math.inf
        per_worker = self.shares.rpm / 60.0 * QUANTUM_S / max(1, self.shares.workers)
        return float(max(1, min(wanted, math.floor(per_worker) or 1)))

    def _wait(self, requests: float, tokens: float) -> float:
        """Seconds until the lease fits the RPM/TPM buckets (GCRA) and any cool-down; takes it from them."""
        now = time.monotonic()
        wait = max(0.0, self.cool_until - now)
        if self.shares.rpm and math.isfinite(requests):
            wait = max(wait, self.tat_r - self.shares.burst_s - now)
            self.tat_r = max(self.tat_r, now) + requests * 60.0 / self.shares.rpm
        if self.shares.tpm and math.isfinite(tokens):
            wait = max(wait, self.tat_t - self.shares.burst_s - now)
            self.tat_t = max(self.tat_t, now) + tokens * 60.0 / self.shares.tpm
        return wait

    def _apply(self, holder: str, report: Report) -> None:
        found = self.holders.get(holder)
        if found is None:  # expired: its money was already counted as uncertain; count nothing twice
            if report.spent and self.budget.limit is None:
                self.budget.settle(0.0, report.spent)
            return
        self.budget.settle(report.settled_estimate + report.returned, report.spent)
        if report.uncertain:
            self.budget.settle_uncertain(report.uncertain)
        found.credit = max(0.0, found.credit - report.settled_estimate - report.returned - report.uncertain)
        if self.shares.tpm:
            self.tat_t += (report.token_delta - report.unused_tokens) * 60.0 / self.shares.tpm
        if self.shares.rpm:
            self.tat_r -= report.unused_requests * 60.0 / self.shares.rpm

    # -- expiry ----------------------------------------------------------------------------------------------
    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self.shares.ttl_s / 4)
            self.expire(time.monotonic() - self.shares.ttl_s)

    def expire(self, before: float = math.inf) -> int:
        """Take back every lease not renewed since `before`: slots freed, money counted uncertain."""
        lost = [name for name, h in self.holders.items() if h.seen < before]
        for name in lost:
            holder = self.holders.pop(name)
            if holder.credit and self.budget.limit is not None:
                self.budget.settle_uncertain(holder.credit)
            self._free(holder.slots)
        self.expired += len(lost)
        return len(lost)

    # -- the run's state -------------------------------------------------------------------------------------
    def stop(self, reason: str, message: str) -> None:
        """Stop the run everywhere: no more leases, and the plan stage stops rendering."""
        if self.stop_reason is None:
            self.stop_reason = (reason, message)

    def stopped(self) -> tuple[str, str] | None:
        return self.stop_reason

    def planned(self, rows: int) -> None:
        """The plan stage passed `rows` rows on to the workers."""
        self.rows_in += rows

    def block_done(self, summary: Any) -> None:
        """A worker finished a block (its part is written): kept until the driver takes it."""
        self.rows_out += summary.get("taken", 0)
        self.summaries.append(summary)

    def flow(self) -> tuple[int, int]:
        """(rows planned, rows reported back): fewer back means a worker was lost with blocks."""
        return self.rows_in, self.rows_out

    def take_summaries(self) -> list[Any]:
        taken, self.summaries = self.summaries, []
        return taken

    # -- the driver's view -----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "leases": self.leases,
            "expired": self.expired,
            "holders": len(self.holders),
            "peak": self.peak_slots,
            "exhausted": self.budget.exhausted,
            "stopped": self.stop_reason,
            "spent": self.budget.total,
            "shares": asdict(self.shares),
        }

    async def drain(self, timeout_s: float) -> int:
        """Wait until every worker has released its lease (or `timeout_s`); the holders still left."""
        deadline = time.monotonic() + timeout_s
        while self.holders and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return len(self.holders)

    def close(self) -> dict[str, Any]:
        """The run is over: leases still held (workers that died) expire now; the ledger is written."""
        self.expire()
        self.budget.close()
        if self.store is not None:
            self.store.close()
        return self.stats()


class LeaseClient:
    """A worker's side of its lease: spends it attempt by attempt and renews it when it runs short."""

    def __init__(self, coordinator: Any, holder: str, *, batch_requests: int = 32) -> None:
        self.coordinator, self.holder = coordinator, holder
        self.batch_requests = batch_requests
        self.slots = 0
        self.requests = self.tokens = self.money = 0.0
        self.report = Report()
        self.est_tokens = 512.0
        self.stopped: str | None = None
        self._renewing: asyncio.Future[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.held = False

    async def open(self) -> int:
        """Take the first lease (if none is held); the worker's slots."""
        if not self.held:
            await self._renew(0.0, 0.0)
        return self.slots

    async def take(self, tokens: float, cost: float) -> None:
        """Take one request, its estimated tokens and cost from the lease, renewing it as often as needed.
        Raises BudgetExceeded when the job's budget cannot cover the request."""
        self.est_tokens = 0.9 * self.est_tokens + 0.1 * tokens
        while True:
            if self.stopped == "budget":
                raise BudgetExceeded(
                    "The next request would take the job past its cost limit.",
                    "Nothing is lost. Raise the limit and continue: skuforge resume JOB --max-cost N",
                )
            if self.stopped:
                raise ProviderUnavailable("The run was stopped on another worker.", "Fix it and resume.")
            if self.held and self.requests >= 1 and self.tokens >= tokens and self.money >= cost:
                self.requests -= 1
                self.tokens -= tokens
                self.money -= cost
                return
            await self._renew(tokens, cost)

    def settle(self, estimate: float, actual: float | None, token_delta: float = 0.0) -> None:
        """An attempt ended: `actual` is what it cost, or None when it was sent and never answered."""
        if actual is None:
            self.report.uncertain += estimate
        else:
            self.report.settled_estimate += estimate
            self.report.spent += actual
        self.report.token_delta += token_delta

    def cooldown(self, seconds: float) -> None:
        self.coordinator.cooldown.remote(seconds)

    async def release(self) -> None:
        """Give the lease back (the worker is idle): report, and return slots and money."""
        if not self.held and self.report.empty():
            return
        report = self._closing_report()
        self.held, self.requests, self.tokens, self.money = False, 0.0, 0.0, 0.0
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        await self.coordinator.release.remote(self.holder, report)

    async def _renew(self, tokens: float, cost: float) -> None:
        if self._renewing is not None:  # another attempt is renewing: wait for that one lease
            await asyncio.shield(self._renewing)
            return
        self._renewing = asyncio.get_running_loop().create_future()
        try:
            report = self._closing_report()
            want_tokens = max(tokens, self.est_tokens * self.batch_requests)
            grant: Grant = await self.coordinator.lease.remote(
                self.holder, self.batch_requests, want_tokens, cost * self.batch_requests, cost, report
            )
            self.slots = grant.slots
            self.requests, self.tokens, self.money = grant.requests, grant.tokens, grant.money
            self.stopped = grant.stop
            self.held = True
            self._keep_alive(grant.ttl_s)
        finally:
            self._renewing.set_result(None)
            self._renewing = None

    def _closing_report(self) -> Report:
        """The report so far, plus what is left of the current lease (given back with it)."""
        report, self.report = self.report, Report()
        if self.held:
            report.returned = self.money if math.isfinite(self.money) else 0.0
            report.unused_requests = self.requests if math.isfinite(self.requests) else 0.0
            report.unused_tokens = self.tokens if math.isfinite(self.tokens) else 0.0
        return report

    def _keep_alive(self, ttl_s: float) -> None:
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat(ttl_s / 3))

    async def _beat(self, every_s: float) -> None:
        while self.held:
            await asyncio.sleep(every_s)
            if self.held and not await self.coordinator.heartbeat.remote(self.holder):
                self.held = False  # expired: the next attempt leases again
                self.requests = self.tokens = self.money = 0.0


class Leased(Wrapper):
    """Takes each attempt's request, tokens and estimated cost from the worker's lease; settles it after.

    Sits under the local limiter and inside the retries, as `calls.budget.Budgeted` does in a local run:
    each attempt reserves again; an attempt sent and never answered counts as uncertain."""

    def __init__(
        self, inner: Provider, lease: LeaseClient, price: Price | None, default_output_tokens: int = 256
    ) -> None:
        super().__init__(inner)
        self.lease, self.price = lease, price
        self.default_output_tokens = default_output_tokens

    async def generate(self, request: Request) -> Result:
        prompt = sum(self.inner.count_tokens(m.content) for m in request.messages)
        tokens = float(prompt + (request.max_tokens or self.default_output_tokens))
        estimate = estimate_cost(self.inner, request, self.price)
        await self.lease.take(tokens, estimate)
        try:
            result = await self.inner.generate(request)
        except RateLimitError as exc:
            self.lease.cooldown(exc.retry_after or 1.0)
            self.lease.settle(estimate, 0.0)
            raise
        except TransientError as exc:
            self.lease.settle(estimate, None if exc.status is None else 0.0)
            raise
        except (asyncio.CancelledError, TimeoutError):
            self.lease.settle(estimate, None)
            raise
        except BaseException:
            self.lease.settle(estimate, 0.0)
            raise
        used = result.usage.input_tokens + result.usage.output_tokens
        cost = self.price.cost(result.usage) if self.price is not None else 0.0
        self.lease.settle(estimate, cost, float(used) - tokens if used else 0.0)
        return result
