"""Jobs as the service sees them: create a trial or a run, change its state, claim it for a worker.

Every state change that can race (two workers, a worker and a user's click) is one conditional UPDATE
(`... WHERE state = 'queued'`), so exactly one party wins. Pause and cancel of a *running* job are requests
(`totals.control`) that the worker running it notices within a second; the runner then stops, and items
already finished stay finished. A worker keeps `updated_at` fresh while it runs a job; a job left
`running` by a worker that died is re-queued once its lease has expired, and the runner skips every item
it already finished, so nothing is sent twice.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from skuforge.config import Limits, Settings
from skuforge.engine.spec import JobSpec, Selection
from skuforge.errors import ConfigError
from skuforge.providers.choice import choose_model
from skuforge.recipes import load_recipe
from skuforge.service.errors import ApiError
from skuforge.store import Job, Store
from skuforge.store.schema import jobs

ACTIVE = ("queued", "running")


class JobRequest(BaseModel):
    """What the API and the console send to create a job."""

    model_config = ConfigDict(extra="forbid")
    catalog: str = Field(description="an uploaded catalog id, e.g. c-3f9a0c1b2d4e")
    recipe: str = Field(description="a recipe name (built-in or user recipe)")
    model: str | None = Field(None, description="provider:model; default the server's configured model")
    params: dict[str, Any] = Field(default_factory=dict, description="recipe parameters")
    where: str | None = Field(None, description="SQL predicate over the catalog's columns")
    limit: int | None = Field(None, ge=1)
    sample: int | None = Field(None, ge=1, description="trial size; default the server's trial size")
    id_column: str | None = None
    sheet: str | None = None
    max_cost: float | None = Field(None, ge=0)
    review_sample: float = Field(0.0, ge=0, le=1)
    mode: Literal["online", "batch"] = Field(
        "online", description="online requests, or the provider's batch API (half price, within 24 h)"
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="the service's worker, or Ray (only when the service has a cluster)"
    )
    start: bool = Field(True, description="queue the job at once (false: keep it as a draft)")


class LaunchRequest(BaseModel):
    """How to run a trial's full run (POST /api/jobs/{id}/launch); every field is optional."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["online", "batch"] = "online"
    executor: Literal["local", "ray"] = "local"
    max_cost: float | None = Field(None, ge=0, description="pause the run before it spends more")


def check_model(name: str, settings: Settings) -> str:
    from skuforge.providers.registry import profiles

    provider, sep, _ = name.partition(":")
    known = profiles(settings)
    if not sep or provider.strip().lower() not in known:
        raise ConfigError(
            f"Unknown model '{name}'.",
            f"Name it provider:model; providers: {', '.join(sorted(known))} "
            "(e.g. fake:, local:qwen2.5-0.5b).",
        )
    return name


def build_spec(
    req: JobRequest,
    catalog_path: str,
    settings: Settings,
    *,
    kind: str,
    trial_rows: int,
    ray_address: str | None = None,
) -> JobSpec:
    """The job spec for a request; `ray_address` is the service's cluster (None: Ray is not offered)."""
    from skuforge.service import launch

    recipe = load_recipe(req.recipe, settings.recipe_dirs)  # fails now, with the recipe's own message
    sheet: str | int | None = int(req.sheet) - 1 if req.sheet and req.sheet.isdigit() else req.sheet
    sample = (req.sample or trial_rows) if kind == "trial" else None
    model = check_model(choose_model(req.model, settings, recipe).model, settings)
    launch.check_launch(
        req.mode, req.executor, model=model, kind=kind, settings=settings, ray_address=ray_address
    )
    return JobSpec(
        catalog=catalog_path,
        recipe=req.recipe,
        model=model,
        params=req.params,
        selection=Selection(
            sheet=sheet, id_column=req.id_column, where=req.where, limit=req.limit, sample=sample
        ),
        limits=Limits(**settings.limits.model_dump()),
        max_cost=req.max_cost,
        review_sample=req.review_sample,
        kind=kind,
        **launch.spec_fields(req.mode, req.executor, ray_address),
    )


def create(store: Store, spec: JobSpec, *, start: bool = True, parent_id: str | None = None) -> Job:
    """A new trial, or the run for this spec; an existing run with the same spec is continued
    (incrementally: only items whose rendered request changed are sent)."""
    state = "queued" if start else "draft"
    if spec.kind == "run":
        existing = store.find_job(spec.fingerprint())
        if existing is not None:
            store.update_job(existing.id, settings=spec.settings_blob())
            if start and existing.state not in ACTIVE:
                transition(store, existing.id, ("draft", "done", "paused", "failed", "cancelled"), "queued")
            return store.get_job(existing.id)
    return store.create_job(
        **spec.job_fields(), state=state, parent_id=parent_id, totals={"rows_total": None}
    )


