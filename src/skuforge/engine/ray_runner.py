"""The Ray executor (`skuforge run ... --executor ray [--ray-address ADDR]`): the same items on Ray Data.

The driver splits the selected rows into blocks of `block_rows` and hands them to a pool of actors through
Ray Data (`map_batches` over block ranges). Each actor runs its block with the local executor's scheduling
over the same `ItemPipeline` (render, key, call, parse, checks), so outcomes match the local executor's item
by item. Earlier work is looked up in the job's store by product and by item key, as everywhere.

Limits and money are shared across the cluster by ONE named actor, the `Coordinator`: every attempt takes a
slot, its RPM/TPM cost and its estimated price from it, so twenty workers do not each take the full RPM or
the full budget, and a 429 seen by one worker pauses them all. The coordinator keeps the job's budget ledger
in the store (it runs on the driver's node, so it can open the same store).

Outcomes: each block's outcomes are written by its actor as one Parquet part (written to a temporary name,
then renamed) and streamed back to the driver, which records them in the store and removes the part. Parts
left behind by a driver that was killed are recorded at the start of the next run, so a finished block is
never sent again.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from skuforge.calls import Cached, CallStats, ResponseCache, Retrying
from skuforge.calls.budget import Budget
from skuforge.config import home
from skuforge.engine.context import JobContext
from skuforge.engine.local import LocalExecutor
from skuforge.engine.pipeline import ItemPipeline
from skuforge.engine.progress import RunProgress
from skuforge.errors import BudgetExceeded, ProviderUnavailable, RateLimitError, TransientError, require
from skuforge.providers.base import Provider, Request, Result, Wrapper
from skuforge.store import ItemOutcome, ItemRecord, Job, Store, open_store

if TYPE_CHECKING:
    from skuforge.engine.runner import Runner

BLOCK_ROWS = 1024
_COLUMNS = (
    "row_id",
    "row_index",
    "step",
    "variant",
    "key",
    "status",
    "output",
    "error",
    "findings",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost",
    "attempts",
    "cached",
    "review",
    "meta",
)
_JSON = ("output", "findings", "meta")
_FORWARD_ENV = ("SKUFORGE_", "OPENAI_", "ANTHROPIC_", "DEEPSEEK_", "DASHSCOPE_", "OLLAMA_", "VLLM_")


class Coordinator:
    """Cluster-wide concurrency, RPM/TPM (GCRA buckets), a shared cool-down after a 429, and the budget.

    Runs as one named async Ray actor; `acquire` reserves a bucket slot and the attempt's cost at once (no
    race) and then waits for its turn, so waiting costs no CPU and no polling."""

    def __init__(
        self,
        concurrency: int,
        rpm: float | None,
        tpm: float | None,
        *,
        store_url: str | None = None,
        job_id: str = "",
        max_cost: float | None = None,
        burst_s: float = 1.0,
    ) -> None:
        self.concurrency, self.rpm, self.tpm, self.burst_s = concurrency, rpm, tpm, burst_s
        self.in_use = self.peak = self.admitted = 0
        self.tat_r = self.tat_t = -math.inf
        self.cool_until = 0.0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.store = open_store(store_url) if store_url else None
        self.budget = (
            Budget.open(self.store, job_id, max_cost) if self.store is not None else Budget(max_cost)
        )

    async def acquire(self, tokens: float, cost: float = 0.0) -> bool:
        """A slot and the attempt's estimated cost; False (no slot taken) when the budget is spent."""
        if not self.budget.reserve(cost):
            return False
        if self.in_use >= self.concurrency or self.waiters:
            future = asyncio.get_running_loop().create_future()
            self.waiters.append(future)
            await future  # handed a slot by release()
        else:
            self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        await asyncio.sleep(self._wait(tokens))
        self.admitted += 1
        return True

    def _wait(self, tokens: float) -> float:
        now = time.monotonic()
        wait = max(0.0, self.cool_until - now)
        if self.rpm:
            wait = max(wait, self.tat_r - self.burst_s - now)
            self.tat_r = max(self.tat_r, now) + 60.0 / self.rpm
        if self.tpm:
            wait = max(wait, self.tat_t - self.burst_s - now)
            self.tat_t = max(self.tat_t, now) + tokens * 60.0 / self.tpm
        return wait

    def release(self, token_delta: float = 0.0, reserved: float = 0.0, cost: float = 0.0) -> None:
        """Give the slot back; settle the reservation (`cost` < 0: sent, never answered — uncertain)."""
        if cost < 0:
            self.budget.settle_uncertain(reserved)
        else:
            self.budget.settle(reserved, cost)
        if self.tpm and token_delta:
            self.tat_t += token_delta * 60.0 / self.tpm
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes straight to the next waiter
                return
        self.in_use -= 1

    def cooldown(self, seconds: float) -> None:
        self.cool_until = max(self.cool_until, time.monotonic() + seconds)

    def stats(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "admitted": self.admitted,
            "in_use": self.in_use,
            "exhausted": self.budget.exhausted,
            "spent": self.budget.total,
        }

    def close(self) -> dict[str, Any]:
        self.budget.close()
        return self.stats()


