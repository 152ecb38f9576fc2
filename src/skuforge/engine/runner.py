"""One run of a job: open its context, clients and budget, hand the rows to an executor, conclude.

The lifecycle is the same for every executor: `prepare()` opens the `JobContext`, builds the wrapped clients
(cache, retries, limits, budget) and the `ItemPipeline`, and opens the job's budget ledger; `run()` marks the
job running, lets the executor schedule the items, and concludes: done, paused (budget, provider unavailable,
interrupted) or failed. Executors (`engine.local`, `engine.batch`, `engine.ray_runner`) only decide when items
run and where their outcomes are stored; they count outcomes through `Runner.count`.

    runner = Runner(store, job)                      # local executor by default
    progress = asyncio.run(runner.run())
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from skuforge import config
from skuforge.calls import CallStats, ResponseCache, build_client
from skuforge.calls.budget import Budget
from skuforge.config import Settings, load_settings
from skuforge.engine.context import JobContext
from skuforge.engine.pipeline import ItemPipeline
from skuforge.engine.progress import ProgressCallback, RunProgress
from skuforge.engine.projection import live_projection
from skuforge.engine.spec import JobSpec
from skuforge.errors import BudgetExceeded, ProviderUnavailable, SkuforgeError
from skuforge.providers.base import Provider
from skuforge.providers.prices import Price, parse_price, price_for, require_price
from skuforge.store import ItemOutcome, Job, Store
from skuforge.store.protocol import ItemStore

log = logging.getLogger("skuforge.engine")
ProviderFactory = Callable[[str], Provider]


class Executor(Protocol):
    """Schedules a run's items and persists their outcomes; the runner owns everything else."""

    async def execute(self, run: Any) -> None: ...


class RunState(Protocol):
    """What an executor's scheduling reads and reports to: the `Runner`, or a Ray actor's block run."""

    job: Job
    spec: JobSpec
    ctx: JobContext
    pipeline: ItemPipeline
    progress: RunProgress

    @property
    def store(self) -> ItemStore: ...

    @property
    def stopping(self) -> bool: ...

    def stop(self, exc: BudgetExceeded | ProviderUnavailable) -> None: ...

    def count(self, outcome: ItemOutcome, requests: int = 0) -> None: ...

    def row_finished(self) -> None: ...


