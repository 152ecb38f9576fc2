"""The local runner: stream the selected rows, render each step's request, call the model, check, store.

Rows are streamed in chunks; for each chunk the store is asked once which items earlier runs of the job
already finished, so a resumed or repeated run sends no request for an item whose rendered request is
unchanged. A row's steps run in order (a later step sees earlier outputs); rows run concurrently within a
bounded window, so memory stays flat however long the catalog is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skuforge.calls import CallStats, ResponseCache, build_client
from skuforge.catalog import CatalogRow, open_catalog, select
from skuforge.checks.base import CheckItem, build, verdict
from skuforge.config import Settings, load_settings
from skuforge.engine.budget import Budget
from skuforge.engine.packing import Packer
from skuforge.engine.progress import ProgressCallback, RunProgress
from skuforge.engine.projection import live_projection
from skuforge.engine.spec import JobSpec
from skuforge.errors import (
    OutputError,
    PermanentError,
    ProviderError,
    RecipeError,
    SkuforgeError,
)
from skuforge.providers.base import Provider, Request, Usage
from skuforge.recipes import Recipe, Step, load_recipe
from skuforge.store import FINISHED, ItemOutcome, ItemRecord, Job, Store

log = logging.getLogger("skuforge.engine")
CHUNK_ROWS = 256
ProviderFactory = Callable[[str], Provider]


def variant_label(variant: dict[str, Any]) -> str:
    """A stable short name for a variant: '' for none, 'de' for {'locale': 'de'}, 'a=1,b=2' otherwise."""
    if not variant:
        return ""
    if len(variant) == 1:
        return str(next(iter(variant.values())))
    return ",".join(f"{k}={variant[k]}" for k in sorted(variant))


ID_COLUMNS = (
    "sku",
    "sku_id",
    "id",
    "product_id",
    "item_id",
    "asin",
    "spu",
    "spu_id",
    "商品id",
    "商品编号",
    "货号",
)


def detect_id_column(columns: list[str]) -> str | None:
    """A column that names products (sku, id, asin, 货号 ...), so ids survive re-sorted or grown catalogs."""
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[name] for name in ID_COLUMNS if name in lowered), None)


def item_key(request: Request, model: str, recipe: Recipe, step: Step) -> str:
    """Hash of what the model will see, plus the recipe version and step: the resume and incremental key."""
    digest = hashlib.sha256(request.canonical(model))
    digest.update(f"\0{recipe.name}\0{recipe.version}\0{step.name}".encode())
    return digest.hexdigest()


@dataclass(slots=True)
class StepOutcome:
    output: Any
    status: str


class Runner:
    """Runs one job to the end, to a budget stop, or to a cancellation."""

    def __init__(
        self,
        store: Store,
        job: Job,
        *,
        settings: Settings | None = None,
        on_progress: ProgressCallback | None = None,
        provider_factory: ProviderFactory | None = None,
    ) -> None:
        self.store, self.job = store, job
        self.spec = JobSpec.from_job(job)
        self.settings = settings or load_settings()
        self.on_progress = on_progress
        self.progress = RunProgress(job_id=job.id)
        self.budget = Budget(self.spec.max_cost)
        self._provider_factory = provider_factory
        self._clients: dict[str, Provider] = {}
        self._checks: dict[str, list[Any]] = {}
        self._prices: dict[str, Any] = {}
        self._fatal: BaseException | None = None
        self._cache: Any = None
        self.call_stats = CallStats()
        self.stopped_reason: str | None = None
        self._packers: dict[tuple[str, str], Packer] = {}
        self._sources: dict[tuple[str, str, str], list[dict[str, Any]]] = {}  # until the item is recorded
        self._items_per_row: int | None = None  # steps x variants: for the live projection
        self.latency_s_total, self.latency_count = 0.0, 0  # of requests sent (not cache hits): trial timing

    # -- set-up ----------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load catalog and recipe, check columns, build clients and checks; fails before any request."""
        self.prepare_for_export()
        for step in self.recipe.steps:
            model = step.model or self.spec.model
            if model not in self._clients:
                self._clients[model] = self._make_client(model)
            self._checks[step.name] = [build(spec) for spec in step.checks_for(self.params)]
        self.progress.rows_total = self._count_rows()

    def prepare_for_export(self) -> None:
        """Open the catalog and the recipe and check that the recipe's columns exist."""
        sel = self.spec.selection
        self.catalog = open_catalog(
            self.spec.catalog,
            sheet=sel.sheet,
            header_row=sel.header_row,
            id_column=sel.id_column,
            encoding=sel.encoding,
        )
        if sel.id_column is None and (found := detect_id_column(self.catalog.columns)):
            self.catalog = open_catalog(
                self.spec.catalog,
                sheet=sel.sheet,
                header_row=sel.header_row,
                id_column=found,
                encoding=sel.encoding,
            )
        dirs: list[Path | str] = [*self.settings.recipe_dirs, *self.spec.recipe_dirs]
        self.recipe = load_recipe(self.spec.recipe, dirs)
        self.params = self.recipe.resolve_params(self.spec.params)
        missing = sorted(self.recipe.required_columns(self.params) - set(self.catalog.columns))
        if missing:
            raise RecipeError(
                f"Recipe '{self.recipe.name}' needs column '{missing[0]}', which {self.catalog.path} "
                f"does not have (columns: {', '.join(self.catalog.columns)}).",
                f"Add a '{missing[0]}' column, or give it a default under 'defaults:' in the recipe.",
            )

    def _make_client(self, model: str) -> Provider:
        from skuforge.providers import get_provider

        provider = (
            self._provider_factory(model) if self._provider_factory else get_provider(model, self.settings)
        )
        if self._cache is None and self.spec.cache:
            self._cache = ResponseCache()
        return build_client(provider, self.spec.limits, cache=self._cache, stats=self.call_stats)

    def _count_rows(self) -> int | None:
        sel = self.spec.selection
        counter = getattr(self.catalog, "count", None)
        if sel.where or counter is None:
            return sel.sample or None
        try:
            total = counter()
        except SkuforgeError:
            return None
        for cap in (sel.limit, sel.sample):
            if cap is not None and total is not None:
                total = min(total, cap)
        return total

    def rows(self) -> Iterator[CatalogRow]:
        sel = self.spec.selection
        return select(self.catalog, where=sel.where, limit=sel.limit, sample=sel.sample, seed=sel.seed)

    # -- the run ---------------------------------------------------------------------------------------
    async def run(self) -> RunProgress:
        self.prepare()
        self.store.set_state(self.job.id, "running")
        try:
            await self._execute()
        except BaseException as exc:
            self.store.flush()
            state = "paused" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) else "failed"
            self.store.set_state(self.job.id, state, error=str(exc) if state == "failed" else None)
            raise
        finally:
            await self._close()
        self.store.flush()
        return self._conclude()

    async def _execute(self) -> None:
        """The work of the run; other executors (provider batches) override this."""
        await self._run_rows()

    async def _close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        if self._cache is not None:
            self._cache.close()

    def _conclude(self) -> RunProgress:
        """The job's final state: failed on a fatal error, paused by the budget, else done."""
        if self._fatal is not None:
            self.store.set_state(self.job.id, "failed", error=str(self._fatal))
            raise self._fatal
        if self.budget.exhausted:
            self.stopped_reason = "budget"
            self.progress.state = "paused"
            self.store.set_state(self.job.id, "paused", error="stopped by the cost limit")
        else:
            self.progress.state = "done"
            self.store.set_state(self.job.id, "done")
        self._emit()
        return self.progress

    async def _run_rows(self) -> None:
        window = asyncio.Semaphore(max(64, self.spec.limits.concurrency * 4))
        tasks: set[asyncio.Task[None]] = set()
        chunk: list[CatalogRow] = []

        async def launch(rows: list[CatalogRow]) -> None:
            prior = self._prior(rows)
            for row in rows:
                if self._stopping:
                    return
                await window.acquire()
                task = asyncio.create_task(self._row(row, prior))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _t: window.release())

        for row in self.rows():
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                await launch(chunk)
                chunk = []
            if self._stopping:
                break
        if chunk and not self._stopping:
            await launch(chunk)
        if tasks:
            await asyncio.gather(*tasks)

    @property
    def _stopping(self) -> bool:
        return self.budget.exhausted or self._fatal is not None

    def _prior(self, rows: list[CatalogRow]) -> dict[tuple[str, str, str], ItemRecord]:
        first = min(r.index for r in rows)
        last = max(r.index for r in rows)
        return {(i.row_id, i.step, i.variant): i for i in self.store.items_in_range(self.job.id, first, last)}

    async def _row(self, row: CatalogRow, prior: dict[tuple[str, str, str], ItemRecord]) -> None:
        outputs: dict[str, Any] = {}
        blocked: str | None = None
        for step in self.recipe.steps:
            variants = step.variants(self.params)
            results = await asyncio.gather(
                *(self._item(row, step, v, outputs, prior, blocked) for v in variants)
            )
            if any(r is None for r in results):  # stopped (budget): leave the rest pending
                return
            if variants == [{}]:
                outputs[step.name] = results[0].output  # type: ignore[union-attr]
            else:
                outputs[step.name] = {
                    variant_label(v): r.output  # type: ignore[union-attr]
                    for v, r in zip(variants, results, strict=True)
                }
            if blocked is None and any(r.status == "failed" for r in results):  # type: ignore[union-attr]
                blocked = step.name
        self.progress.rows_done += 1
        self._emit()

    async def _item(
        self,
        row: CatalogRow,
        step: Step,
        variant: dict[str, Any],
        outputs: dict[str, Any],
        prior: dict[tuple[str, str, str], ItemRecord],
        blocked: str | None,
    ) -> StepOutcome | None:
        label = variant_label(variant)
        model = step.model or self.spec.model
        base: dict[str, Any] = {
            "row_id": row.row_id,
            "row_index": row.index,
            "step": step.name,
            "variant": label,
        }
        if blocked is not None:
            return self._finish(
                ItemOutcome(
                    **base,
                    key="",
                    status="failed",
                    error=f"not run: earlier step '{blocked}' failed for this row",
                )
            )
        try:
            request = step.build_request(row.data, outputs, variant, self.params, row_label=row.line)
        except RecipeError as exc:
            return self._finish(ItemOutcome(**base, key="", status="failed", error=exc.message))
        if request is None:
            return self._finish(ItemOutcome(**base, key="", status="skipped", output=None))
        key = item_key(request, model, self.recipe, step)
        known = self._known(prior.get((row.row_id, step.name, label)), key)
        if known is not None:
            return known
        if request.sources:  # knowledge the prompt quotes: stored in the item's meta by _finish
            self._sources[(row.row_id, step.name, label)] = request.sources
        if step.pack > 1:
            return await self._packed(row, step, variant, request, model, key, base)
        return await self._generate(row, step, variant, request, model, key, base)

    def _known(self, earlier: ItemRecord | None, key: str) -> StepOutcome | None:
        """An earlier run's outcome for the same key, when it finished: reused, no request."""
        if earlier is not None and earlier.key == key and earlier.status in FINISHED:
            self.progress.reused += 1
            return StepOutcome(earlier.output, earlier.status)
        return None

    async def _packed(
        self,
        row: CatalogRow,
        step: Step,
        variant: dict[str, Any],
        request: Request,
        model: str,
        key: str,
        base: dict[str, Any],
    ) -> StepOutcome | None:
        """A product of a `pack: K` step: answered from a request shared with K-1 others (engine.packing),
        or, when its part of the packed answer is missing or invalid, sent alone as usual."""
        client = self._clients[model]
        estimate = self._estimate_cost(model, client, request)  # a single request's: a pack costs less
        if not self.budget.reserve(estimate):
            return None
        packer = self._packers.setdefault((step.name, model), Packer(client, step.pack))
        share = await packer.submit(request, lambda text: step.parse(text, request.json_schema))
        if share.output is None:
            self.budget.settle(estimate, 0.0)  # the fallback settles the pack's share with its own cost
            self.progress.requests += share.requests  # the failed pack was still sent
            return await self._generate(row, step, variant, request, model, key, base, spent=share.usage)
        cost = 0.0 if share.cached else self._cost(model, share.usage)
        self.budget.settle(estimate, cost)
        return self._succeeded(
            row,
            step,
            variant,
            base,
            key,
            share.output,
            share.usage,
            cost,
            attempts=1,
            cached=share.cached,
            requests=0 if share.cached else share.requests,
            meta={"packed": share.size},
        )

    async def _generate(
        self,
        row: CatalogRow,
        step: Step,
        variant: dict[str, Any],
        request: Request,
        model: str,
        key: str,
        base: dict[str, Any],
        spent: Usage | None = None,
    ) -> StepOutcome | None:
        client = self._clients[model]
        estimate = self._estimate_cost(model, client, request)
        if not self.budget.reserve(estimate):
            return None
        usage, attempts, cached = spent or Usage(), 0, True
        try:
            result = await client.generate(request)
            usage, attempts, cached = usage + result.usage, 1, result.cached
            if not result.cached:
                self.latency_s_total += result.latency_s
                self.latency_count += 1
            try:
                output = step.parse(result.text)
            except OutputError as first:
                repair = step.repair_request(request, result.text, first.message)
                result = await client.generate(repair)
                usage, attempts, cached = usage + result.usage, 2, cached and result.cached
                try:
                    output = step.parse(result.text)
                except OutputError as second:
                    raise OutputError(
                        f"The model's answer was not valid after one repair attempt: {second.message}",
                        raw=second.raw,
                    ) from second
        except PermanentError as exc:
            if exc.status in (401, 403):
                self._fatal = exc
            return self._failed(base, key, exc, usage, attempts, model, estimate)
        except (ProviderError, OutputError) as exc:
            return self._failed(base, key, exc, usage, attempts, model, estimate)
        cost = 0.0 if cached else self._cost(model, usage)
        self.budget.settle(estimate, cost)
        return self._succeeded(
            row,
            step,
            variant,
            base,
            key,
            output,
            usage,
            cost,
            attempts=attempts,
            cached=cached,
            requests=0 if cached else attempts,
        )

    def _succeeded(
        self,
        row: CatalogRow,
        step: Step,
        variant: dict[str, Any],
        base: dict[str, Any],
        key: str,
        output: Any,
        usage: Usage,
        cost: float,
        *,
        attempts: int,
        cached: bool,
        requests: int,
        meta: dict[str, Any] | None = None,
    ) -> StepOutcome:
        """Check a parsed output and record the item (done or flagged, or failed by a failing check)."""
        findings = self._check(row, step, variant, output)
        status = verdict(findings)
        return self._finish(
            ItemOutcome(
                **base,
                key=key,
                status=status,
                output=output,
                findings=[f.model_dump() for f in findings] or None,
                error="; ".join(f.reason for f in findings if not f.ok) or None,
                review=self._review(status, key),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_input_tokens,
                cost=cost,
                attempts=attempts,
                cached=cached,
                meta=meta,
            ),
            requests=requests,
        )

    def _review(self, status: str, key: str) -> str | None:
        """Flagged items go to review; so does a fixed share of clean ones, chosen by key (reproducible)."""
        if status == "flagged":
            return "pending"
        rate = self.spec.review_sample
        if status == "done" and rate > 0 and int(key[:8], 16) / 0xFFFFFFFF < rate:
            return "pending"
        return None

    def _failed(
        self,
        base: dict[str, Any],
        key: str,
        exc: SkuforgeError,
        usage: Usage,
        attempts: int,
        model: str,
        estimate: float,
    ) -> StepOutcome:
        cost = self._cost(model, usage)
        self.budget.settle(estimate, cost)
        meta = {"raw": exc.raw[:2000]} if isinstance(exc, OutputError) and exc.raw else None
        return self._finish(
            ItemOutcome(
                **base,
                key=key,
                status="failed",
                error=f"{type(exc).__name__}: {exc.message}",
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=cost,
                attempts=max(attempts, 1),
                meta=meta,
            ),
            requests=max(attempts, 1),
        )

    def _check(self, row: CatalogRow, step: Step, variant: dict[str, Any], output: Any) -> list[Any]:
        checks = self._checks[step.name]
        if not checks:
            return []
        item = CheckItem(
            row=row.data,
            output=output,
            recipe=self.recipe.name,
            step=step.name,
            locale=variant.get("locale"),
            schema=step.output_schema,
            row_id=row.row_id,
        )
        findings = []
        for check in checks:
            findings.extend(check(item))
        return findings

    def _finish(self, outcome: ItemOutcome, requests: int = 0) -> StepOutcome:
        sources = self._sources.pop((outcome.row_id, outcome.step, outcome.variant), None)
        if sources:
            outcome.meta = {**(outcome.meta or {}), "sources": sources}
        self.store.record(self.job.id, [outcome])
        p = self.progress
        setattr(p, outcome.status, getattr(p, outcome.status) + 1)
        p.requests += requests
        p.cache_hits += int(outcome.cached)
        p.input_tokens += outcome.input_tokens
        p.output_tokens += outcome.output_tokens
        p.cost += outcome.cost
        return StepOutcome(outcome.output, outcome.status)

    # -- money -----------------------------------------------------------------------------------------
    def _price(self, model: str) -> Any:
        if model not in self._prices:
            from skuforge.providers.prices import price_for

            self._prices[model] = price_for(model, self.settings.prices)
        return self._prices[model]

    def _cost(self, model: str, usage: Usage) -> float:
        price = self._price(model)
        return price.cost(usage) if price is not None else 0.0

    def _estimate_cost(self, model: str, client: Provider, request: Request) -> float:
        if self.budget.limit is None:
            return 0.0
        text = "".join(m.content for m in request.messages)
        out = request.max_tokens or 512
        return self._cost(model, Usage(input_tokens=client.count_tokens(text), output_tokens=out))

    def _emit(self) -> None:
        p = self.progress
        p.cost = round(p.cost, 10)
        new = p.done + p.flagged + p.failed + p.skipped
        if self._items_per_row is None:
            self._items_per_row = sum(len(step.variants(self.params)) for step in self.recipe.steps)
        total = p.rows_total * self._items_per_row if p.rows_total is not None else None
        p.projected_cost = live_projection(p.cost, new, new + p.reused, total)
        if self.on_progress is not None:
            self.on_progress(self.progress)


def run_job(store: Store, job: Job, **kwargs: Any) -> RunProgress:
    """Run a job to its end from synchronous code (the CLI, the worker)."""
    runner = Runner(store, job, **kwargs)
    return asyncio.run(runner.run())