class ClusterLimited(Wrapper):
    """Takes a cluster-wide slot and budget from the coordinator around each attempt (inside the retries)."""

    def __init__(
        self, inner: Provider, coordinator: Any, price: Any, default_output_tokens: int = 256
    ) -> None:
        super().__init__(inner)
        self.coordinator, self.price = coordinator, price
        self.default_output_tokens = default_output_tokens

    async def generate(self, request: Request) -> Result:
        from skuforge.calls.budget import estimate_cost

        text = "".join(m.content for m in request.messages)
        tokens = self.inner.count_tokens(text) + (request.max_tokens or self.default_output_tokens)
        reserved = estimate_cost(self.inner, request, self.price)
        if not await self.coordinator.acquire.remote(tokens, reserved):
            raise BudgetExceeded(
                "The next request would take the job past its cost limit.",
                "Nothing is lost. Raise the limit and continue: skuforge resume JOB --max-cost N",
            )
        delta, cost = 0.0, 0.0
        try:
            result = await self.inner.generate(request)
            used = result.usage.input_tokens + result.usage.output_tokens
            delta = float(used - tokens) if used else 0.0
            cost = self.price.cost(result.usage) if self.price is not None else 0.0
            return result
        except RateLimitError as exc:
            self.coordinator.cooldown.remote(exc.retry_after or 1.0)
            raise
        except TransientError as exc:
            cost = -1.0 if exc.status is None else 0.0
            raise
        except (asyncio.CancelledError, TimeoutError):
            cost = -1.0
            raise
        finally:
            self.coordinator.release.remote(delta, reserved, cost)


# -- Parquet parts -----------------------------------------------------------------------------------------
def _part_path(parts: str, start: int) -> Path:
    return Path(parts) / f"part-{start:012d}.parquet"


def read_part(path: Path) -> list[ItemRecord]:
    """The outcomes of one block from its Parquet part ([] when the block never finished)."""
    if not path.exists():
        return []
    import pyarrow.parquet as pq

    records = []
    for row in pq.read_table(path).to_pylist():
        for name in _JSON:
            row[name] = orjson.loads(row[name]) if row[name] is not None else None
        records.append(ItemRecord(**row))
    return records


def to_table(outcomes: list[Any]) -> Any:
    """Outcomes as an Arrow table; JSON values are stored as strings, as in the store."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for o in outcomes:
        for name in _COLUMNS:
            value = getattr(o, name)
            columns[name].append(
                orjson.dumps(value).decode() if name in _JSON and value is not None else value
            )
    types = {"row_index": pa.int64(), "cost": pa.float64(), "cached": pa.bool_()}
    for name in ("input_tokens", "output_tokens", "cached_tokens", "attempts"):
        types[name] = pa.int64()
    return pa.table({n: pa.array(v, type=types.get(n, pa.string())) for n, v in columns.items()})


def write_part(path: Path, outcomes: list[Any]) -> None:
    """Write a block's outcomes atomically (temporary name, then rename): a part is whole or absent."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(to_table(outcomes), tmp)
    os.replace(tmp, path)


