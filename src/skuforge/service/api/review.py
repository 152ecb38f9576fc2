"""/api/jobs/{id}/review: the review queue, approve / reject / edit, rollback, and the audit trail."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from skuforge.service import bridge
from skuforge.service.api.jobs import load_job
from skuforge.service.auth import Caller
from skuforge.service.context import ServiceContext, get_ctx

router = APIRouter(prefix="/api/jobs/{job_id}/review", tags=["review"])


class ItemRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    row_id: str = Field(max_length=200)
    step: str = Field(max_length=64)
    variant: str = Field("", max_length=64)


class Decision(ItemRef):
    action: Literal["approve", "reject", "edit"]
    output: Any = Field(None, description="the corrected output (object, or text for a one-field output)")
    comment: str | None = Field(None, max_length=2000)
    expected_key: str | None = Field(
        None, description="refuse if the item was regenerated since it was shown"
    )


def queue_page(
    ctx: ServiceContext, job_id: str, offset: int, limit: int, status: str = "pending"
) -> list[dict[str, Any]]:
    job = load_job(ctx, job_id)
    return bridge.review_queue(ctx.store, job.id, status=status, offset=offset, limit=limit)


@router.get("", summary="Items waiting for review (or in another review state), each with its source row")
def queue(
    request: Request,
    _: Caller,
    job_id: str,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
    status: Literal["pending", "flagged", "approved", "rejected", "edited", "all"] = "pending",
) -> dict[str, Any]:
    return {"items": queue_page(get_ctx(request), job_id, offset, limit, status)}


@router.post("", summary="Approve, reject or edit one item (recorded in the audit trail)")
def decide(request: Request, identity: Caller, job_id: str, decision: Decision) -> dict[str, Any]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    d = decision
    return bridge.decide(
        ctx.store, job.id, d.row_id, d.step, d.variant, action=d.action, who=identity.user, output=d.output,
        comment=d.comment, expected_key=d.expected_key,
    )  # fmt: skip


@router.post("/rollback", summary="Undo the latest edit of one item")
def rollback(request: Request, identity: Caller, job_id: str, ref: ItemRef) -> dict[str, Any]:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    return bridge.rollback(ctx.store, job.id, ref.row_id, ref.step, ref.variant, who=identity.user)


@router.get("/history", summary="The audit trail: who changed what, when, with before and after")
def history(request: Request, _: Caller, job_id: str, row_id: str | None = None) -> list[dict[str, Any]]:
    ctx = get_ctx(request)
    return bridge.history(ctx.store, load_job(ctx, job_id).id, row_id)
