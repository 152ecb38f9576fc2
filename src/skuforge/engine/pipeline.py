"""The item pipeline: render -> key -> call -> parse/repair -> checks -> outcome. No storage, no scheduling.

Every executor (local, provider batch, Ray) runs items through this one pipeline, so an item has the same
key, the same request, the same checks and the same outcome whichever executor ran it. Executors only decide
*when* an item runs and *where* its outcome is stored.

    pipeline = ItemPipeline(ctx, clients)
    planned = pipeline.plan(row, step, variant, outputs)       # the request and its key, or a decided outcome
    outcome = await pipeline.run(planned)                      # call, parse (one repair), check
    outcome = await pipeline.complete(planned, text, usage)    # an answer that came back another way (batch)

A row's steps run in order, each seeing the outputs of the steps before it (`walk_row`). A step that fails for
a row stops that row: its later steps are recorded as failed with the reason, never silently dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skuforge.catalog import CatalogRow
from skuforge.checks.base import CheckItem, Finding, build, verdict
from skuforge.engine.context import JobContext, variant_label
from skuforge.engine.packing import Packer
from skuforge.errors import (
    BudgetExceeded,
    OutputError,
    PermanentError,
    ProviderError,
    ProviderUnavailable,
    RecipeError,
    SkuforgeError,
)
from skuforge.providers.base import Provider, Request, Result, Usage
from skuforge.providers.prices import Price
from skuforge.recipes import Recipe, Step
from skuforge.store import ItemOutcome, ItemRecord


def item_key(request: Request, model: str, recipe: Recipe, step: Step) -> str:
    """Hash of what the model will see, plus the recipe version and step: the resume and incremental key."""
    digest = hashlib.sha256(request.canonical(model))
    digest.update(f"\0{recipe.name}\0{recipe.version}\0{step.name}".encode())
    return digest.hexdigest()


@dataclass(slots=True)
class Planned:
    """One item before it runs: its request and key, or an outcome already decided (skipped, not runnable)."""

    row: CatalogRow
    step: Step
    variant: dict[str, Any]
    label: str
    model: str
    request: Request | None = None
    key: str = ""
    decided: ItemOutcome | None = None

    def base(self) -> dict[str, Any]:
        return {
            "row_id": self.row.row_id,
            "row_index": self.row.index,
            "step": self.step.name,
            "variant": self.label,
        }


@dataclass(slots=True)
class Spend:
    """What one item's calls used and cost (its own calls, repairs and the model calls of its checks)."""

    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    attempts: int = 0
    requests: int = 0
    cached: bool = True

    def add(self, result: Result, cost: float) -> None:
        self.usage = self.usage + result.usage
        self.attempts += 1
        self.cached = self.cached and result.cached
        if not result.cached:
            self.cost += cost
            self.requests += 1