# -- the worker side ---------------------------------------------------------------------------------------
class _BlockSink:
    """The store as a block's actor sees it: earlier work is read from the job's store; outcomes are
    collected for the block's Parquet part (durable when the part is written)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.outcomes: list[ItemOutcome] = []

    def has_items(self, job_id: str) -> bool:
        return self.store.has_items(job_id)

    def prior(self, job_id: str, row_ids: Sequence[str]) -> dict[tuple[str, str, str], ItemRecord]:
        return self.store.prior(job_id, row_ids)

    def finished_by_keys(self, job_id: str, keys: Sequence[str]) -> dict[str, ItemRecord]:
        return self.store.finished_by_keys(job_id, keys)

    def record(
        self,
        job_id: str,
        outcomes: Iterable[ItemOutcome],
        on_durable: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.outcomes.extend(outcomes)
        if on_durable is not None:
            on_durable(None)

    def flush(self) -> None:
        """Nothing is queued: outcomes are written with the block's part."""


class BlockRun:
    """What the local executor needs to run one block inside a Ray actor (see `engine.runner.RunState`)."""

    def __init__(self, job: Job, store_url: str, coordinator: Any, window: int) -> None:
        from skuforge.engine.runner import Runner

        self.job = job
        self.store = _BlockSink(open_store(store_url))
        base = Runner(self.store.store, job)
        self.spec, self.settings = base.spec, base.settings
        self.spec = self.spec.model_copy(
            update={"limits": self.spec.limits.model_copy(update={"concurrency": window})}
        )
        self.ctx = JobContext.open(job, self.settings)
        self.progress = RunProgress(job_id=job.id)
        self.budget = Budget(None)
        self.stop_error: BaseException | None = None
        self._base, self._coordinator = base, coordinator
        self._cache = ResponseCache() if self.spec.cache else None
        self.pipeline = ItemPipeline(self.ctx, {}, prices=base.price, client_for=self.client)

    def client(self, model: str) -> Provider:
        stats, limits = CallStats(), self.spec.limits
        client: Provider = ClusterLimited(
            self._base.provider(model), self._coordinator, self._base.price(model)
        )
        client = Retrying(client, max_retries=limits.max_retries, timeout_s=limits.timeout_s, stats=stats)
        return Cached(client, self._cache, stats=stats) if self._cache is not None else client

    @property
    def stopping(self) -> bool:
        return self.stop_error is not None

    def stop(self, exc: BudgetExceeded | ProviderUnavailable) -> None:
        self.stop_error = self.stop_error or exc

    def count(self, outcome: ItemOutcome, requests: int = 0) -> None:
        self.progress.requests += requests

    def row_finished(self) -> None:
        self.progress.rows_done += 1


class BlockWorker:
    """A Ray Data actor: runs blocks of rows and returns their outcomes (also written as a part)."""

    def __init__(
        self, job: Job, store_url: str, coordinator: str, namespace: str, parts: str, window: int
    ) -> None:
        import ray

        self.parts = parts
        self.loop = asyncio.new_event_loop()
        handle = ray.get_actor(coordinator, namespace=namespace)
        self.run = BlockRun(job, store_url, handle, window)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """One summary per block: where its part is, how many rows finished, how many items were reused."""
        done: dict[str, list[Any]] = {"part": [], "rows": [], "reused": []}
        for start, end in zip(batch["start"], batch["end"], strict=True):
            part, rows, reused = self.loop.run_until_complete(self._block(int(start), int(end)))
            done["part"].append(part)
            done["rows"].append(rows)
            done["reused"].append(reused)
        return done

    async def _block(self, start: int, end: int) -> tuple[str, int, int]:
        import itertools

        run = self.run
        run.store.outcomes = []
        run.progress = RunProgress(job_id=run.job.id)
        rows = itertools.islice(run.ctx.rows(), start, end)
        await LocalExecutor().execute(run, rows)
        path = _part_path(self.parts, start)
        write_part(path, run.store.outcomes)
        return str(path), run.progress.rows_done, run.progress.reused


