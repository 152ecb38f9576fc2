"""Console pages after a run: the results view, the review queue (filters, rollback) and the Excel round trip.

The review queue's decisions and rollbacks go through the JSON API from console.js (with the session's
CSRF header); the workbook upload is a plain multipart form answered with the import report.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from skuforge.service import bridge, results, reviews
from skuforge.service.api import jobs as job_api
from skuforge.service.api import review as review_api
from skuforge.service.console.pages import ConsoleUser
from skuforge.service.console.render import page
from skuforge.service.context import ServiceContext, get_ctx

router = APIRouter(include_in_schema=False)
QUEUE_TABS = ("pending", "flagged", "edited", "approved", "rejected", "all")
PAGE = 100


def _status(value: str | None, allowed: tuple[str, ...], default: str | None) -> str | None:
    return value if value in allowed else default


def _decisions(ctx: ServiceContext, job_id: str, items: list[dict[str, Any]]) -> None:
    """Attach the latest decision (who, what, when) to each decided item of a page."""
    for item in items:
        if item.get("review") in (None, "pending"):
            continue
        trail = [
            h for h in bridge.history(ctx.store, job_id, item["row_id"])
            if h["step"] == item["step"] and h.get("variant", "") == item["variant"]
        ]  # fmt: skip
        item["last_decision"] = trail[-1] if trail else None


@router.get("/jobs/{job_id}/review")
def review_page(
    request: Request,
    _: ConsoleUser,
    job_id: str,
    status: str | None = None,
    check: str | None = Query(None, max_length=64),
    offset: int = Query(0, ge=0),
) -> Response:
    ctx = get_ctx(request)
    job = job_api.load_job(ctx, job_id)
    tab = _status(status, QUEUE_TABS, "pending") or "pending"
    check = check or None
    items = review_api.queue_page(ctx, job.id, offset, PAGE + 1, tab, check)
    more, items = len(items) > PAGE, items[:PAGE]
    _decisions(ctx, job.id, items)
    return page(
        request,
        "review.html",
        job=job_api.view(ctx, job),
        items=items,
        tab=tab,
        tabs=QUEUE_TABS,
        check=check,
        checks=reviews.check_names(ctx.store, job),
        offset=offset,
        next_url=_url(f"/jobs/{job.id}/review", status=tab, check=check, offset=offset + PAGE)
        if more
        else None,
        prev_url=_url(f"/jobs/{job.id}/review", status=tab, check=check, offset=max(0, offset - PAGE))
        if offset
        else None,
    )


def _url(path: str, **query: Any) -> str:
    kept = {k: v for k, v in query.items() if v not in (None, "", 0)}
    return f"{path}?{urlencode(kept)}" if kept else path


@router.post("/console/jobs/{job_id}/review/import")
async def import_workbook(request: Request, identity: ConsoleUser, job_id: str) -> Response:
    ctx = get_ctx(request)
    job = job_api.load_job(ctx, job_id)
    path = await review_api.receive_workbook(request, identity, ctx)
    try:
        report = reviews.import_workbook(ctx.store, job.id, path, who=identity.user)
    finally:
        path.unlink(missing_ok=True)
    return page(request, "review_import.html", job=job_api.view(ctx, job), report=report)


@router.get("/jobs/{job_id}/review/workbook")
def download_workbook(
    request: Request, identity: ConsoleUser, job_id: str, status: str = "pending"
) -> Response:
    tab = _status(status, QUEUE_TABS, "pending") or "pending"
    return review_api.workbook(request, identity, job_id, tab)  # type: ignore[arg-type]


@router.get("/jobs/{job_id}/results")
def results_page(
    request: Request,
    _: ConsoleUser,
    job_id: str,
    status: str | None = None,
    check: str | None = Query(None, max_length=64),
    offset: int = Query(0, ge=0),
) -> Response:
    ctx = get_ctx(request)
    job = job_api.load_job(ctx, job_id)
    status = _status(status, results.FILTERS, None)
    data = results.results_page(ctx.store, job, status=status, check=check or None, offset=offset, limit=PAGE)
    base = f"/jobs/{job.id}/results"
    return page(
        request,
        "results.html",
        job=job_api.view(ctx, job),
        page_data=data,
        filters=results.FILTERS,
        next_url=_url(base, status=status, check=check, offset=data["next_offset"])
        if data["next_offset"]
        else None,
        prev_url=_url(base, status=status, check=check, offset=max(0, offset - PAGE)) if offset else None,
    )
