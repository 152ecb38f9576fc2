"""The Ray executor's call stage: an async actor pool that sends the requests of planned rows.

Each `Caller` is a Ray Data actor (`ActorPoolStrategy`) with an async `__call__`, so several blocks run in
one actor at once and requests stay in flight while a block ends. Its limits come from the run's
`Coordinator` in leases (`engine.ray_lease`): the actor holds its share of `--concurrency` as slots and
takes requests, tokens and money from its lease, one remote call per lease.

A block's rows go through the engine's own scheduling and pipeline: `LocalExecutor.resolve` (decided items,
earlier work, identical requests in flight, sending) over `pipeline.walk_row`, with the requests the plan
stage rendered, so every outcome is the one a local run would record. The block's outcomes are written to
the job's output folder (`engine.ray_output`) as they come, in pieces of `PIECE_ROWS` (or every `PIECE_S`
seconds), and as one part when the block ends; a piece is durable once written. A worker or driver killed
mid-block loses at most one unwritten piece per running block. Ray runs a lost block again under the same
part name, and that attempt first reads what the earlier one wrote; nothing a part or piece holds is asked
again, in the same run or a rerun.

A local model (`local:`) runs in the actor's own process, one loaded model per actor, with as many threads
as CPUs the actor reserved (`SKUFORGE_THREADS`, read by the local provider when it loads the model).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from skuforge.calls import Breaker, Cached, CallStats, Limited, ResponseCache, Retrying
from skuforge.catalog import CatalogRow
from skuforge.catalog.partition import rows_of
from skuforge.engine.local import LocalExecutor
from skuforge.engine.pipeline import ItemPipeline, Planned, walk_row
from skuforge.engine.prior import Prior
from skuforge.engine.progress import RunProgress
from skuforge.engine.ray_index import KeyIndex
from skuforge.engine.ray_lease import LeaseClient, Leased
from skuforge.engine.ray_output import OutputFolder, Part, part_name, piece_name
from skuforge.engine.ray_plan import (
    ENV_PREFIXES,
    RunPlan,
    apply_env,
    decode_planned,
    decode_prior,
    worker_context,
)
from skuforge.errors import BudgetExceeded, ProviderUnavailable
from skuforge.providers.base import Provider
from skuforge.store import FINISHED, ItemOutcome, ItemRecord

log = logging.getLogger("skuforge.engine.ray")
SUMMARY_COUNTS = (
    "rows", "reused", "done", "flagged", "failed", "skipped", "requests", "cache_hits", "input_tokens",
    "output_tokens", "cached_tokens", "retries", "timeouts", "rate_limited", "taken",
)  # fmt: skip
PIECE_ROWS = 64
PIECE_S = 2.0
"""A running block writes its outcomes every PIECE_ROWS outcomes (`SKUFORGE_RAY_PIECE_ROWS`), or with the
first outcome PIECE_S seconds after the last write: a kill loses about that many answers per running block.
64 rows a piece cost one small Parquet write per 64 answers; see docs/scale.md for what that costs a row."""


class Journal:
    """A block's outcomes written as they come, in numbered pieces next to where its part will be."""

    def __init__(self, folder: OutputFolder, part: str, run: int, first_piece: int = 0) -> None:
        self.folder, self.part, self.run = folder, part, run
        self.number, self.written = first_piece, time.monotonic()
        self.rows = int(os.environ.get("SKUFORGE_RAY_PIECE_ROWS") or PIECE_ROWS)
        self.pending: list[ItemOutcome] = []
        self.writes: list[asyncio.Future[str]] = []

    def add(self, outcomes: Iterable[ItemOutcome]) -> None:
        self.pending.extend(outcomes)
        due = time.monotonic() - self.written >= PIECE_S
        if len(self.pending) >= self.rows or (self.pending and due):
            batch, self.pending = self.pending, []
            name = piece_name(self.part, self.number)
            self.number, self.written = self.number + 1, time.monotonic()
            write = asyncio.to_thread(self.folder.write, name, batch, self.run)
            self.writes.append(asyncio.ensure_future(write))

    async def close(self) -> list[str]:
        """Wait for the pieces being written; the paths of all of them."""
        return list(await asyncio.gather(*self.writes))


