"""/api/schedules: recurring runs of a catalog through a recipe, on a cron expression (UTC).

Add, list, show (with the job history of its firings), edit, pause and resume, run now, delete; and a
preview of any cron expression in plain words with its next three run times, for forms that preview as
the operator types.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from skuforge.engine.spec import JobSpec
from skuforge.errors import UserError
from skuforge.service import cron, schedules
from skuforge.service import jobs as job_ops
from skuforge.service.auth import Caller
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.service.uploads import CatalogFiles, check_id

router = APIRouter(prefix="/api/schedules", tags=["schedules"])


def spec_for(ctx: ServiceContext, req: schedules.ScheduleRequest) -> JobSpec:
    """The run a schedule fires, checked now (catalog, recipe, model, launch options, cron)."""
    stored = CatalogFiles(ctx.catalogs_dir, 0).get(check_id(req.catalog))
    job_req = job_ops.JobRequest.model_validate(
        {
            "catalog": req.catalog, "recipe": req.recipe, "model": req.model, "params": req.params,
            "where": req.where, "mode": req.mode, "executor": req.executor, "max_cost": req.max_cost,
        }
    )  # fmt: skip
    schedules.check_cron(req.cron)
    return job_ops.build_spec(
        job_req, stored.path, ctx.settings, kind="run", trial_rows=ctx.options.trial_rows,
        ray_address=ctx.options.ray_address,
    )  # fmt: skip


def public(ctx: ServiceContext, entry: dict[str, Any], lang: str = "en") -> dict[str, Any]:
    """A schedule as the API shows it: the catalog by id and name (never a server path), the cron in words
    and its next three run times."""
    spec = dict(entry["spec"])
    stored = CatalogFiles(ctx.catalogs_dir, 0).by_path(spec.pop("catalog", ""))
    for server_side in ("recipe_dirs", "out"):
        spec.pop(server_side, None)
    after = entry["last_run_at"] or entry["created_at"]
    return {
        **entry,
        "spec": spec,
        "catalog": {"id": stored.id, "name": stored.name} if stored else None,
        "description": cron.describe(entry["cron"], lang),
        "next_runs": cron.next_runs(entry["cron"], max(after, time.time())) if entry["enabled"] else [],
    }


@router.post("", status_code=201, summary="Add a schedule")
def add(request: Request, _: Caller, req: schedules.ScheduleRequest) -> dict[str, Any]:
    ctx = get_ctx(request)
    entry = schedules.add(ctx.store, req.name, req.cron, spec_for(ctx, req), enabled=req.enabled)
    return public(ctx, entry)


@router.get("", summary="List schedules with their next run times")
def index(request: Request, _: Caller) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    return [public(ctx, e) for e in schedules.list_all(ctx.store)]


@router.get("/preview", summary="A cron expression in plain words, with its next three run times (UTC)")
def preview(
    request: Request,
    _: Caller,
    cron_expr: str = Query(..., alias="cron", max_length=120),
    lang: Literal["en", "zh"] = "en",
) -> dict[str, Any]:
    try:
        runs = cron.next_runs(cron_expr, time.time())
        return {
            "valid": True,
            "cron": cron.check(cron_expr),
            "description": cron.describe(cron_expr, lang),
            "next_runs": runs,
            "next_runs_text": [cron.stamp(t) for t in runs],
        }
    except UserError as exc:
        return {"valid": False, "cron": cron_expr, "error": {"message": exc.message, "hint": exc.hint}}


@router.get("/{schedule_id}", summary="A schedule with the job history of its firings, newest first")
def show(request: Request, _: Caller, schedule_id: str) -> dict[str, Any]:
    ctx = get_ctx(request)
    entry = public(ctx, schedules.get(ctx.store, schedule_id))
    return {**entry, "history": schedules.history(ctx.store, schedule_id)}


@router.put("/{schedule_id}", summary="Edit a schedule (name, cron, what it runs, enabled); history stays")
def edit(request: Request, _: Caller, schedule_id: str, req: schedules.ScheduleRequest) -> dict[str, Any]:
    ctx = get_ctx(request)
    schedules.get(ctx.store, schedule_id)
    entry = schedules.update_schedule(
        ctx.store,
        schedule_id,
        name=req.name,
        cron_expr=req.cron,
        spec=spec_for(ctx, req),
        enabled=req.enabled,
    )
    return public(ctx, entry)


@router.post("/{schedule_id}/{action}", summary="enable, disable (pause) or run a schedule now")
def act(
    request: Request, _: Caller, schedule_id: str, action: Literal["enable", "disable", "run"]
) -> dict[str, Any]:
    ctx = get_ctx(request)
    if action == "run":
        job_id = schedules.run_now(ctx.store, schedule_id)
        return {**public(ctx, schedules.get(ctx.store, schedule_id)), "job_id": job_id}
    return public(ctx, schedules.set_enabled(ctx.store, schedule_id, action == "enable"))


@router.delete("/{schedule_id}", status_code=204, summary="Remove a schedule and its history")
def remove(request: Request, _: Caller, schedule_id: str) -> None:
    schedules.remove(get_ctx(request).store, schedule_id)
