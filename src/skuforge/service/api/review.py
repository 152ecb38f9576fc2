"""/api/jobs/{id}/review: the review queue, approve / reject / edit (with an audit trail), history."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from skuforge.service import bridge
from skuforge.service.api.jobs import item_view, load_job
from skuforge.service.auth import Caller
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.store import Job

router = APIRouter(prefix="/api/jobs/{job_id}/review", tags=["review"])


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row_id: str = Field(max_length=200)
    step: str = Field(max_length=64)
    variant: str = Field("", max_length=64)
    action: Literal["approve", "reject", "edit"]
    output: Any = Field(None, description="the corrected output, for action 'edit'")
    comment: str | None = Field(None, max_length=2000)


def source_rows(ctx: ServiceContext, job: Job, row_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The catalog rows behind a page of review items, opened exactly as the runner opened them
    (same id column); one streaming pass that stops when every row is found."""
    if not row_ids:
        return {}
    from skuforge.engine.runner import Runner

    runner = Runner(ctx.store, job, settings=ctx.settings)
    runner.prepare_for_export()
    found: dict[str, dict[str, Any]] = {}
    for row in runner.catalog.rows():
        if row.row_id in row_ids:
            found[row.row_id] = row.data
            if len(found) == len(row_ids):
                break
    return found


def queue_page(ctx: ServiceContext, job_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
    job = load_job(ctx, job_id)
    items = bridge.review_queue(ctx.store, job.id, offset=offset, limit=limit)
    sources = source_rows(ctx, job, {i.row_id for i in items})
    return [{**item_view(i), "source": sources.get(i.row_id, {})} for i in items]


@router.get("", summary="Items waiting for review, each with its source row")
def queue(
    request: Request,
    _: Caller,
    job_id: str,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    return {"items": queue_page(get_ctx(request), job_id, offset, limit)}


@router.post("", summary="Approve, reject or edit one item")
def decide(request: Request, identity: Caller, job_id: str, decision: Decision) -> dict[str, Any]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    item = bridge.decide(
        ctx.store,
        job.id,
        decision.row_id,
        decision.step,
        decision.variant,
        action=decision.action,
        who=identity.user,
        output=decision.output,
        comment=decision.comment,
    )
    return item_view(item)


@router.get("/history", summary="The audit trail: who decided what, when, with before and after")
def history(request: Request, _: Caller, job_id: str, row_id: str | None = None) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    return bridge.history(ctx.store, load_job(ctx, job_id).id, row_id)
