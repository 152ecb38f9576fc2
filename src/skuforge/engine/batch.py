"""Batch mode (`skuforge run ... --mode batch`): the same job through a provider's batch API, at half price.

The job, its items, keys, checks and export are the local runner's; only the way requests travel differs.
A run is a few rounds. Each round waits for the batches in flight, then streams the catalog once: it
records the answers that came back (parse, checks, store — exactly as online), and puts every item that
is still unfinished (new, failed or expired) into batch files, split at `max_lines` / `max_bytes`. A later
step of a recipe goes out in the round after the step it reads from came back.

Batch ids and the items in each batch are kept in the store (table `provider_batches`) the moment a batch
is created, so a process that is killed while batches are in flight picks them up on the next run of the
same job instead of paying for them twice. Results of one round are held in memory until recorded
(about 1 KB a line); for tens of millions of rows use smaller files or the Ray executor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, select, update

from skuforge.catalog import CatalogRow
from skuforge.engine.batch_api import BatchAPI, LineResult, batch_api_for
from skuforge.engine.progress import RunProgress
from skuforge.engine.runner import CHUNK_ROWS, Runner, StepOutcome, item_key, variant_label
from skuforge.errors import OutputError, RecipeError
from skuforge.providers.base import Request, Usage
from skuforge.store import FINISHED, ItemOutcome, ItemRecord

log = logging.getLogger("skuforge.engine.batch")
MAX_LINES = 50_000
MAX_BYTES = 200 * 1024 * 1024

batch_metadata = MetaData()
provider_batches = Table(
    "provider_batches",
    batch_metadata,
    Column("batch_id", String(128), primary_key=True),
    Column("job_id", String(40), nullable=False, index=True),
    Column("model", Text, nullable=False),
    Column("state", String(16), nullable=False),  # submitted | recorded | cancelled
    Column("lines", Integer, nullable=False),
    Column("items", Text, nullable=False),  # JSON {custom_id: [row_index, row_id, step, variant]}
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


@dataclass(slots=True)
class Flight:
    """A batch in flight: its id, model and which item each line is."""

    batch_id: str
    model: str
    items: dict[str, list[Any]]


@dataclass
class _File:
    """Lines waiting to be sent as one batch for one model."""

    lines: list[bytes] = field(default_factory=list)
    items: dict[str, list[Any]] = field(default_factory=dict)
    size: int = 0


class BatchRunner(Runner):
    """Runs a job through provider batch APIs; resumable while batches are in flight."""

    def __init__(
        self,
        store: Any,
        job: Any,
        *,
        poll_s: float | None = None,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BYTES,
        max_rounds: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(store, job, **kwargs)
        poll_s = poll_s if poll_s is not None else float(os.environ.get("SKUFORGE_BATCH_POLL_S") or 30.0)
        self.poll_s, self.max_lines, self.max_bytes, self.max_rounds = (
            poll_s,
            max_lines,
            max_bytes,
            max_rounds,
        )
        self.batches_submitted = 0
        self._apis: dict[str, BatchAPI] = {}
        self._tries: dict[str, int] = {}  # item key -> lines sent for it by this process
        self._files: dict[str, _File] = {}
        batch_metadata.create_all(store.engine)

    # -- the run ---------------------------------------------------------------------------------------
    async def _execute(self) -> None:
        for step in self.recipe.steps:
            model = step.model or self.spec.model
            if model not in self._apis:
                self._apis[model] = batch_api_for(self._clients[model])
        await self._rounds()

    async def _close(self) -> None:
        for api in self._apis.values():
            await api.aclose()
        if self._cache is not None:
            self._cache.close()

    def _conclude(self) -> RunProgress:
        counts = self.store.counts(self.job.id)  # a line that failed, then succeeded, counts once
        for name in ("done", "flagged", "failed", "skipped"):
            setattr(self.progress, name, getattr(counts, name))
        return super()._conclude()

    async def _rounds(self) -> None:
        flights = self.in_flight()
        if flights:
            log.info("resuming %d batch(es) in flight for job %s", len(flights), self.job.id)
        while True:
            results = await self._collect(flights) if flights else {}
            self.progress.rows_done = 0
            sent = await self._pass(results)
            self.store.flush()
            self._mark([f.batch_id for f in flights], "recorded")
            flights = sent
            if not flights:
                return

    # -- persisted flights -----------------------------------------------------------------------------
    def in_flight(self) -> list[Flight]:
        """Batches of this job created but not yet recorded (by this process or one that died)."""
        query = (
            select(provider_batches)
            .where(provider_batches.c.job_id == self.job.id, provider_batches.c.state == "submitted")
            .order_by(provider_batches.c.created_at)
        )
        with self.store.engine.connect() as conn:
            return [Flight(r.batch_id, r.model, orjson.loads(r.items)) for r in conn.execute(query)]

    def _persist(self, batch_id: str, model: str, file: _File) -> None:
        now = time.time()
        with self.store.engine.begin() as conn:
            conn.execute(
                provider_batches.insert().values(
                    batch_id=batch_id,
                    job_id=self.job.id,
                    model=model,
                    state="submitted",
                    lines=len(file.lines),
                    items=orjson.dumps(file.items).decode(),
                    created_at=now,
                    updated_at=now,
                )
            )

    def _mark(self, batch_ids: list[str], state: str) -> None:
        if not batch_ids:
            return
        with self.store.engine.begin() as conn:
            conn.execute(
                update(provider_batches)
                .where(provider_batches.c.batch_id.in_(batch_ids))
                .values(state=state, updated_at=time.time())
            )

    async def cancel_all(self) -> int:
        """Cancel this job's batches in flight (lines already answered are kept on the next run)."""
        flights = self.in_flight()
        for flight in flights:
            await self._api(flight.model).cancel(flight.batch_id)
        return len(flights)

    def _api(self, model: str) -> BatchAPI:
        if model not in self._apis:
            self._apis[model] = batch_api_for(self._make_client(model))
        return self._apis[model]

    # -- waiting and collecting ------------------------------------------------------------------------
    async def _collect(self, flights: list[Flight]) -> dict[int, list[tuple[list[Any], LineResult, str]]]:
        """Poll until every flight has ended, then read all their results, grouped by row index."""
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
            self.progress.message = f"waiting for {len(pending)} batch(es)"
            self._emit()
            await asyncio.sleep(self.poll_s)
        by_row: dict[int, list[tuple[list[Any], LineResult, str]]] = {}
        for flight in flights:
            for result in await self._api(flight.model).results(flight.batch_id, list(flight.items)):
                where = flight.items.get(result.custom_id)
                if where is not None:
                    by_row.setdefault(int(where[0]), []).append((where, result, flight.batch_id))
        return by_row

    # -- one pass over the catalog ---------------------------------------------------------------------
    async def _pass(self, results: dict[int, list[tuple[list[Any], LineResult, str]]]) -> list[Flight]:
        sent: list[Flight] = []
        for chunk in self._chunks():
            prior = self._prior(chunk)
            for row in chunk:
                answers = {(w[2], w[3]): (r, b) for w, r, b in results.pop(row.index, [])}
                sent += await self._row_lines(row, prior, answers)
                self.progress.rows_done += 1
            self._emit()
        for model in list(self._files):
            sent += await self._send(model)
        return sent

    def _chunks(self) -> Iterator[list[CatalogRow]]:
        chunk: list[CatalogRow] = []
        for row in self.rows():
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    async def _row_lines(
        self,
        row: CatalogRow,
        prior: dict[tuple[str, str, str], ItemRecord],
        answers: dict[tuple[str, str], tuple[LineResult, str]],
    ) -> list[Flight]:
        """Record this row's answers, then queue the lines its unfinished items need; returns sent batches."""
        outputs: dict[str, Any] = {}
        sent: list[Flight] = []
        for step in self.recipe.steps:
            model = step.model or self.spec.model
            variants = step.variants(self.params)
            values: list[Any] = []
            complete = True
            for variant in variants:
                label = variant_label(variant)
                base: dict[str, Any] = {
                    "row_id": row.row_id,
                    "row_index": row.index,
                    "step": step.name,
                    "variant": label,
                }
                try:
                    request = step.build_request(row.data, outputs, variant, self.params, row_label=row.line)
                except RecipeError as exc:
                    self._finish(ItemOutcome(**base, key="", status="failed", error=exc.message))
                    return sent
                if request is None:
                    earlier = prior.get((row.row_id, step.name, label))
                    if earlier is None or earlier.status != "skipped":
                        self._finish(ItemOutcome(**base, key="", status="skipped"))
                    values.append(None)
                    continue
                key = item_key(request, model, self.recipe, step)
                outcome = self._known(prior.get((row.row_id, step.name, label)), key)
                if outcome is None and (step.name, label) in answers:
                    result, batch_id = answers[(step.name, label)]
                    outcome = self._answered(row, step, variant, base, key, request, model, result, batch_id)
                if outcome is not None and outcome.status in FINISHED:
                    values.append(outcome.output)
                    continue
                complete = False
                sent += await self._queue(model, key, request, base)
            if not complete:
                return sent  # a later step reads this one's outputs: it goes out in a later round
            outputs[step.name] = (
                values[0]
                if variants == [{}]
                else {variant_label(v): out for v, out in zip(variants, values, strict=True)}
            )
        return sent

    def _answered(
        self,
        row: CatalogRow,
        step: Any,
        variant: dict[str, Any],
        base: dict[str, Any],
        key: str,
        request: Request,
        model: str,
        result: LineResult,
        batch_id: str,
    ) -> StepOutcome:
        """Record one line's result as the online runner would; a failed line may go out again."""
        tries = self._tries.get(key, 1)
        meta = {"batch": batch_id}
        if result.error is not None or result.text is None:
            if not result.retry:
                self._tries[key] = self.max_rounds
            return self._finish(
                ItemOutcome(
                    **base,
                    key=key,
                    status="failed",
                    error=f"batch line failed: {result.error}",
                    attempts=tries,
                    meta=meta,
                ),
                requests=1,
            )
        usage = result.usage or Usage()
        cost = self._batch_cost(model, usage)
        try:
            output = step.parse(self._api(model).text(result, request))
        except OutputError as exc:
            self._tries[key] = self.max_rounds  # the same request would get the same answer
            return self._finish(
                ItemOutcome(
                    **base,
                    key=key,
                    status="failed",
                    error=f"OutputError: {exc.message}",
                    attempts=tries,
                    cost=cost,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    meta=meta,
                ),
                requests=1,
            )
        return self._succeeded(
            row,
            step,
            variant,
            base,
            key,
            output,
            usage,
            cost,
            attempts=tries,
            cached=False,
            requests=1,
            meta=meta,
        )

    def _batch_cost(self, model: str, usage: Usage) -> float:
        price = self._price(model)
        return price.cost(usage, batch=True) if price is not None else 0.0

    # -- writing and sending files ---------------------------------------------------------------------
    async def _queue(self, model: str, key: str, request: Request, base: dict[str, Any]) -> list[Flight]:
        if self._tries.get(key, 0) >= self.max_rounds:
            return []
        api = self._api(model)
        cid = f"k{key[:48]}"
        line = api.line(cid, request)
        sent: list[Flight] = []
        file = self._files.setdefault(model, _File())
        if file.lines and (len(file.lines) >= self.max_lines or file.size + len(line) + 1 > self.max_bytes):
            sent += await self._send(model)
            file = self._files.setdefault(model, _File())
        file.lines.append(line)
        file.size += len(line) + 1
        file.items[cid] = [base["row_index"], base["row_id"], base["step"], base["variant"]]
        self._tries[key] = self._tries.get(key, 0) + 1
        return sent

    async def _send(self, model: str) -> list[Flight]:
        file = self._files.pop(model, None)
        if file is None or not file.lines:
            return []
        batch_id = await self._api(model).submit(file.lines)
        self._persist(batch_id, model, file)
        self.batches_submitted += 1
        log.info("submitted batch %s: %d lines, %d bytes", batch_id, len(file.lines), file.size)
        return [Flight(batch_id, model, file.items)]