class ItemPipeline:
    """Turns planned items into outcomes; the clients are providers already wrapped (cache, retries,
    limits, budget) by the caller."""

    def __init__(
        self,
        ctx: JobContext,
        clients: Mapping[str, Provider],
        *,
        prices: Callable[[str], Price | None] | None = None,
        client_for: Callable[[str], Provider] | None = None,
    ) -> None:
        self.ctx, self.clients = ctx, dict(clients)
        self._price_of = prices or (lambda _m: None)
        self._client_for = client_for
        self._prices: dict[str, Price | None] = {}
        self._packers: dict[tuple[str, str], Packer] = {}
        self.checks = {s.name: [build(c) for c in s.checks_for(ctx.params)] for s in ctx.steps}
        self.latency_s_total, self.latency_count = 0.0, 0  # of requests sent: the trial's timing

    # -- planning --------------------------------------------------------------------------------------
    def plan(
        self,
        row: CatalogRow,
        step: Step,
        variant: dict[str, Any],
        outputs: dict[str, Any],
        blocked: str | None = None,
    ) -> Planned:
        """Render the request and compute its key; or decide the outcome now (skipped, or not runnable)."""
        planned = Planned(row, step, variant, variant_label(variant), self.ctx.model_for(step))
        if blocked is not None:
            error = f"not run: earlier step '{blocked}' failed for this row"
            planned.decided = ItemOutcome(**planned.base(), key="", status="failed", error=error)
            return planned
        try:
            request = step.build_request(row.data, outputs, variant, self.ctx.params, row_label=row.line)
        except RecipeError as exc:
            planned.decided = ItemOutcome(**planned.base(), key="", status="failed", error=exc.message)
            return planned
        if request is None:
            planned.decided = ItemOutcome(**planned.base(), key="", status="skipped")
            return planned
        planned.request = request
        planned.key = item_key(request, planned.model, self.ctx.recipe, step)
        return planned

    # -- running ---------------------------------------------------------------------------------------
    async def run(self, planned: Planned, spend: Spend | None = None) -> ItemOutcome:
        """Call the model (one repair for an invalid answer), check the output, and return the outcome.
        `spend`, when given, receives what the item used (its `requests` are the requests really sent).

        `BudgetExceeded` and `ProviderUnavailable` propagate: the item is not finished and must not be
        recorded; every other provider fault becomes a failed outcome with its reason."""
        assert planned.request is not None
        spend = spend if spend is not None else Spend()
        client = self.client(planned.model)
        if planned.step.pack > 1:
            packed = await self._packed(client, planned, spend)
            if packed is not None:
                return packed
        try:
            result = await self._call(client, planned, planned.request, spend)
            try:
                output = planned.step.parse(result.text)
            except OutputError as first:
                repair = planned.step.repair_request(planned.request, result.text, first.message)
                result = await self._call(client, planned, repair, spend)
                output = self._reparse(planned.step, result.text)
        except ProviderUnavailable:
            raise
        except PermanentError as exc:
            if exc.status in (401, 403):  # every request would be refused: pause, do not fail the item
                raise ProviderUnavailable(exc.message, exc.hint, status=exc.status) from exc
            return self.failed(planned, exc, spend)
        except (ProviderError, OutputError) as exc:
            return self.failed(planned, exc, spend)
        return await self.checked(planned, output, spend)

    async def _packed(self, client: Provider, planned: Planned, spend: Spend) -> ItemOutcome | None:
        """A product of a `pack: K` step, answered from a request shared with K-1 others (engine.packing);
        None when its part of the packed answer is missing or invalid: it is then sent alone."""
        request = planned.request
        assert request is not None
        packer = self._packers.get((planned.step.name, planned.model))
        if packer is None:
            packer = self._packers[(planned.step.name, planned.model)] = Packer(client, planned.step.pack)
        share = await packer.submit(request, lambda text: planned.step.parse(text, request.json_schema))
        spend.usage = spend.usage + share.usage
        spend.cached = spend.cached and share.cached
        if not share.cached:
            spend.cost += self.cost(planned.model, share.usage)
            spend.requests += share.requests
        if share.output is None:
            return None
        spend.attempts = 1
        return await self.checked(planned, share.output, spend, {"packed": share.size}, validated=False)

    async def complete(
        self, planned: Planned, text: str, spend: Spend, meta: dict[str, Any] | None = None
    ) -> ItemOutcome:
        """An answer that came back outside `run` (a batch line): parse, check, outcome. No repair call."""
        try:
            output = planned.step.parse(text)
        except OutputError as exc:
            return self.failed(planned, exc, spend, meta)
        return await self.checked(planned, output, spend, meta)

    async def _call(self, client: Provider, planned: Planned, request: Request, spend: Spend) -> Result:
        result = await client.generate(request)
        spend.add(result, self.cost(planned.model, result.usage))
        if not result.cached:
            self.latency_s_total += result.latency_s
            self.latency_count += 1
        return result

    @staticmethod
    def _reparse(step: Step, text: str) -> Any:
        try:
            return step.parse(text)
        except OutputError as second:
            raise OutputError(
                f"The model's answer was not valid after one repair attempt: {second.message}",
                raw=second.raw,
            ) from second

    # -- outcomes --------------------------------------------------------------------------------------
    async def checked(
        self,
        planned: Planned,
        output: Any,
        spend: Spend,
        meta: dict[str, Any] | None = None,
        *,
        validated: bool = True,
    ) -> ItemOutcome:
        """Settle a parsed output (`Step.settle`) and check it: the outcome is done, flagged, or failed by a
        failing check. `validated`: the output was parsed against the step's own schema (a packed one was
        not)."""
        output, notes = planned.step.settle(planned.row.data, output)
        findings = notes + await self.check(planned, output, spend, validated=validated)
        status = verdict(findings)
        return ItemOutcome(
            **planned.base(),
            key=planned.key,
            status=status,
            output=output,
            findings=[f.model_dump() for f in findings] or None,
            error="; ".join(f.reason for f in findings if not f.ok) or None,
            review=self._review(status, planned.key),
            input_tokens=spend.usage.input_tokens,
            output_tokens=spend.usage.output_tokens,
            cached_tokens=spend.usage.cached_input_tokens,
            cost=spend.cost,
            attempts=max(spend.attempts, 1),
            cached=spend.cached and spend.attempts > 0,
            meta=self._meta(planned, meta),
        )

    def failed(
        self, planned: Planned, exc: Exception, spend: Spend, meta: dict[str, Any] | None = None
    ) -> ItemOutcome:
        message = getattr(exc, "message", str(exc))
        extra = dict(meta or {})
        if isinstance(exc, OutputError) and exc.raw:
            extra["raw"] = exc.raw[:2000]
        return ItemOutcome(
            **planned.base(),
            key=planned.key,
            status="failed",
            error=f"{type(exc).__name__}: {message}",
            input_tokens=spend.usage.input_tokens,
            output_tokens=spend.usage.output_tokens,
            cached_tokens=spend.usage.cached_input_tokens,
            cost=spend.cost,
            attempts=max(spend.attempts, 1),
            meta=self._meta(planned, extra),
        )

    def reused(self, planned: Planned, earlier: ItemRecord) -> ItemOutcome:
        """This row's item from an earlier finished one with the same key (a moved or identical row)."""
        return ItemOutcome(
            **planned.base(),
            key=planned.key,
            status=earlier.status,
            output=earlier.output,
            findings=earlier.findings,
            error=earlier.error,
            review=self._review(earlier.status, planned.key),
            cached=True,
            attempts=0,
            meta={**(earlier.meta or {}), "reused_from": earlier.row_id},
        )

    def _review(self, status: str, key: str) -> str | None:
        """Flagged items go to review; so does a fixed share of clean ones, chosen by key (reproducible)."""
        if status == "flagged":
            return "pending"
        rate = self.ctx.spec.review_sample
        if status == "done" and rate > 0 and int(key[:8], 16) / 0xFFFFFFFF < rate:
            return "pending"
        return None

    @staticmethod
    def _meta(planned: Planned, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        sources = planned.request.sources if planned.request is not None else None
        if sources:
            meta = {**(meta or {}), "sources": sources}
        return meta or None

    # -- checks ----------------------------------------------------------------------------------------
    async def check(
        self, planned: Planned, output: Any, spend: Spend, *, validated: bool = False
    ) -> list[Finding]:
        """Run the step's checks; a check that calls a model awaits it through the same wrappers."""
        checks = self.checks[planned.step.name]
        if not checks:
            return []
        item = CheckItem(
            row=planned.row.data,
            output=output,
            recipe=self.ctx.recipe.name,
            step=planned.step.name,
            locale=planned.variant.get("locale"),
            schema=planned.step.output_schema,
            row_id=planned.row.row_id,
            validated=validated,
            calls=CheckCalls(self, spend),
        )
        findings: list[Finding] = []
        for check in checks:
            findings.extend(await self._run_check(check, item))
        return findings

    @staticmethod
    async def _run_check(check: Any, item: CheckItem) -> list[Finding]:
        """One check's findings; a check that cannot run (its model failed) flags the item for review
        rather than passing it or failing the run. A spent budget or an unusable provider still stops it."""
        try:
            found = check(item)
            return list(await found if inspect.isawaitable(found) else found)
        except (BudgetExceeded, ProviderUnavailable):
            raise
        except SkuforgeError as exc:
            reason = f"the {check.name} check could not run: {exc.message}"
            return [Finding(check=check.name, ok=False, action="flag", reason=reason)]

    # -- clients and money -----------------------------------------------------------------------------
    def client(self, model: str) -> Provider:
        if model not in self.clients:
            if self._client_for is None:
                raise KeyError(f"no client for model {model}")
            self.clients[model] = self._client_for(model)
        return self.clients[model]

    def price(self, model: str) -> Price | None:
        if model not in self._prices:
            self._prices[model] = self._price_of(model)
        return self._prices[model]

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float:
        price = self.price(model)
        return price.cost(usage, batch=batch) if price is not None else 0.0

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        for checks in self.checks.values():
            for check in checks:
                close = getattr(check, "aclose", None)
                if close is not None:
                    await close()


class CheckCalls:
    """What a check may call: a model, through the run's wrappers (limits, retries, cache, budget); the
    usage and cost land on the item being checked."""

    def __init__(self, pipeline: ItemPipeline, spend: Spend) -> None:
        self.pipeline, self.spend = pipeline, spend

    async def generate(self, model: str, request: Request) -> Result:
        result = await self.pipeline.client(model).generate(request)
        self.spend.add(result, self.pipeline.cost(model, result.usage))
        return result


Resolve = Callable[[Planned], Awaitable[ItemOutcome | None]]
"""An executor's way to finish a planned item: its outcome, or None when it is not finished now (the run
is stopping, or the item waits in a provider batch)."""


async def walk_row(
    pipeline: ItemPipeline, row: CatalogRow, resolve: Resolve, first: list[Planned] | None = None
) -> bool:
    """Run a row's steps in order, each seeing earlier outputs; True when every item of the row finished.

    `first` may carry the first step's items, already planned by the executor (to look them up in bulk)."""
    outputs: dict[str, Any] = {}
    blocked: str | None = None
    for number, step in enumerate(pipeline.ctx.steps):
        variants = pipeline.ctx.variants(step)
        if number == 0 and first is not None:
            planned = first
        else:
            planned = [pipeline.plan(row, step, v, outputs, blocked) for v in variants]
        if len(planned) == 1:
            results = [await resolve(planned[0])]
        else:
            results = list(await asyncio.gather(*(resolve(p) for p in planned)))
        if any(r is None for r in results):
            return False
        done = [r for r in results if r is not None]
        if variants == [{}]:
            outputs[step.name] = done[0].output
        else:
            outputs[step.name] = {p.label: r.output for p, r in zip(planned, done, strict=True)}
        if blocked is None and any(r.status == "failed" for r in done):
            blocked = step.name
    return True
