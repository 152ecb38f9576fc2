"""The Ray executor (`skuforge run ... --executor ray [--ray-address ADDR]`): the same job on Ray Data.

The driver splits the selected rows into blocks of `block_rows` and hands them to a pool of actors through
Ray Data (`map_batches` over block ranges). Each actor is a local `Runner` over its block: it renders, calls
the provider through the usual wrappers (cache, retries, per-actor limits), parses and checks exactly as the
local executor does, so outputs match row by row. Limits are shared across the cluster: every request first
takes a slot and its RPM/TPM cost from ONE named actor (`LimitCoordinator`), so twenty workers do not each
take the full RPM, and a 429 seen by one worker pauses them all.

State: each block's outcomes are written by its actor as one Parquet part (`part-<start>.parquet`, written
to a temporary name and renamed), and streamed back to the driver, which records them in the store (so
`export`, `show` and review work as for a local run). A rerun reads the part of each block first and sends
no request for an item whose key is unchanged and finished: resume by item key, without the store being
reachable from the workers.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from skuforge.config import home
from skuforge.engine.progress import RunProgress
from skuforge.engine.runner import Runner
from skuforge.errors import RateLimitError, UserError, require
from skuforge.providers.base import Provider, Request, Result, Wrapper
from skuforge.store import ItemOutcome, ItemRecord

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


class LimitCoordinator:
    """Cluster-wide concurrency and RPM/TPM (GCRA buckets), and a shared cool-down after a 429.

    Runs as one named async Ray actor; `acquire` reserves a bucket slot at once (no race) and then waits
    for its turn, so waiting costs no CPU and no polling."""

    def __init__(self, concurrency: int, rpm: float | None, tpm: float | None, burst_s: float = 1.0) -> None:
        self.concurrency, self.rpm, self.tpm, self.burst_s = concurrency, rpm, tpm, burst_s
        self.in_use = self.peak = self.admitted = 0
        self.tat_r = self.tat_t = -math.inf
        self.cool_until = 0.0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, tokens: float) -> None:
        if self.in_use >= self.concurrency or self.waiters:
            future = asyncio.get_running_loop().create_future()
            self.waiters.append(future)
            await future  # handed a slot by release()
        else:
            self.in_use += 1
        self.peak = max(self.peak, self.in_use)
        now = time.monotonic()
        wait = max(0.0, self.cool_until - now)
        if self.rpm:
            wait = max(wait, self.tat_r - self.burst_s - now)
            self.tat_r = max(self.tat_r, now) + 60.0 / self.rpm
        if self.tpm:
            wait = max(wait, self.tat_t - self.burst_s - now)
            self.tat_t = max(self.tat_t, now) + tokens * 60.0 / self.tpm
        self.admitted += 1
        if wait > 0:
            await asyncio.sleep(wait)

    def release(self, token_delta: float = 0.0) -> None:
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
        return {"peak": self.peak, "admitted": self.admitted, "in_use": self.in_use}


class ClusterLimited(Wrapper):
    """Takes a cluster-wide slot from the coordinator around each attempt (it sits inside the retries)."""

    def __init__(self, inner: Provider, coordinator: Any, default_output_tokens: int = 256) -> None:
        super().__init__(inner)
        self.coordinator = coordinator
        self.default_output_tokens = default_output_tokens

    async def generate(self, request: Request) -> Result:
        text = "".join(m.content for m in request.messages)
        estimate = self.inner.count_tokens(text) + (request.max_tokens or self.default_output_tokens)
        await self.coordinator.acquire.remote(estimate)
        delta = 0.0
        try:
            result = await self.inner.generate(request)
            used = result.usage.input_tokens + result.usage.output_tokens
            delta = float(used - estimate) if used else 0.0
            return result
        except RateLimitError as exc:
            self.coordinator.cooldown.remote(exc.retry_after or 1.0)
            raise
        finally:
            self.coordinator.release.remote(delta)


class _PartStore:
    """What a worker's Runner sees as its store: outcomes collected for the block's Parquet part."""

    def __init__(self, prior: list[ItemRecord]) -> None:
        self.prior, self.outcomes = prior, []  # type: ignore[var-annotated]

    def record(self, _job_id: str, outcomes: Any) -> None:
        self.outcomes.extend(outcomes)

    def items_in_range(self, _job_id: str, first: int, last: int) -> list[ItemRecord]:
        return [i for i in self.prior if first <= i.row_index <= last]

    def flush(self) -> None:
        pass


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

    table = to_table(outcomes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class BlockWorker:
    """A Ray Data actor: runs blocks of rows through a local Runner and returns their outcomes."""

    def __init__(self, job: Any, coordinator: str, namespace: str, parts: str, window: int) -> None:
        import ray

        from skuforge.providers import get_provider

        self.job, self.parts, self.window = job, parts, window
        self.coordinator = ray.get_actor(coordinator, namespace=namespace)
        self.loop = asyncio.new_event_loop()
        self.store = _PartStore([])
        self.runner = Runner(
            self.store,  # type: ignore[arg-type]
            job,
            provider_factory=lambda model: ClusterLimited(
                get_provider(model, self.runner.settings), self.coordinator
            ),
        )
        if self.runner.spec.cache:
            from skuforge.calls import ResponseCache

            self.runner._cache = ResponseCache(home() / "ray-cache" / f"{job.id}-{os.getpid()}.db")
        self.runner.prepare()

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        tables = [
            self.loop.run_until_complete(self._block(int(s), int(e)))
            for s, e in zip(batch["start"], batch["end"], strict=True)
        ]
        return pa.concat_tables(tables) if tables else pa.table({})

    async def _block(self, start: int, end: int) -> Any:
        path = _part_path(self.parts, start)
        self.store.prior, self.store.outcomes = read_part(path), []
        rows = list(itertools.islice(self.runner.rows(), start, end))
        if rows:
            prior = self.runner._prior(rows)
            gate = asyncio.Semaphore(self.window)

            async def one(row: Any) -> None:
                async with gate:
                    await self.runner._row(row, prior)

            await asyncio.gather(*(one(r) for r in rows))
        new = self.store.outcomes
        fresh = {(o.row_id, o.step, o.variant) for o in new}
        kept = [i for i in self.store.prior if (i.row_id, i.step, i.variant) not in fresh]
        write_part(path, kept + new)  # reused items stay in the part, so the next rerun reuses them too
        return to_table(new)


class RayRunner(Runner):
    """Runs a job on Ray Data; records every outcome in the store as its block comes back."""

    def __init__(
        self,
        store: Any,
        job: Any,
        *,
        address: str | None = None,
        block_rows: int = BLOCK_ROWS,
        workers: int | None = None,
        parts_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(store, job, **kwargs)
        self.address, self.block_rows, self.workers = address, block_rows, workers
        self.parts = parts_dir or os.environ.get("SKUFORGE_RAY_PARTS") or str(home() / "ray" / job.id)
        self.coordinator_stats: dict[str, Any] = {}

    def prepare(self) -> None:
        """Catalog and recipe only: providers are made inside the Ray actors."""
        self.prepare_for_export()
        if self.spec.max_cost is not None:
            raise UserError(
                "--max-cost is not supported with --executor ray yet.", "Run locally, or drop it."
            )

    async def run(self) -> RunProgress:
        ray = require("ray", "the Ray executor", "ray")
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address, include_dashboard=False, runtime_env={"env_vars": _forwarded_env()}
            )
        self._ray = ray
        try:
            return await super().run()
        finally:
            if started_here:
                ray.shutdown()

    async def _execute(self) -> None:
        await asyncio.to_thread(self._drive, self._ray)

    async def _close(self) -> None:
        """Nothing to close here: each actor closes its own clients."""

    def _ranges(self) -> list[dict[str, int]]:
        total = self._count_rows()
        if total is None:
            total = sum(1 for _ in self.rows())
        self.progress.rows_total = total
        return [
            {"start": s, "end": min(s + self.block_rows, total)} for s in range(0, total, self.block_rows)
        ]

    def _drive(self, ray: Any) -> None:
        ranges = self._ranges()
        if not ranges:
            return
        limits = self.spec.limits
        name, namespace = f"skuforge-limits-{self.job.id}", "skuforge"
        coordinator = (
            ray.remote(LimitCoordinator)
            .options(
                name=name,
                namespace=namespace,
                max_concurrency=100_000,
                num_cpus=0,
                get_if_exists=True,
            )
            .remote(limits.concurrency, limits.rpm, limits.tpm)
        )
        workers = self.workers or max(1, min(len(ranges), int(ray.cluster_resources().get("CPU", 1))))
        window = max(1, math.ceil(limits.concurrency / workers) * 2)
        try:
            ds = ray.data.from_items(ranges, override_num_blocks=len(ranges))
            out = ds.map_batches(
                BlockWorker,
                batch_size=1,
                concurrency=workers,
                num_cpus=1,
                batch_format="pyarrow",
                runtime_env={"env_vars": _forwarded_env()},  # this run's settings, even on a running cluster
                fn_constructor_kwargs={
                    "job": self.job,
                    "coordinator": name,
                    "namespace": namespace,
                    "parts": self.parts,
                    "window": window,
                },
            )
            for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
                self._ingest(batch)
            self.coordinator_stats = ray.get(coordinator.stats.remote())
        finally:
            ray.kill(coordinator)

    def _ingest(self, table: Any) -> None:
        """Record a block's outcomes in the store and count them, as the local runner would have."""
        outcomes = []
        for row in table.to_pylist():
            for name in _JSON:
                row[name] = orjson.loads(row[name]) if row[name] is not None else None
            outcomes.append(ItemOutcome(**row))
        self.store.record(self.job.id, outcomes)
        p = self.progress
        for o in outcomes:
            setattr(p, o.status, getattr(p, o.status) + 1)
            p.requests += o.attempts if not o.cached and o.key else 0
            p.cost += o.cost
            p.input_tokens += o.input_tokens
            p.output_tokens += o.output_tokens
        p.rows_done += len({o.row_id for o in outcomes})
        self._emit()


def _forwarded_env() -> dict[str, str]:
    """skuforge's and the providers' variables, so workers on other nodes see the same settings."""
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARD_ENV)}