def launch_from_trial(
    store: Store,
    trial: Job,
    options: LaunchRequest | None = None,
    *,
    settings: Settings | None = None,
    ray_address: str | None = None,
) -> Job:
    """The full run of a trial's spec: same catalog, recipe, model, params and filter, no sample; run
    online or in batch, locally or on Ray, as `options` ask (checked against what the service offers)."""
    from skuforge.config import load_settings
    from skuforge.service import bridge, launch

    if trial.kind != "trial":
        raise ApiError(409, f"Job {trial.id} is a {trial.kind}, not a trial.", "Launch a finished trial.")
    options = options or LaunchRequest()
    launch.check_launch(
        options.mode, options.executor, model=trial.model, kind="run",
        settings=settings or load_settings(), ray_address=ray_address,
    )  # fmt: skip
    changes: dict[str, Any] = launch.spec_fields(options.mode, options.executor, ray_address)
    if options.max_cost is not None:
        changes["max_cost"] = options.max_cost
    spec = bridge.full_run_spec(trial).model_copy(update=changes)
    return create(store, spec, parent_id=trial.id)


def transition(store: Store, job_id: str, allowed: tuple[str, ...], to: str, **values: Any) -> bool:
    """Move a job to `to` only if it is in one of `allowed` states; True when this call made the change."""
    with store.engine.begin() as conn:
        result = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state.in_(allowed))
            .values(state=to, updated_at=time.time(), **values)
        )
    return result.rowcount == 1


def request_control(store: Store, job_id: str, action: str) -> Job:
    """Pause, resume or cancel, whatever state the job is in; a running job is asked to stop."""
    job = store.get_job(job_id)
    if action == "resume":
        if not transition(store, job_id, ("draft", "paused", "failed", "cancelled"), "queued", error=None):
            _refuse(job, action)
    elif action in ("pause", "cancel"):
        target = "paused" if action == "pause" else "cancelled"
        stoppable = ("queued", "draft") if action == "pause" else ("queued", "draft", "paused", "failed")
        if not transition(store, job_id, stoppable, target):
            if store.get_job(job_id).state != "running":
                _refuse(job, action)
            store.update_job(job_id, totals={**job.totals, "control": action})
    elif action == "start":
        if not transition(store, job_id, ("draft",), "queued"):
            _refuse(job, action)
    else:
        raise ApiError(404, f"Unknown job action '{action}'.", "Use start, pause, resume or cancel.")
    return store.get_job(job_id)


def _refuse(job: Job, action: str) -> None:
    raise ApiError(
        409,
        f"Job {job.id} is {job.state}; it cannot {action} now.",
        "Pause or cancel a queued or running job; resume a paused, failed or cancelled one.",
    )


def claim_next(store: Store, worker: str) -> Job | None:
    """Take the oldest queued job, atomically: of two workers asking at once, exactly one gets it.

    The state, the worker's name and the cleared control request are one UPDATE, so a pause asked for the
    moment the job starts running is never overwritten by the claim."""
    with store.engine.connect() as conn:
        candidates = (
            conn.execute(
                select(jobs.c.id).where(jobs.c.state == "queued").order_by(jobs.c.created_at).limit(5)
            )
            .scalars()
            .all()
        )
    for job_id in candidates:
        job = store.get_job(job_id)
        totals = orjson.dumps({**(job.totals or {}), "worker": worker, "control": None}).decode()
        if transition(store, job_id, ("queued",), "running", error=None, totals=totals):
            return store.get_job(job_id)
    return None


def requeue_stale(store: Store, lease_s: float) -> list[str]:
    """Jobs left running by a worker that stopped sending heartbeats go back to the queue."""
    cutoff = time.time() - lease_s
    with store.engine.connect() as conn:
        stale = (
            conn.execute(select(jobs.c.id).where(jobs.c.state == "running", jobs.c.updated_at < cutoff))
            .scalars()
            .all()
        )
    return [job_id for job_id in stale if transition(store, job_id, ("running",), "queued")]


def heartbeat(store: Store, job_ids: list[str]) -> None:
    if not job_ids:
        return
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(job_ids), jobs.c.state == "running")
            .values(updated_at=time.time())
        )


def job_view(store: Store, job: Job, display_name: str | None = None) -> dict[str, Any]:
    """A job as the API returns it: spec, state, counts, spend (never a key or a server path)."""
    counts = store.counts(job.id)
    totals = dict(job.totals or {})
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "recipe": job.recipe,
        "model": job.model,
        "catalog": display_name or "",
        "params": job.params,
        "selection": {k: v for k, v in job.selection.items() if v not in (None, "", 0) or k == "seed"},
        "parent_id": job.parent_id,
        "error": job.error,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "control": totals.get("control"),
        "progress": {
            "rows_total": totals.get("rows_total"),
            "rows": counts.rows,
            "done": counts.done,
            "flagged": counts.flagged,
            "failed": counts.failed,
            "skipped": counts.skipped,
            "input_tokens": counts.input_tokens,
            "output_tokens": counts.output_tokens,
            "cost": round(counts.cost, 6),
            "requests": counts.requests,
        },
    }