class BlockSink:
    """The store as one block sees it (`store.protocol.ItemStore`): earlier work from what the plan stage
    attached to the rows (and, for later steps of a chained recipe, from the shards and the store); new
    outcomes collected for the block's part, durable once the part is written."""

    def __init__(
        self,
        history: bool,
        by_row: Iterable[ItemRecord] = (),
        by_key: Iterable[ItemRecord] = (),
        lookup: Callable[[list[str]], dict[str, ItemRecord]] | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.history = history
        self.by_row = {(r.row_id, r.step, r.variant): r for r in by_row}
        self.by_key = {r.key: r for r in by_key}
        self.lookup = lookup
        self.journal = journal
        self.outcomes: list[ItemOutcome] = []

    def has_items(self, job_id: str) -> bool:
        return self.history

    def prior(self, job_id: str, row_ids: Sequence[str]) -> dict[tuple[str, str, str], ItemRecord]:
        wanted = set(row_ids)
        return {k: r for k, r in self.by_row.items() if k[0] in wanted}

    def finished_by_keys(self, job_id: str, keys: Sequence[str]) -> dict[str, ItemRecord]:
        found = {k: self.by_key[k] for k in keys if k in self.by_key}
        missing = [k for k in keys if k and k not in found]
        if missing and self.lookup is not None and self.history:
            found.update(self.lookup(missing))
        return found

    def record(
        self,
        job_id: str,
        outcomes: Iterable[ItemOutcome],
        on_durable: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        outcomes = list(outcomes)
        self.outcomes.extend(outcomes)
        if self.journal is not None:
            self.journal.add(outcomes)
        if on_durable is not None:
            on_durable(None)  # its piece or the block's part makes them durable; a lost block runs again

    def flush(self) -> None:
        """Nothing is queued here: the journal writes pieces, the block its part."""


class BlockRun:
    """What the engine's scheduling reads and reports to while one block runs (`engine.runner.RunState`)."""

    def __init__(self, caller: Caller, sink: BlockSink) -> None:
        self.caller, self._store = caller, sink
        self.job, self.spec, self.ctx = caller.plan.job, caller.spec, caller.ctx
        self.pipeline: ItemPipeline = caller.pipeline
        self.progress = RunProgress(job_id=self.job.id)

    @property
    def store(self) -> BlockSink:
        return self._store

    @property
    def stopping(self) -> bool:
        return self.caller.stop_error is not None

    def stop(self, exc: BudgetExceeded | ProviderUnavailable) -> None:
        if self.caller.stop_error is None:
            self.caller.stop_error = exc

    def count(self, outcome: ItemOutcome, requests: int = 0) -> None:
        self.progress.count(outcome, requests)

    def row_finished(self) -> None:
        self.progress.rows_done += 1


@dataclass(slots=True)
class Summary:
    """What the driver hears about one block."""

    part: str = ""
    first: int = -1
    last: int = -1
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUMMARY_COUNTS, 0))
    cost: float = 0.0
    stopped: str = ""
    message: str = ""
    review: list[ItemOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "first": self.first,
            "last": self.last,
            "cost": self.cost,
            "stopped": self.stopped,
            "message": self.message,
            "review": [_plain(o) for o in self.review],
            **self.counts,
        }


def _plain(outcome: ItemOutcome) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(outcome, f.name) for f in dataclasses.fields(ItemOutcome)}


