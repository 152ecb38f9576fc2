"""Batch mode (`skuforge run ... --mode batch`): the same items through a provider's batch API, at half price.

The job, its items, keys, pipeline, checks and export are those of every run; only the way requests travel
differs. A run is a few rounds. Each round waits for the batches in flight, then streams the catalog once: it
records the answers that came back (parse and checks by the same `ItemPipeline`), and puts every item that is
still unfinished (new, failed or expired) into batch files, split at `max_lines` / `max_bytes`. A later step
of a recipe goes out in the round after the step it reads from came back. Identical requests (two rows with
the same product data) go out as one line, so every line's `custom_id` is unique, as the providers require.

Money: each line reserves its estimated cost at the batch price before it is queued, and a line that would
take the job past `--max-cost` is not sent. The reservation of a submitted batch is kept in the store with
the batch, so a run killed while batches are in flight counts them on the next run, and pays for no line
twice: batch ids and the lines of each batch are stored the moment the batch is created, and the next run of
the same job collects them instead of sending them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, select, update

from skuforge.calls.budget import estimate_cost
from skuforge.engine.batch_api import BatchAPI, LineResult, batch_api_for
from skuforge.engine.local import chunked
from skuforge.engine.pipeline import Planned, Spend, walk_row
from skuforge.engine.prior import Prior
from skuforge.errors import BudgetExceeded, ProviderUnavailable
from skuforge.providers.base import Result, Usage
from skuforge.store import ItemOutcome

if TYPE_CHECKING:
    from skuforge.engine.runner import Runner

log = logging.getLogger("skuforge.engine.batch")
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024
CHUNK_ROWS = 256

batch_metadata = MetaData()
provider_batches = Table(
    "provider_batches",
    batch_metadata,
    Column("batch_id", String(128), primary_key=True),
    Column("job_id", String(40), nullable=False, index=True),
    Column("model", Text, nullable=False),
    Column("state", String(16), nullable=False),  # submitted | recorded | cancelled
    Column("lines", Integer, nullable=False),
    Column("items", Text, nullable=False),  # JSON {custom_id: item key}
    Column("reserved", Float, nullable=False, default=0.0),  # estimated cost held for the batch's lines
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def custom_id(key: str) -> str:
    """A line's id: unique per item key (identical requests share a line), <= 64 chars of [A-Za-z0-9_-]."""
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:48]


@dataclass(slots=True)
class Flight:
    """A batch in flight: its id, model, the item key of each line and the cost reserved for it."""

    batch_id: str
    model: str
    keys: dict[str, str]
    reserved: float = 0.0


@dataclass
class _File:
    """Lines waiting to be sent as one batch for one model."""

    lines: list[bytes] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    size: int = 0
    reserved: float = 0.0


