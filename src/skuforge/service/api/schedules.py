"""/api/schedules: recurring runs of a catalog through a recipe, on a cron expression."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from skuforge.service import jobs as job_ops
from skuforge.service import schedules
from skuforge.service.auth import Caller
from skuforge.service.context import get_ctx
from skuforge.service.uploads import CatalogFiles, check_id

router = APIRouter(prefix="/api/schedules", tags=["schedules"])


@router.post("", status_code=201, summary="Add a schedule")
def add(request: Request, _: Caller, req: schedules.ScheduleRequest) -> dict[str, Any]:
    ctx = get_ctx(request)
    stored = CatalogFiles(ctx.catalogs_dir, 0).get(check_id(req.catalog))
    job_req = job_ops.JobRequest(
        catalog=req.catalog, recipe=req.recipe, model=req.model, params=req.params, where=req.where
    )
    spec = job_ops.build_spec(
        job_req, stored.path, ctx.settings, kind="run", trial_rows=ctx.options.trial_rows
    )
    schedules.check_cron(req.cron)
    return schedules.add(ctx.store, req.name, req.cron, spec, enabled=req.enabled)


@router.get("", summary="List schedules with their next run time")
def index(request: Request, _: Caller) -> list[dict[str, Any]]:
    return schedules.list_all(get_ctx(request).store)


@router.post("/{schedule_id}/{action}", summary="Enable or disable a schedule")
def toggle(request: Request, _: Caller, schedule_id: str, action: str) -> dict[str, Any]:
    from skuforge.service.errors import ApiError

    if action not in ("enable", "disable"):
        raise ApiError(404, f"Unknown schedule action '{action}'.", "Use enable or disable.")
    return schedules.set_enabled(get_ctx(request).store, schedule_id, action == "enable")


@router.delete("/{schedule_id}", status_code=204, summary="Remove a schedule")
def remove(request: Request, _: Caller, schedule_id: str) -> None:
    schedules.remove(get_ctx(request).store, schedule_id)