class Caller:
    """One actor of the call stage (see the module docstring)."""

    def __init__(self, plan: Any) -> None:
        import ray

        started = time.perf_counter()
        self.plan: RunPlan = ray.get(plan) if isinstance(plan, ray.ObjectRef) else plan
        apply_env(self.plan.env, ENV_PREFIXES)
        _reserve_threads(ray)
        self.ctx = worker_context(self.plan.job, self.plan.partitions, self.plan.examples)
        limits = self.ctx.spec.limits.model_copy(update={"concurrency": self.plan.window})
        self.spec = self.ctx.spec.model_copy(update={"limits": limits})
        holder = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease = LeaseClient(self.plan.coordinator, holder)
        self.folder = OutputFolder(self.plan.folder)
        self.index = KeyIndex(self.plan.shards, self.plan.parts)
        self.stats = CallStats()
        self.cache = ResponseCache() if self.spec.cache else None
        self.pipeline = ItemPipeline(self.ctx, {}, prices=self.price, client_for=self.client)
        self.window = asyncio.Semaphore(self.plan.window)
        self.stop_error: BaseException | None = None
        self.active = 0
        self._prices: dict[str, Any] = {}
        log.info("worker %s ready in %.1f s", holder, time.perf_counter() - started)

    # -- clients ---------------------------------------------------------------------------------------
    def client(self, model: str) -> Provider:
        """The model behind this worker's wrappers: its lease, its share of the slots, the breaker, the
        retries and the cache (the lease is taken before any block runs, so the slots are known)."""
        from skuforge.providers import get_provider

        limits = self.spec.limits
        client: Provider = Leased(get_provider(model, self.ctx.settings), self.lease, self.price(model))
        client = Limited(client, concurrency=max(1, self.lease.slots), stats=self.stats)
        client = Breaker(client, stats=self.stats)
        client = Retrying(
            client, max_retries=limits.max_retries, timeout_s=limits.timeout_s, stats=self.stats
        )
        return Cached(client, self.cache, stats=self.stats) if self.cache is not None else client

    def price(self, model: str) -> Any:
        from skuforge.providers.prices import parse_price, price_for

        if model not in self._prices:
            spec = self.ctx.spec
            flag = parse_price(spec.price) if spec.price and model == spec.model else None
            self._prices[model] = price_for(model, self.ctx.settings.prices, price=flag)
        return self._prices[model]

    # -- blocks ----------------------------------------------------------------------------------------
    async def __call__(self, table: Any) -> Any:
        """Run one block; its summary goes to the driver through the coordinator (at once, not when Ray
        Data next hands this task's output on)."""
        import pyarrow as pa

        self.active += 1
        try:
            if self.stop_error is None:
                await self.lease.open()
            try:
                summary = await self._block(table)
            except Exception as exc:  # a defect, not a lost worker: the driver stops the run with it
                summary = Summary(stopped="error", message=f"{type(exc).__name__}: {exc}")
                summary.counts["taken"] = table.num_rows
                log.exception("a block failed in worker %s", self.lease.holder)
            if isinstance(self.stop_error, ProviderUnavailable) and summary.stopped:
                self.plan.coordinator.stop.remote("unavailable", summary.message)
            await self.plan.coordinator.block_done.remote(summary.as_dict())
            return pa.table({"part": [summary.part], "rows": [summary.counts["rows"]]})
        finally:
            self.active -= 1
            if self.active == 0:
                await self.lease.release()  # idle: slots and unspent money go back to the others

    async def _block(self, table: Any) -> Summary:
        summary = Summary()
        summary.counts["taken"] = table.num_rows
        indices = table.column("row_index").to_pylist()
        if not indices:
            return summary
        summary.first, summary.last = min(indices), max(indices)
        finished = table.column("finished").to_pylist()
        summary.counts["rows"] = sum(1 for f in finished if f)
        summary.counts["reused"] = sum(finished)
        live = [i for i, f in enumerate(finished) if not f]
        if live and self.stop_error is None:
            await self._run(table.take(live), summary)
        if self.stop_error is not None:
            stop = self.stop_error
            summary.stopped = "budget" if isinstance(stop, BudgetExceeded) else "unavailable"
            summary.message = getattr(stop, "message", str(stop))
        return summary

    async def _run(self, table: Any, summary: Summary) -> None:
        rows = rows_of(table)
        planned = [
            decode_planned(b, row, self.ctx)
            for b, row in zip(table.column("planned").to_pylist(), rows, strict=True)
        ]
        by_row, by_key = [], []
        for blob in table.column("prior").to_pylist():
            earlier_rows, earlier_keys = decode_prior(blob)
            by_row += earlier_rows
            by_key += earlier_keys
        name = part_name(self.plan.run, summary.first, summary.last)
        earlier, recovered = await asyncio.to_thread(self._earlier_attempt, name)
        numbers = [part.piece for part in earlier if part.piece is not None]
        journal = Journal(self.folder, name, self.plan.run, max(numbers, default=-1) + 1)
        history = bool(self.plan.shards or self.plan.store_url or recovered)
        sink = BlockSink(history, by_row + recovered, by_key, self._lookup, journal)
        run = BlockRun(self, sink)
        executor = LocalExecutor()
        executor.bind(run)
        prior = Prior.load(sink, run.job.id, rows, [p for ps in planned for p in ps], history=history)

        async def one(row: CatalogRow, first: list[Planned]) -> None:
            async with self.window:
                if run.stopping:
                    return

                async def resolve(item: Planned) -> ItemOutcome | None:
                    return await executor.resolve(item, prior)

                if await walk_row(run.pipeline, row, resolve, first):
                    run.row_finished()

        await asyncio.gather(*(one(row, first) for row, first in zip(rows, planned, strict=True)))
        written = await journal.close()
        outcomes = _latest([*recovered, *sink.outcomes])
        if outcomes:
            summary.part = await asyncio.to_thread(self.folder.write, name, outcomes, self.plan.run)
        pieces = [*written, *(part.path for part in earlier if part.piece is not None)]
        await asyncio.to_thread(self.folder.delete, *pieces)
        self._tally(summary, run, outcomes)

    def _earlier_attempt(self, name: str) -> tuple[list[Part], list[ItemRecord]]:
        """What an earlier attempt of this block (its worker died) wrote: its part or pieces, and their
        outcomes, the part's last so that it wins over its pieces as on reading (`ray_output.latest`).
        Nothing, at the cost of one look-up, for a block's first attempt."""
        earlier = sorted(self.folder.block(name), key=lambda part: part.piece is None)
        return earlier, [r for part in earlier for r in self.folder.records(part.path)]

    def _tally(self, summary: Summary, run: BlockRun, outcomes: list[ItemOutcome]) -> None:
        p, counts = run.progress, summary.counts
        counts["rows"] += p.rows_done
        counts["reused"] += p.reused
        for name in ("done", "flagged", "failed", "skipped", "requests", "cache_hits", "input_tokens"):
            counts[name] += getattr(p, name)
        counts["output_tokens"] += p.output_tokens
        counts["cached_tokens"] += p.cached_input_tokens
        summary.cost = p.cost
        summary.review = [o for o in outcomes if o.status in ("flagged", "failed") or o.review]

    def _lookup(self, keys: list[str]) -> dict[str, ItemRecord]:
        """Finished outcomes for keys the plan stage could not know (later steps of a chained recipe)."""
        found: dict[str, ItemRecord] = {}
        if self.index:
            for key, hit in zip(keys, self.index.lookup([(k, "", "", "") for k in keys]), strict=True):
                if hit is not None:
                    part = f"{self.folder.path}/{self.plan.parts[hit.part]}"
                    found[key] = self.folder.records(part)[hit.seq]
        missing = [k for k in keys if k not in found]
        if missing and self.plan.store_url:
            from skuforge.engine.ray_plan import _reachable_store

            store = _reachable_store(self.plan.store_url)
            if store is not None:
                found.update(store.finished_by_keys(self.plan.job.id, missing))
                store.close()
        return {k: r for k, r in found.items() if r.status in FINISHED}


def _latest(outcomes: list[ItemOutcome]) -> list[ItemOutcome]:
    """One outcome per item, the last one given (an earlier attempt's, then this attempt's)."""
    return list({(o.row_id, o.step, o.variant): o for o in outcomes}.values())


def _reserve_threads(ray: Any) -> None:
    """A local model in this actor gets the CPUs the actor reserved (unless SKUFORGE_THREADS says)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
    if cpus >= 1:
        os.environ.setdefault("SKUFORGE_THREADS", str(int(cpus)))