class BatchExecutor:
    """Runs a job's items through provider batch APIs; resumable while batches are in flight."""

    def __init__(
        self,
        *,
        poll_s: float | None = None,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BYTES,
        max_rounds: int = 3,
    ) -> None:
        env_poll = float(os.environ.get("SKUFORGE_BATCH_POLL_S") or 30.0)
        self.poll_s = poll_s if poll_s is not None else env_poll
        self.max_lines, self.max_bytes, self.max_rounds = max_lines, max_bytes, max_rounds
        self.batches_submitted = 0
        self._apis: dict[str, BatchAPI] = {}
        self._tries: dict[str, int] = {}  # item key -> lines sent for it by this process
        self._files: dict[str, _File] = {}
        self._queued: set[str] = set()

    # -- the run ---------------------------------------------------------------------------------------
    async def execute(self, run: Runner) -> None:
        self.run = run
        run.budget.durable_holds = False  # a batch's reservation is stored with the batch instead
        batch_metadata.create_all(run.store.engine)
        for model in run.ctx.models():
            self._api(model)
        try:
            await self._rounds()
        finally:
            for api in self._apis.values():
                await api.aclose()
            counts = run.store.counts(run.job.id)  # a line that failed, then succeeded, counts once
            for name in ("done", "flagged", "failed", "skipped"):
                setattr(run.progress, name, getattr(counts, name))

    async def _rounds(self) -> None:
        flights = self.in_flight()
        if flights:
            log.info("resuming %d batch(es) in flight for job %s", len(flights), self.run.job.id)
        for flight in flights:
            self.run.budget.reserved += flight.reserved
        while True:
            answers = await self._collect(flights) if flights else {}
            for flight in flights:
                self.run.budget.settle(flight.reserved, 0.0)  # each line settles its own cost
            sent = await self._pass(answers)
            self.run.store.flush()
            self._mark([f.batch_id for f in flights], "recorded")
            flights = sent
            if not flights:
                return

    # -- persisted flights -----------------------------------------------------------------------------
    def in_flight(self) -> list[Flight]:
        """Batches of this job created but not yet recorded (by this process or one that died)."""
        query = (
            select(provider_batches)
            .where(provider_batches.c.job_id == self.run.job.id, provider_batches.c.state == "submitted")
            .order_by(provider_batches.c.created_at)
        )
        with self.run.store.engine.connect() as conn:
            return [
                Flight(r.batch_id, r.model, orjson.loads(r.items), r.reserved or 0.0)
                for r in conn.execute(query)
            ]

    def _persist(self, batch_id: str, model: str, file: _File) -> None:
        now = time.time()
        with self.run.store.engine.begin() as conn:
            conn.execute(
                provider_batches.insert().values(
                    batch_id=batch_id,
                    job_id=self.run.job.id,
                    model=model,
                    state="submitted",
                    lines=len(file.lines),
                    items=orjson.dumps(file.keys).decode(),
                    reserved=file.reserved,
                    created_at=now,
                    updated_at=now,
                )
            )

    def _mark(self, batch_ids: list[str], state: str) -> None:
        if not batch_ids:
            return
        with self.run.store.engine.begin() as conn:
            conn.execute(
                update(provider_batches)
                .where(provider_batches.c.batch_id.in_(batch_ids))
                .values(state=state, updated_at=time.time())
            )

    def _api(self, model: str) -> BatchAPI:
        if model not in self._apis:
            self._apis[model] = batch_api_for(self.run.pipeline.client(model))
        return self._apis[model]

    # -- waiting and collecting ------------------------------------------------------------------------
    async def _collect(self, flights: list[Flight]) -> dict[str, tuple[LineResult, str]]:
        """Poll until every flight has ended, then read all their results, by item key."""
        pending = {f.batch_id: f for f in flights}
        while True:
            for batch_id, flight in list(pending.items()):
                state = await self._api(flight.model).poll(batch_id)
                if state != "running":
                    pending.pop(batch_id)
                    if state == "failed":
                        log.warning("batch %s failed as a whole; its lines will be sent again", batch_id)
            if not pending:
                break
            self.run.progress.message = f"waiting for {len(pending)} batch(es)"
            self.run.emit()
            await asyncio.sleep(self.poll_s)
        answers: dict[str, tuple[LineResult, str]] = {}
        for flight in flights:
            for result in await self._api(flight.model).results(flight.batch_id, list(flight.keys)):
                key = flight.keys.get(result.custom_id)
                if key is not None:
                    answers[key] = (result, flight.batch_id)
        return answers

    # -- one pass over the catalog ---------------------------------------------------------------------
    async def _pass(self, answers: dict[str, tuple[LineResult, str]]) -> list[Flight]:
        run = self.run
        run.progress.rows_done = run.progress.reused = 0  # each pass walks the whole selection again
        self._queued = set()
        sent: list[Flight] = []
        history = run.store.has_items(run.job.id)
        first_step = run.ctx.steps[0]
        for rows in chunked(run.ctx.rows(), CHUNK_ROWS):
            first = [
                [run.pipeline.plan(row, first_step, v, {}) for v in run.ctx.variants(first_step)]
                for row in rows
            ]
            prior = Prior.load(run.store, run.job.id, rows, [p for ps in first for p in ps], history=history)
            for row, planned in zip(rows, first, strict=True):
                resolve = self._resolver(prior, answers, sent)
                if await walk_row(run.pipeline, row, resolve, planned):
                    run.progress.rows_done += 1
            run.emit()
        for model in list(self._files):
            sent += await self._send(model)
        return sent

    def _resolver(self, prior: Prior, answers: dict[str, tuple[LineResult, str]], sent: list[Flight]) -> Any:
        async def resolve(planned: Planned) -> ItemOutcome | None:
            return await self._resolve(planned, prior, answers, sent)

        return resolve

    async def _resolve(
        self,
        planned: Planned,
        prior: Prior,
        answers: dict[str, tuple[LineResult, str]],
        sent: list[Flight],
    ) -> ItemOutcome | None:
        """Decided, found in earlier work, answered by a line that came back, or queued (None)."""
        run = self.run
        if planned.decided is not None:
            if not prior.unchanged(planned.decided):
                self._record(planned.decided)
            return planned.decided
        found = prior.find(planned)
        if found is not None:
            if not found.same_row:
                self._record(run.pipeline.reused(planned, found.record))
            run.progress.reused += 1
            return found.record
        if planned.key in answers:
            outcome = await self._answered(planned, *answers[planned.key])
            if outcome is not None:
                return outcome
        cached = await self._cached(planned)
        if cached is not None:
            return cached
        if not run.stopping:
            sent += await self._queue(planned)
        return None

    async def _answered(self, planned: Planned, result: LineResult, batch_id: str) -> ItemOutcome | None:
        """Record one line's result as an online run would. A failed line that is worth sending again
        returns None (the item is queued again); its last failure is the outcome."""
        run, key = self.run, planned.key
        tries = self._tries.get(key, 1)
        meta = {"batch": batch_id}
        if result.error is not None or result.text is None:
            outcome = ItemOutcome(
                **planned.base(),
                key=key,
                status="failed",
                error=f"batch line failed: {result.error}",
                attempts=tries,
                meta=meta,
            )
            self._record(outcome, requests=1)
            again = result.retry and tries < self.max_rounds
            return None if again else outcome
        usage = result.usage or Usage()
        spend = Spend(attempts=tries - 1, cached=False)
        cost = run.pipeline.cost(planned.model, usage, batch=True)
        spend.add(Result(text=result.text, usage=usage), cost)
        run.budget.settle(0.0, cost)
        text = self._api(planned.model).text(result, planned.request)  # type: ignore[arg-type]
        if run.response_cache is not None and planned.request is not None:  # a later run or job reuses it
            run.response_cache.put(planned.request.key(planned.model), Result(text=text, usage=usage))
        outcome = await run.pipeline.complete(planned, text, spend, meta)
        self._record(outcome, requests=1)
        return outcome

    async def _cached(self, planned: Planned) -> ItemOutcome | None:
        """The answer from the response cache (a trial's products, another job's), free and at once."""
        cache, request = self.run.response_cache, planned.request
        if cache is None or request is None:
            return None
        hit = cache.get(request.key(planned.model))
        if hit is None:
            return None
        spend = Spend()
        spend.add(hit.model_copy(update={"cached": True}), 0.0)
        outcome = await self.run.pipeline.complete(planned, hit.text, spend, {"cached": True})
        self._record(outcome)
        return outcome

    def _record(self, outcome: ItemOutcome, requests: int = 0) -> None:
        self.run.count(outcome, requests)
        self.run.store.record(self.run.job.id, [outcome])

    # -- writing and sending files ---------------------------------------------------------------------
    async def _queue(self, planned: Planned) -> list[Flight]:
        key, model = planned.key, planned.model
        if key in self._queued or self._tries.get(key, 0) >= self.max_rounds:
            return []
        api = self._api(model)
        request = planned.request
        assert request is not None
        estimate = estimate_cost(api.provider, request, self.run.pipeline.price(model), batch=True)
        if not self.run.budget.reserve(estimate):
            self.run.stop(self.run.budget.stop_error())
            return []
        cid = custom_id(key)
        line = api.line(cid, request)
        sent: list[Flight] = []
        file = self._files.setdefault(model, _File())
        if file.lines and (len(file.lines) >= self.max_lines or file.size + len(line) + 1 > self.max_bytes):
            sent += await self._send(model)
            file = self._files.setdefault(model, _File())
        file.lines.append(line)
        file.keys[cid] = key
        file.size += len(line) + 1
        file.reserved += estimate
        self._queued.add(key)
        self._tries[key] = self._tries.get(key, 0) + 1
        return sent

    async def _send(self, model: str) -> list[Flight]:
        file = self._files.pop(model, None)
        if file is None or not file.lines:
            return []
        try:
            batch_id = await self._api(model).submit(file.lines)
        except (ProviderUnavailable, BudgetExceeded) as exc:
            self.run.budget.settle(file.reserved, 0.0)
            self.run.stop(exc)
            return []
        self._persist(batch_id, model, file)
        self.batches_submitted += 1
        log.info("submitted batch %s: %d lines, %d bytes", batch_id, len(file.lines), file.size)
        return [Flight(batch_id, model, file.keys, file.reserved)]

    async def cancel_all(self, run: Runner) -> int:
        """Cancel this job's batches in flight (lines already answered are kept on the next run)."""
        self.run = run
        flights = self.in_flight()
        for flight in flights:
            await self._api(flight.model).cancel(flight.batch_id)
        return len(flights)
