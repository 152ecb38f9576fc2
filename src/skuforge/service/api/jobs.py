"""/api/jobs: create a trial or a run, start/pause/resume/cancel, progress (JSON and SSE), results, export."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from skuforge.catalog import SUPPORTED_FORMATS
from skuforge.config import Settings
from skuforge.engine.spec import JobSpec
from skuforge.errors import SkuforgeError
from skuforge.service import bridge, launch, live, results
from skuforge.service import jobs as job_ops
from skuforge.service.auth import Caller
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.service.errors import ApiError
from skuforge.service.uploads import CatalogFiles, check_id
from skuforge.store import ItemRecord, Job

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
TERMINAL = ("done", "failed", "cancelled", "paused", "draft")
EXPORT_FORMATS = sorted(set(SUPPORTED_FORMATS.values()))


def load_job(ctx: ServiceContext, job_id: str) -> Job:
    if not JOB_ID.match(job_id):
        raise ApiError(404, f"No job '{job_id[:60]}'.", "List jobs with GET /api/jobs.")
    return ctx.store.get_job(job_id)


def catalog_name(ctx: ServiceContext, job: Job) -> str:
    stored = CatalogFiles(ctx.catalogs_dir, 0).by_path(job.catalog)
    return stored.name if stored else "catalog"


def view(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    data = job_ops.job_view(ctx.store, job, catalog_name(ctx, job))
    data["projection"] = (job.totals or {}).get("projection")
    data["mode"] = (job.settings or {}).get("mode", "online")
    data["executor"] = (job.settings or {}).get("executor", "local")
    data["live"] = live.view(live.read(ctx.store, job.id), job.state)
    if data["live"] is not None and data["progress"]["rows_total"] is None:
        data["progress"]["rows_total"] = data["live"].get("rows_total")
    if data["live"] is not None and data["mode"] == "batch":
        data["live"]["stalled"] = False  # a batch waits hours for the provider by design
    data["plan"] = launch.plan(job, parent_projection(ctx, job), ctx.settings) if job.kind == "run" else None
    return data


def parent_projection(ctx: ServiceContext, job: Job) -> dict[str, Any] | None:
    """The projection of the trial a run was launched from, if any."""
    if not job.parent_id:
        return None
    try:
        parent = ctx.store.get_job(job.parent_id)
    except SkuforgeError:
        return None
    return (parent.totals or {}).get("projection")


def item_view(item: ItemRecord) -> dict[str, Any]:
    data = asdict(item)
    data.pop("key", None)
    return data


def create_job(ctx: ServiceContext, req: job_ops.JobRequest, kind: str) -> Job:
    stored = CatalogFiles(ctx.catalogs_dir, 0).get(check_id(req.catalog))
    spec = job_ops.build_spec(
        req, stored.path, ctx.settings, kind=kind, trial_rows=ctx.options.trial_rows,
        ray_address=ctx.options.ray_address,
    )  # fmt: skip
    check_before_queueing(spec, ctx.settings)
    return job_ops.create(ctx.store, spec, start=req.start)


def check_before_queueing(spec: JobSpec, settings: Settings) -> None:
    """What can be wrong with a job, found before it is queued (a bad job is refused, never left queued):
    the catalog's columns for the recipe, the selection, the model's server, key and name."""
    from skuforge.engine.context import JobContext
    from skuforge.providers.preflight import preflight_model

    job_context = JobContext.from_spec(spec, settings)
    job_context.check_ready(ids=False)  # the worker checks the ids before the first request
    for model in job_context.models():
        preflight_model(model, settings)


def launch_run(ctx: ServiceContext, trial: Job, options: job_ops.LaunchRequest | None) -> Job:
    return job_ops.launch_from_trial(
        ctx.store, trial, options, settings=ctx.settings, ray_address=ctx.options.ray_address
    )


@router.post("", status_code=201, summary="Create a trial or a run from a catalog, recipe, model and filter")
def create(
    request: Request,
    _: Caller,
    req: job_ops.JobRequest,
    kind: Literal["trial", "run"] = Query("trial"),
) -> dict[str, Any]:
    ctx = get_ctx(request)
    return view(ctx, create_job(ctx, req, kind))


@router.get("", summary="List jobs, newest first")
def index(
    request: Request,
    _: Caller,
    state: str | None = None,
    kind: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    return [view(ctx, j) for j in ctx.store.list_jobs(limit=limit, state=state, kind=kind)]


@router.get("/{job_id}", summary="A job with its progress counts (and a trial's cost projection)")
def show(request: Request, _: Caller, job_id: str) -> dict[str, Any]:
    ctx = get_ctx(request)
    return view(ctx, load_job(ctx, job_id))


@router.post("/{job_id}/launch", summary="Launch a trial's full run: online or batch, local or Ray")
def launch_full_run(
    request: Request, _: Caller, job_id: str, options: job_ops.LaunchRequest | None = None
) -> dict[str, Any]:
    ctx = get_ctx(request)
    return view(ctx, launch_run(ctx, load_job(ctx, job_id), options))


@router.get("/{job_id}/launch-options", summary="A trial's projection redrawn for each way to run it")
def launch_options(request: Request, _: Caller, job_id: str) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    return launch.choices(projection_of(ctx, job), job.model, ctx.settings, ctx.options.ray_address)


@router.post("/{job_id}/{action}", summary="start, pause, resume or cancel a job")
def act(
    request: Request,
    _: Caller,
    job_id: str,
    action: Literal["start", "pause", "resume", "cancel"],
) -> dict[str, Any]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    return view(ctx, job_ops.request_control(ctx.store, job.id, action))


@router.delete("/{job_id}", status_code=204, summary="Delete a finished job and its items")
def remove(request: Request, _: Caller, job_id: str) -> None:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    if job.state in job_ops.ACTIVE:
        raise ApiError(409, f"Job {job.id} is {job.state}.", "Cancel it first, then delete it.")
    ctx.store.delete_job(job.id)
    live.forget(ctx.store, job.id)


@router.get("/{job_id}/items", summary="Results page by page, in catalog order")
def items(
    request: Request,
    _: Caller,
    job_id: str,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=1000),
    status: str | None = None,
    review: str | None = None,
) -> dict[str, Any]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    page = [
        item_view(i)
        for i in ctx.store.items(job.id, status=status, review=review, offset=offset, limit=limit)
    ]
    return {
        "offset": offset,
        "limit": limit,
        "items": page,
        "next_offset": offset + len(page) if len(page) == limit else None,
    }


@router.get("/{job_id}/results", summary="Results a merchandiser scans: original beside generated, flags")
def results_view(
    request: Request,
    _: Caller,
    job_id: str,
    status: Annotated[
        results.StatusFilter | None, Query(description="an item status or a review state")
    ] = None,
    check: str | None = Query(None, max_length=64, description="only items on which this check failed"),
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    return results.results_page(ctx.store, job, status=status, check=check, offset=offset, limit=limit)


@router.get("/{job_id}/events", summary="Live progress as server-sent events, until the job stops")
async def events(
    request: Request,
    _: Caller,
    job_id: str,
    interval: float = Query(0.5, ge=0.1, le=10),
) -> StreamingResponse:
    ctx = get_ctx(request)
    load_job(ctx, job_id)
    return StreamingResponse(
        progress_stream(request, ctx, job_id, interval),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def progress_stream(
    request: Request, ctx: ServiceContext, job_id: str, interval: float
) -> AsyncIterator[bytes]:
    last = b""
    while True:
        data = await asyncio.to_thread(lambda: view(ctx, ctx.store.get_job(job_id)))
        body = orjson.dumps(data)
        if body != last:
            yield b"event: progress\ndata: " + body + b"\n\n"
            last = body
        if data["state"] in TERMINAL or await request.is_disconnected():
            yield b"event: end\ndata: " + orjson.dumps({"state": data["state"]}) + b"\n\n"
            return
        await asyncio.sleep(interval)


@router.get("/{job_id}/export", summary="Download the enriched catalog in any supported format")
def export(
    request: Request,
    _: Caller,
    job_id: str,
    format: str | None = Query(None, description=", ".join(EXPORT_FORMATS)),
    approved_only: bool = False,
) -> FileResponse:
    from skuforge.engine.export import export_job

    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    name = catalog_name(ctx, job)
    fmt = format or SUPPORTED_FORMATS.get("." + name.rsplit(".", 1)[-1].lower(), "xlsx")
    if fmt not in EXPORT_FORMATS:
        raise ApiError(
            422,
            f"Unknown export format '{fmt}'.",
            f"Use one of: {', '.join(EXPORT_FORMATS)}.",
            code="validation_error",
        )
    ext = {"tsv": ".tsv", "xlsx": ".xlsx", "csv": ".csv", "jsonl": ".jsonl", "parquet": ".parquet"}[fmt]
    target = ctx.exports_dir / f"{job.id}{ext}"
    summary = export_job(ctx.store, job, target, fmt=fmt, approved_only=approved_only)
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return FileResponse(
        summary.path,
        filename=f"{stem}-{job.id}{ext}",
        headers={"X-Skuforge-Rows": str(summary.rows), "Cache-Control": "no-store"},
    )


@router.get("/{job_id}/projection", summary="A trial's projection of the full run's cost")
def projection(request: Request, _: Caller, job_id: str) -> dict[str, Any]:
    ctx = get_ctx(request)
    return projection_of(ctx, load_job(ctx, job_id))


def projection_of(ctx: ServiceContext, job: Job) -> dict[str, Any]:
    """The stored projection of a finished trial, computed (and stored) now if the worker has not yet."""
    saved = (job.totals or {}).get("projection")
    if saved or job.kind != "trial" or job.state != "done":
        return saved or {}
    projected = bridge.projection(ctx.store, job, ctx.settings)
    ctx.store.update_job(job.id, totals={**ctx.store.get_job(job.id).totals, "projection": projected})
    return projected