# -- the driver side ---------------------------------------------------------------------------------------
class RayExecutor:
    """Runs a job's items on Ray Data; records every outcome in the store as its block comes back."""

    def __init__(
        self,
        *,
        address: str | None = None,
        block_rows: int | None = None,
        workers: int | None = None,
        parts_dir: str | None = None,
    ) -> None:
        self.address, self.workers, self.parts_dir = address, workers, parts_dir
        self.block_rows = block_rows or int(os.environ.get("SKUFORGE_RAY_BLOCK_ROWS") or BLOCK_ROWS)
        self.coordinator_stats: dict[str, Any] = {}

    async def execute(self, run: Runner) -> None:
        ray = require("ray", "the Ray executor", "ray")
        self.run = run
        self.parts = (
            self.parts_dir or os.environ.get("SKUFORGE_RAY_PARTS") or str(home() / "ray" / run.job.id)
        )
        self._recover_parts()
        run.budget = Budget(None)  # the coordinator keeps the ledger while the cluster runs
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address, include_dashboard=False, runtime_env={"env_vars": _forwarded_env()}
            )
        try:
            await asyncio.to_thread(self._drive, ray)
        finally:
            if started_here:
                ray.shutdown()
        if self.coordinator_stats.get("exhausted"):
            run.stop(BudgetExceeded("The cost limit was reached on the cluster.", "Raise it and resume."))

    def _recover_parts(self) -> None:
        """Record what a killed driver left in parts, so those blocks are not sent again."""
        folder = Path(self.parts)
        for path in sorted(folder.glob("part-*.parquet")) if folder.exists() else []:
            self.run.store.record(self.run.job.id, read_part(path))
            self.run.store.flush()
            path.unlink()

    def _ranges(self) -> list[dict[str, int]]:
        total = self.run.ctx.count_rows()
        if total is None:
            total = sum(1 for _ in self.run.ctx.rows())
        self.run.progress.rows_total = total
        return [
            {"start": s, "end": min(s + self.block_rows, total)} for s in range(0, total, self.block_rows)
        ]

    def _coordinator(self, ray: Any) -> Any:
        spec, store = self.run.spec, self.run.store
        options: dict[str, Any] = {
            "name": f"skuforge-limits-{self.run.job.id}",
            "namespace": "skuforge",
            "max_concurrency": 100_000,
            "num_cpus": 0,
            "get_if_exists": True,
        }
        if store.url.startswith("sqlite") and not ray.util.client.ray.is_connected():
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = ray.get_runtime_context().get_node_id()  # the store file is on this node
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        limits = spec.limits
        return (
            ray.remote(Coordinator)
            .options(**options)
            .remote(
                limits.concurrency,
                limits.rpm,
                limits.tpm,
                store_url=store.url,
                job_id=self.run.job.id,
                max_cost=spec.max_cost,
            )
        )

    def _drive(self, ray: Any) -> None:
        ranges = self._ranges()
        if not ranges:
            return
        coordinator = self._coordinator(ray)
        workers = min(len(ranges), self.workers or max(1, int(ray.cluster_resources().get("CPU", 1))))
        window = max(1, math.ceil(self.run.spec.limits.concurrency / workers) * 2)
        try:
            ds = ray.data.from_items(ranges, override_num_blocks=len(ranges))
            out = ds.map_batches(
                BlockWorker,
                batch_size=1,
                concurrency=workers,
                num_cpus=1,
                batch_format="numpy",
                runtime_env={"env_vars": _forwarded_env()},  # this run's settings, even on a running cluster
                fn_constructor_kwargs={
                    "job": self.run.job,
                    "store_url": self.run.store.url,
                    "coordinator": f"skuforge-limits-{self.run.job.id}",
                    "namespace": "skuforge",
                    "parts": self.parts,
                    "window": window,
                },
            )
            for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
                for part, rows, reused in zip(batch["part"], batch["rows"], batch["reused"], strict=True):
                    self._ingest(Path(str(part)), int(rows), int(reused))
            self.coordinator_stats = ray.get(coordinator.close.remote())
        finally:
            ray.kill(coordinator)

    def _ingest(self, part: Path, rows: int, reused: int) -> None:
        """Record a block's outcomes in the store, count them, and drop the block's part."""
        run = self.run
        outcomes = read_part(part)
        run.store.record(run.job.id, outcomes)
        run.store.flush()
        part.unlink(missing_ok=True)
        for o in outcomes:
            run.count(o, o.attempts if not o.cached and o.key else 0)
        run.progress.rows_done += rows
        run.progress.reused += reused
        run.emit()


def _forwarded_env() -> dict[str, str]:
    """skuforge's and the providers' variables, so workers on other nodes see the same settings."""
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV)}
