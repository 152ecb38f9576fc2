"""Trial runs: a recipe on a small sample spread over categories, a preview, and the projected full run.

An operator tries a recipe on ~20 products before paying for 100,000. The trial is a job of its own
(kind 'trial') over `sample` rows chosen by `catalog.select` (round-robin over categories), run by the normal
runner, so its items are stored, checked and priced like any others. `promote` turns a trial into the full
run: the same catalog, recipe, model, parameters and selection without the sample, with the trial as its
parent. The full run sends nothing for the products the trial already generated: the rendered requests are
the same, so the response cache answers them (and they cost nothing).

    spec = trial_spec("products.xlsx", recipe="title", model="openai:gpt-4o-mini", sample=20)
    result = run_trial(store, spec)          # result.projection.cost_expected, result.preview, ...
    job = promote(store, result.job.id, max_cost=50)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skuforge.config import Settings, load_settings
from skuforge.engine.progress import ProgressCallback, RunProgress
from skuforge.engine.projection import Projection, Sample, count_selection, measures_from, project
from skuforge.engine.spec import JobSpec
from skuforge.errors import UserError
from skuforge.store import Job, Store

DEFAULT_SAMPLE = 20
PREVIEW_FIELDS = 4
"""Input fields shown per product in the preview (the recipe's own columns first)."""


@dataclass(slots=True)
class PreviewItem:
    """One product of the trial: the inputs the recipe read, and each step's output and verdict."""

    row_id: str
    line: str
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class TrialResult:
    job: Job
    progress: RunProgress
    projection: Projection
    preview: list[PreviewItem]
    checks: dict[str, dict[str, int]]
    statuses: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable trial (`skuforge trial --json`, the service)."""
        return {
            "job_id": self.job.id,
            "catalog": self.job.catalog,
            "recipe": self.job.recipe,
            "model": self.job.model,
            "params": self.job.params,
            "items": [
                {"row_id": p.row_id, "line": p.line, "inputs": p.inputs, "outputs": p.outputs}
                for p in self.preview
            ],
            "statuses": self.statuses,
            "checks": self.checks,
            "tokens": {"input": self.progress.input_tokens, "output": self.progress.output_tokens},
            "cost": self.progress.cost,
            "requests": self.progress.requests,
            "cache_hits": self.progress.cache_hits,
            "projection": self.projection.as_dict(),
            "promote": f"skuforge run --from-trial {self.job.id}",
        }


def trial_spec(catalog: str | Path, *, sample: int = DEFAULT_SAMPLE, **fields: Any) -> JobSpec:
    """A JobSpec of kind 'trial' over `sample` rows (fields as for JobSpec: recipe, model, selection...)."""
    spec = JobSpec.create(catalog, **fields)
    selection = spec.selection.model_copy(update={"sample": sample})
    return spec.model_copy(update={"selection": selection, "kind": "trial", "out": None})


def create_trial_job(store: Store, spec: JobSpec) -> Job:
    """A new trial job (trials are never continued: each one is a record of what was tried)."""
    return store.create_job(**{**spec.job_fields(), "kind": "trial", "out": None}, state="trial")


async def run_trial_async(
    store: Store, spec: JobSpec, *, settings: Settings | None = None,
    provider_factory: Any = None, on_progress: ProgressCallback | None = None,
) -> TrialResult:  # fmt: skip
    from skuforge.engine.runner import Runner

    if spec.kind != "trial" or not spec.selection.sample:
        raise UserError(
            "A trial needs a sample size.",
            "Build the spec with trial_spec(..., sample=N), or pass --sample N.",
        )
    settings = settings or load_settings()
    job = create_trial_job(store, spec)
    runner = Runner(store, job, settings=settings, on_progress=on_progress, provider_factory=provider_factory)
    progress = await runner.run()
    store.flush()
    latency = runner.latency_s_total / runner.latency_count if runner.latency_count else None
    rows_total = count_selection(runner.ctx.catalog, spec.selection.where, spec.selection.limit)
    records = list(store.items(job.id))
    projection = project(
        Sample(measures_from(records), rows=progress.rows_done, latency_s=latency),
        model=spec.model, rows_total=rows_total, limits=spec.limits, prices=settings.prices,
    )  # fmt: skip
    store.update_job(job.id, totals={"projection": projection.as_dict(), "latency_s": latency})
    preview = _preview(runner.ctx, records)
    return TrialResult(
        job=store.get_job(job.id), progress=progress, projection=projection, preview=preview,
        checks=check_summary(records), statuses=dict(Counter(r.status for r in records)),
    )  # fmt: skip


def run_trial(store: Store, spec: JobSpec, **kwargs: Any) -> TrialResult:
    """Run a trial to its end from synchronous code (the CLI)."""
    return asyncio.run(run_trial_async(store, spec, **kwargs))


def check_summary(records: list[Any]) -> dict[str, dict[str, int]]:
    """Per check: how many items passed, were flagged, or failed it."""
    summary: dict[str, Counter[str]] = {}
    for record in records:
        for finding in record.findings or []:
            verdict = (
                "passed"
                if finding.get("ok")
                else ("failed" if finding.get("action") == "fail" else "flagged")
            )
            summary.setdefault(finding.get("check", "?"), Counter())[verdict] += 1
    return {name: {k: c[k] for k in ("passed", "flagged", "failed")} for name, c in sorted(summary.items())}


def _input_fields(ctx: Any) -> list[str]:
    wanted = ctx.recipe.required_columns(ctx.params)
    columns = ctx.catalog.columns
    ordered = [c for c in columns if c in wanted] + [c for c in columns if c not in wanted]
    id_column = ctx.catalog.id_column
    return [c for c in ordered if c != id_column][:PREVIEW_FIELDS]


def _preview(ctx: Any, records: list[Any]) -> list[PreviewItem]:
    """The sampled rows again (a second streaming pass), joined with their stored items."""
    by_row: dict[str, list[Any]] = {}
    for record in records:
        by_row.setdefault(record.row_id, []).append(record)
    fields = _input_fields(ctx)
    preview = []
    for row in ctx.rows():
        item = PreviewItem(row.row_id, row.line, {f: row.data.get(f) for f in fields})
        for record in by_row.get(row.row_id, []):
            item.outputs.append({
                "step": record.step, "variant": record.variant, "status": record.status,
                "output": record.output, "error": record.error,
                "findings": [f for f in record.findings or [] if not f.get("ok")],
                "tokens": record.input_tokens + record.output_tokens, "cost": record.cost,
                "sources": (record.meta or {}).get("sources") or [],
            })  # fmt: skip
        preview.append(item)
    return preview


def full_run_spec(trial: Job, **call: Any) -> JobSpec:
    """The full run a trial stands for: its spec without the sample, kind 'run'. `call` may change how
    the model is called (limits, cache, max_cost, price, review_sample, mode, executor, ray_address) and
    the output; anything that changes what is generated comes from the trial."""
    if trial.kind != "trial":
        raise UserError(
            f"Job {trial.id} is a {trial.kind} job, not a trial.",
            "Pass the id of a trial (`skuforge jobs` lists them with kind 'trial').",
        )
    spec = JobSpec.from_job(trial)
    selection = spec.selection.model_copy(update={"sample": None, "seed": 0})
    allowed = set(CALL_FIELDS) | {"out"}
    unknown = sorted(set(call) - allowed)
    if unknown:
        raise UserError(
            f"A full run of a trial cannot change {', '.join(unknown)}.", "Run a new trial instead."
        )
    given = {k: v for k, v in call.items() if v is not None}
    return spec.model_copy(update={"selection": selection, "kind": "run", "out": call.get("out"), **given})


CALL_FIELDS = ("limits", "cache", "max_cost", "price", "review_sample", "mode", "executor", "ray_address")
"""JobSpec fields that change how the model is called, not what it is asked: a full run may set them."""


def promote(store: Store, trial_id: str, **call: Any) -> Job:
    """Create (or continue) the full run of a trial; its parent is the trial."""
    trial = store.get_job(trial_id)
    spec = full_run_spec(trial, **call)
    existing = store.find_job(spec.fingerprint())
    if existing is not None:
        store.update_job(existing.id, settings=spec.settings_blob(), out=spec.out)
        return store.get_job(existing.id)
    return store.create_job(**spec.job_fields(), state="draft", parent_id=trial.id)
