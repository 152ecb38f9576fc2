"""/api/jobs/{id}/review: the review queue, approve / reject / edit, rollback, the audit trail, and the
Excel round trip (download the review workbook, upload it back: the format of `skuforge review export`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from skuforge.service import bridge, reviews
from skuforge.service.api.jobs import catalog_name, load_job
from skuforge.service.auth import Caller, Identity, check_csrf
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.service.errors import ApiError
from skuforge.service.formdata import MultipartUpload, boundary_of, check_declared_size, raw_chunks
from skuforge.service.uploads import check_content, clean_name, too_large

QueueStatus = Literal["pending", "flagged", "approved", "rejected", "edited", "all"]

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
    ctx: ServiceContext, job_id: str, offset: int, limit: int, status: str = "pending",
    check: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    job = load_job(ctx, job_id)
    if check:
        return reviews.queue_by_check(
            ctx.store, job.id, status=status, check=check, offset=offset, limit=limit
        )
    return bridge.review_queue(ctx.store, job.id, status=status, offset=offset, limit=limit)


@router.get("", summary="Items waiting for review (or in another review state), each with its source row")
def queue(
    request: Request,
    _: Caller,
    job_id: str,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
    status: QueueStatus = "pending",
    check: str | None = Query(None, max_length=64, description="only items on which this check failed"),
) -> dict[str, Any]:
    return {"items": queue_page(get_ctx(request), job_id, offset, limit, status, check)}


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


@router.get("/workbook", summary="Download the review workbook (as `skuforge review export`)")
def workbook(request: Request, _: Caller, job_id: str, status: QueueStatus = "pending") -> FileResponse:
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    target = ctx.exports_dir / f"{job.id}-review-{secrets.token_hex(4)}.xlsx"
    written = reviews.export_workbook(ctx.store, job.id, target, status=status)
    stem = catalog_name(ctx, job).rsplit(".", 1)[0]
    return FileResponse(
        written.path,
        filename=f"{stem}-{job.id}-review.xlsx",
        headers={"X-Skuforge-Rows": str(written.rows), "Cache-Control": "no-store"},
        background=BackgroundTask(Path(written.path).unlink, missing_ok=True),
    )


@router.post("/workbook", summary="Upload a reviewed workbook and apply it (as `skuforge review import`)")
async def import_workbook(request: Request, identity: Caller, job_id: str) -> dict[str, Any]:
    """Multipart field `file` (or a raw body). Each row applies on its own; the report lists every row that
    could not be applied, with its row number in the sheet and the reason."""
    ctx = get_ctx(request)
    job = load_job(ctx, job_id)
    path = await receive_workbook(request, identity, ctx)
    try:
        return reviews.import_workbook(ctx.store, job.id, path, who=identity.user)
    finally:
        path.unlink(missing_ok=True)


async def receive_workbook(request: Request, identity: Identity, ctx: ServiceContext) -> Path:
    """Stream an uploaded .xlsx to a private file, under the upload size limit; checked to be a workbook."""
    limit = ctx.options.max_upload_bytes
    check_declared_size(request, limit)
    boundary = boundary_of(request.headers.get("content-type", ""))
    upload = MultipartUpload(request, boundary) if boundary else None
    name = clean_name(await upload.open() if upload else request.query_params.get("filename", "review.xlsx"))
    if not name.lower().endswith(".xlsx"):
        raise ApiError(
            415, f"'{name}' is not an Excel workbook.", "Upload the .xlsx you downloaded, saved as .xlsx."
        )
    folder = ctx.home / "review-imports"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{secrets.token_hex(8)}.xlsx"
    size = 0
    try:
        with target.open("wb") as out:
            async for chunk in upload.chunks() if upload else raw_chunks(request):
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                out.write(chunk)
        if size == 0:
            raise ApiError(400, f"'{name}' is empty.", "Upload the review workbook you downloaded.")
        check_content(target, "xlsx", name)
        if identity.via == "session":
            field = upload.fields.get("csrf") if upload else None
            check_csrf(identity, field or request.headers.get("x-csrf-token"))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
