"""The local executor: the job's items on this process's event loop, as many in flight as the limits allow.

Rows are streamed in chunks; for each chunk, earlier work is looked up once (`engine.prior`), so a resumed
or repeated run sends no request for an item whose rendered request is unchanged. A row's steps run in order
(`pipeline.walk_row`); rows run concurrently within a bounded window, so memory stays flat however long the
catalog is. Identical requests in flight at the same time are sent once.

Durability before acknowledgement: a request holds its slot (one of `limits.concurrency`) until its outcome
is committed to the store, so a kill -9 loses only requests still in flight, never an answer the process
has read. Outcomes of one loop tick are committed together by the store's writer (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, TypeVar

from skuforge.catalog import CatalogRow
from skuforge.engine.pipeline import Planned, Spend, walk_row
from skuforge.engine.prior import Prior
from skuforge.errors import BudgetExceeded, ProviderUnavailable
from skuforge.store import ItemOutcome, ItemRecord

if TYPE_CHECKING:
    from skuforge.engine.runner import RunState

CHUNK_ROWS = 256
T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def relocated(record: ItemRecord, row_index: int) -> ItemOutcome:
    """A stored item again, at the row's new position (a re-sorted catalog); nothing else changes."""
    names = [f.name for f in fields(ItemOutcome)]
    values = {name: getattr(record, name) for name in names}
    return ItemOutcome(**{**values, "row_index": row_index})


async def durable(run: RunState, outcome: ItemOutcome, requests: int = 0) -> None:
    """Record an outcome and wait until the store has committed it."""
    run.count(outcome, requests)
    loop = asyncio.get_running_loop()
    committed: asyncio.Future[None] = loop.create_future()
    settler = _Settler.of(loop)
    run.store.record(run.job.id, [outcome], on_durable=lambda error: settler.settle(committed, error))
    await committed


class _Settler:
    """Hands the futures the store's writer thread settles to their event loop, one wake-up per group.

    The writer commits outcomes in groups and reports each one; a `call_soon_threadsafe` per outcome costs
    a write to the loop's wake-up pipe and a turn of the loop for each. Here the first outcome of a group
    schedules one call, and the rest join it."""

    _loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Settler] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.lock = loop, threading.Lock()
        self.ready: list[tuple[asyncio.Future[None], BaseException | None]] = []

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Settler:
        settler = cls._loops.get(loop)
        if settler is None:
            settler = cls._loops[loop] = cls(loop)
        return settler

    def settle(self, future: asyncio.Future[None], error: BaseException | None) -> None:
        """Called in the writer thread."""
        with self.lock:
            first = not self.ready
            self.ready.append((future, error))
        if first:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self.lock:
            ready, self.ready = self.ready, []
        for future, error in ready:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(None)


class LocalExecutor:
    """Schedules a run's items on the event loop (see the module docstring)."""

    def bind(self, run: RunState) -> None:
        """Get ready to resolve `run`'s items one by one (`resolve`), for an executor that plans and streams
        the rows itself (the Ray executor's workers); `execute` starts with it."""
        self.run = run
        self.slots = asyncio.Semaphore(run.spec.limits.concurrency)
        self.inflight: dict[str, asyncio.Future[ItemOutcome | None]] = {}

    async def execute(self, run: RunState, rows: Iterable[CatalogRow] | None = None) -> None:
        """Run the items of `rows` (default: the job's selected rows) to their outcomes."""
        self.bind(run)
        history = run.store.has_items(run.job.id)  # a first run skips every lookup
        window = asyncio.Semaphore(max(64, run.spec.limits.concurrency * 4))
        tasks: set[asyncio.Task[None]] = set()
        first_step = run.ctx.steps[0]
        for chunk in chunked(run.ctx.rows() if rows is None else rows, CHUNK_ROWS):
            if run.stopping:
                break
            first = [
                [run.pipeline.plan(row, first_step, v, {}) for v in run.ctx.variants(first_step)]
                for row in chunk
            ]
            prior = Prior.load(run.store, run.job.id, chunk, [p for ps in first for p in ps], history=history)
            for row, planned in zip(chunk, first, strict=True):
                if run.stopping:
                    break
                await window.acquire()
                task = asyncio.create_task(self._row(row, planned, prior))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t: window.release())
        run.progress.all_started = True  # the requests still to come are those of rows in flight
        if tasks:
            await asyncio.gather(*tasks)

    async def _row(self, row: CatalogRow, first: list[Planned], prior: Prior) -> None:
        async def resolve(planned: Planned) -> ItemOutcome | None:
            return await self.resolve(planned, prior)

        if await walk_row(self.run.pipeline, row, resolve, first):
            self.run.row_finished()

    async def resolve(self, planned: Planned, prior: Prior) -> ItemOutcome | None:
        """The item's outcome: decided, found in earlier work, shared with an identical request in
        flight, or answered now. None when the run is stopping before it could be sent."""
        run = self.run
        if planned.decided is not None:
            if not prior.unchanged(planned.decided):
                await durable(run, planned.decided)
            return planned.decided
        found = prior.find(planned)
        if found is not None:
            return await self._reuse(planned, found.record, same_row=found.same_row)
        if planned.key in self.inflight:
            twin = await self.inflight[planned.key]
            return None if twin is None else await self._reuse(planned, twin, same_row=False)
        return await self._send(planned)

    async def _reuse(self, planned: Planned, earlier: ItemOutcome, *, same_row: bool) -> ItemOutcome:
        run = self.run
        run.progress.reused += 1
        if same_row:
            assert isinstance(earlier, ItemRecord)
            if earlier.row_index != planned.row.index:
                run.store.record(run.job.id, [relocated(earlier, planned.row.index)])
            return earlier
        outcome = run.pipeline.reused(planned, _as_record(earlier))
        run.store.record(run.job.id, [outcome])
        return outcome

    async def _send(self, planned: Planned) -> ItemOutcome | None:
        run = self.run
        shared: asyncio.Future[ItemOutcome | None] = asyncio.get_running_loop().create_future()
        self.inflight[planned.key] = shared
        outcome: ItemOutcome | None = None
        try:
            async with self.slots:  # held until the outcome is durable
                if run.stopping:
                    return None
                spend = Spend()
                try:
                    outcome = await run.pipeline.run(planned, spend)
                except (BudgetExceeded, ProviderUnavailable) as exc:
                    run.stop(exc)
                    return None
                await durable(run, outcome, requests=spend.requests)
            return outcome
        finally:
            self.inflight.pop(planned.key, None)
            shared.set_result(outcome)


def _as_record(outcome: ItemOutcome) -> ItemRecord:
    if isinstance(outcome, ItemRecord):
        return outcome
    names = [f.name for f in fields(ItemOutcome)]
    return ItemRecord(**{name: getattr(outcome, name) for name in names})
