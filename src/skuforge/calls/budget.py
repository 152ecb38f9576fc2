"""The spending cap (`--max-cost`): a ledger in the store, and a wrapper that reserves before each attempt.

Every attempt a provider is sent — first tries, retries, repairs, a moderation check's call — first reserves
its estimated cost (prompt tokens plus `max_tokens`, at the model's price) and is refused when the job's spend
plus what is in flight would exceed the limit. When the attempt ends, its reservation is settled with what it
really cost: the usage the provider reported, nothing for an error the provider answered, and the estimate,
counted as *uncertain*, when the request was sent but never answered (a timeout or a dropped connection may
still have been charged).

The ledger spans invocations and executors: it starts from what the store says the job has spent, and it
makes reservations durable (`store.hold`) before the requests they cover are sent, so a run killed with
requests in flight counts them, as uncertain, on the next run. Holds are taken in steps of several requests,
so the store is written once per step, not once per request.

    budget = Budget.open(store, job_id, limit=5.0)
    client = Budgeted(client, budget, price)          # inside the retries: one reservation per attempt
"""

from __future__ import annotations

import asyncio

from skuforge.errors import BudgetExceeded, TransientError
from skuforge.providers.base import Provider, Request, Result, Usage, Wrapper
from skuforge.providers.prices import Price
from skuforge.store.protocol import LedgerStore
from skuforge.store.records import LedgerState

HOLD_STEP_REQUESTS = 16
"""A durable hold covers this many more requests like the one that needed it (one store write per step)."""


class Budget:
    """A job's spending cap, counting spend of earlier runs, requests in flight and uncertain attempts."""

    def __init__(
        self,
        limit: float | None,
        *,
        store: LedgerStore | None = None,
        job_id: str = "",
        start: LedgerState | None = None,
    ) -> None:
        self.limit, self.store, self.job_id = limit, store, job_id
        self.before = start or LedgerState()
        self.spent = 0.0  # settled by this run
        self.uncertain = 0.0  # sent by this run, never answered
        self.reserved = 0.0  # in flight now
        self.held = 0.0  # durable in the store
        self.exhausted = False
        self.durable_holds = store is not None  # off where reservations are stored another way (batches)

    @classmethod
    def open(cls, store: LedgerStore, job_id: str, limit: float | None) -> Budget:
        return cls(limit, store=store, job_id=job_id, start=store.open_ledger(job_id))

    @property
    def total(self) -> float:
        """Spend of the job so far, every run included, uncertain attempts included."""
        return self.before.committed + self.spent + self.uncertain

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.total - self.reserved)

    def reserve(self, estimate: float) -> bool:
        """Claim `estimate` for an attempt about to be sent; False (and exhausted) when it would not fit."""
        if self.limit is None:
            return True
        if self.total + self.reserved + estimate > self.limit:
            self.exhausted = True
            return False
        self.reserved += estimate
        if self.store is not None and self.durable_holds and self.reserved > self.held:
            room = self.limit - self.total
            self.held = min(room, self.reserved + estimate * HOLD_STEP_REQUESTS)
            self.store.hold(self.job_id, self.held)
        return True

    def settle(self, estimate: float, actual: float) -> None:
        """Replace a reservation by what the attempt really cost."""
        self._release(estimate)
        self.spent += actual
        self._record()

    def settle_uncertain(self, estimate: float) -> None:
        """An attempt that was sent and never answered: count its estimate, it may have been charged."""
        self._release(estimate)
        self.uncertain += estimate
        self._record()

    def _release(self, estimate: float) -> None:
        if self.limit is not None:
            self.reserved = max(0.0, self.reserved - estimate)

    def _record(self) -> None:
        if self.store is not None:
            self.store.record_spend(self.job_id, self.figures())

    def figures(self) -> LedgerState:
        """The ledger's totals as the store keeps them."""
        return LedgerState(
            spent=self.before.spent + self.spent,
            uncertain=self.before.uncertain + self.uncertain,
            held=self.held,
        )

    def close(self) -> None:
        """The run ended cleanly: nothing is in flight, so the durable hold is released."""
        if self.store is not None:
            self.store.record_spend(self.job_id, self.figures())
            self.store.flush()
            if self.held:
                self.held = 0.0
                self.store.hold(self.job_id, 0.0)

    def stop_error(self) -> BudgetExceeded:
        return BudgetExceeded(
            f"The next request would take the job past its cost limit of ${self.limit:.4f} "
            f"(spent ${self.total:.4f}, ${self.reserved:.4f} in flight).",
            "Nothing is lost. Raise the limit and continue: skuforge resume JOB --max-cost N",
        )


def estimate_cost(provider: Provider, request: Request, price: Price | None, *, batch: bool = False) -> float:
    """What `request` may cost at most: its prompt tokens plus `max_tokens` (or 512) at the model's price."""
    if price is None:
        return 0.0
    text = "".join(m.content for m in request.messages)
    usage = Usage(input_tokens=provider.count_tokens(text), output_tokens=request.max_tokens or 512)
    return price.cost(usage, batch=batch)


class Budgeted(Wrapper):
    """Reserves each attempt's estimated cost before it is sent; settles it with what it really cost.

    Sits inside the retries and the limiter (each attempt reserves again, after its slot is granted), and
    raises `BudgetExceeded` — which nothing retries — when the attempt would not fit."""

    def __init__(self, inner: Provider, budget: Budget, price: Price | None) -> None:
        super().__init__(inner)
        self.budget, self.price = budget, price

    async def generate(self, request: Request) -> Result:
        if self.budget.limit is None or self.price is None:
            result = await self.inner.generate(request)
            self.budget.settle(0.0, self._cost(result.usage))
            return result
        estimate = estimate_cost(self.inner, request, self.price)
        if not self.budget.reserve(estimate):
            raise self.budget.stop_error()
        try:
            result = await self.inner.generate(request)
        except TransientError as exc:
            if exc.status is None:  # sent, never answered: it may have been charged
                self.budget.settle_uncertain(estimate)
            else:
                self.budget.settle(estimate, 0.0)
            raise
        except (asyncio.CancelledError, TimeoutError):
            self.budget.settle_uncertain(estimate)
            raise
        except BaseException:
            self.budget.settle(estimate, 0.0)
            raise
        self.budget.settle(estimate, self._cost(result.usage))
        return result

    def _cost(self, usage: Usage) -> float:
        return self.price.cost(usage) if self.price is not None else 0.0