class Runner:
    """Runs one job to the end, to a budget stop, to an unavailable provider, or to a cancellation."""

    def __init__(
        self,
        store: Store,
        job: Job,
        *,
        settings: Settings | None = None,
        on_progress: ProgressCallback | None = None,
        provider_factory: ProviderFactory | None = None,
        executor: Executor | Any = None,
    ) -> None:
        self.store, self.job = store, job
        self.spec = JobSpec.from_job(job)
        self.settings = settings or load_settings()
        self.on_progress = on_progress
        self.progress = RunProgress(job_id=job.id)
        self.call_stats = CallStats()
        self.stopped_reason: str | None = None
        self.stop_error: BaseException | None = None
        self._provider_factory = provider_factory
        self._cache: ResponseCache | None = None
        self._prices: dict[str, Price | None] = {}
        self.examples_dir: Path | None = None  # where `prepare` kept the recipe's example pools
        if executor is None:
            from skuforge.engine.local import LocalExecutor

            executor = LocalExecutor()
        self.executor: Executor = executor
        self.budget = Budget(self.spec.max_cost)

    # -- set-up ----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Open the context, check everything that can be checked, open the budget and the clients; every
        input error is raised here, before any request, and marks the job failed with its reason (a job
        that cannot run is never left queued for a worker to pick up)."""
        try:
            self._prepare()
        except SkuforgeError as exc:
            self.store.set_state(self.job.id, "failed", error=str(exc))
            raise

    def _prepare(self) -> None:
        self.ctx = JobContext.open(self.job, self.settings)
        self.ctx.check_ready()
        # extraction steps learn from the catalog's own filled rows (all of them, not only the selection);
        # the pool is kept per job so a rerun after an edit regenerates only the edited rows
        keep = self.examples_dir = config.home() / "examples" / self.job.id
        self.ctx.recipe = self.ctx.recipe.prepare(
            self.ctx.catalog.rows, self.settings, self.ctx.params, keep=keep
        )
        if self.spec.max_cost is not None:
            for model in self.ctx.models():
                require_price(model, self.settings, self._price_flag(model))
        self.budget = Budget.open(self.store, self.job.id, self.spec.max_cost)
        self.pipeline = ItemPipeline(
            self.ctx,
            {model: self.client(model) for model in self.ctx.models()},
            prices=self.price,
            client_for=self.client,
        )
        self.progress.rows_total = self.ctx.count_rows()
        self.progress.cost_known = all(self.price(m) is not None for m in self.ctx.models())

    def provider(self, model: str) -> Provider:
        from skuforge.providers import get_provider

        if self._provider_factory is not None:
            return self._provider_factory(model)
        return get_provider(model, self.settings)

    def client(self, model: str, *, budget: Budget | None = None) -> Provider:
        """The provider for `model` behind the run's wrappers: cache, retries, limits, budget."""
        return build_client(
            self.provider(model),
            self.spec.limits,
            cache=self.response_cache,
            stats=self.call_stats,
            budget=budget or self.budget,
            price=self.price(model),
            winding_down=lambda: self.progress.all_started,
        )

    @property
    def response_cache(self) -> ResponseCache | None:
        """The run's response cache (None with --no-cache): shared by every client of the run."""
        if self._cache is None and self.spec.cache:
            self._cache = ResponseCache()
        return self._cache

    def price(self, model: str) -> Any:
        """The model's price: `--price` for the job's model, else the price table; None when unknown."""
        if model not in self._prices:
            self._prices[model] = price_for(model, self.settings.prices, price=self._price_flag(model))
        return self._prices[model]

    def _price_flag(self, model: str) -> Price | None:
        return parse_price(self.spec.price) if self.spec.price and model == self.spec.model else None

    # -- the run ---------------------------------------------------------------------------------------
    async def run(self) -> RunProgress:
        if not hasattr(self, "ctx"):
            self.prepare()
        self.store.set_state(self.job.id, "running")
        try:
            await self.executor.execute(self)
        except BaseException as exc:
            self.store.flush()
            interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
            state = "paused" if interrupted else "failed"
            self.store.set_state(self.job.id, state, error=None if interrupted else str(exc))
            raise
        finally:
            await self._close()
        self.store.flush()
        return self._conclude()

    async def _close(self) -> None:
        pipeline = getattr(self, "pipeline", None)
        if pipeline is not None:
            await pipeline.aclose()
        if self._cache is not None:
            self._cache.close()
        self.budget.close()

    def _conclude(self) -> RunProgress:
        """The job's final state: paused by the budget or an unavailable provider, else done."""
        if isinstance(self.stop_error, ProviderUnavailable):
            self._pause("unavailable", self.stop_error.message)
            raise self.stop_error
        if self.stopped_reason == "budget" or self.budget.exhausted:
            self._pause("budget", "stopped by the cost limit")
        else:
            self.progress.state = "done"
            self.store.set_state(self.job.id, "done")
        self.emit()
        return self.progress

    def _pause(self, reason: str, message: str) -> None:
        self.stopped_reason = reason
        self.progress.state = "paused"
        self.store.set_state(self.job.id, "paused", error=message)
        self.emit()

    # -- what executors call ---------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self.stop_error is not None or self.budget.exhausted

    def stop(self, exc: BudgetExceeded | ProviderUnavailable) -> None:
        """Stop scheduling: the budget is spent or the provider cannot be used. Items not finished stay
        pending, so `skuforge resume` carries on."""
        if self.stop_error is None:
            self.stop_error = exc
            self.stopped_reason = "budget" if isinstance(exc, BudgetExceeded) else "unavailable"
            log.info("job %s stops: %s", self.job.id, exc.message)

    def count(self, outcome: ItemOutcome, requests: int = 0) -> None:
        """Count an outcome recorded by this run in the live progress."""
        self.progress.count(outcome, requests)

    def row_finished(self) -> None:
        self.progress.rows_done += 1
        self.emit()

    def emit(self) -> None:
        p = self.progress
        p.cost = round(p.cost, 10)
        new = p.done + p.flagged + p.failed + p.skipped
        ctx = getattr(self, "ctx", None)
        per_row = ctx.items_per_row() if ctx is not None else 1
        total = p.rows_total * per_row if p.rows_total is not None else None
        p.projected_cost = live_projection(p.cost, new, new + p.reused, total)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    # -- what the trial and the service read -----------------------------------------------------------
    @property
    def latency_s_total(self) -> float:
        return self.pipeline.latency_s_total

    @property
    def latency_count(self) -> int:
        return self.pipeline.latency_count


def run_job(store: Store, job: Job, **kwargs: Any) -> RunProgress:
    """Run a job to its end from synchronous code, on the executor its spec names."""
    from skuforge.engine.executors import make_executor

    runner = make_executor(store, job, **kwargs)
    return asyncio.run(runner.run())
