"""/api/catalogs: upload (multipart field `file`, or a raw body with ?filename=), list, preview, replace,
delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from skuforge.catalog import open_catalog
from skuforge.service.auth import Caller, Identity, check_csrf
from skuforge.service.context import get_ctx
from skuforge.service.errors import ApiError
from skuforge.service.formdata import MultipartUpload, boundary_of, check_declared_size, raw_chunks
from skuforge.service.uploads import CatalogFiles, StoredCatalog, check_id

router = APIRouter(prefix="/api/catalogs", tags=["catalogs"])


def files(request: Request) -> CatalogFiles:
    ctx = get_ctx(request)
    return CatalogFiles(ctx.catalogs_dir, ctx.options.max_upload_bytes)


async def receive(
    request: Request, identity: Identity, filename: str | None, replace: str | None = None
) -> StoredCatalog:
    """Store the upload in the request body (multipart or raw), enforcing size and type while it streams."""
    store = files(request)
    check_declared_size(request, store.max_bytes)
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        if not filename:
            raise ApiError(
                400,
                "A raw upload needs ?filename=<name.ext>.",
                "Add ?filename=catalog.xlsx, or send multipart/form-data with a 'file' field.",
            )
        return await store.save(filename, raw_chunks(request), replace=replace)
    upload = MultipartUpload(request, boundary)
    name = await upload.open()
    stored = await store.save(name, upload.chunks(), replace=replace)
    if identity.via == "session":
        try:
            check_csrf(identity, upload.fields.get("csrf") or request.headers.get("x-csrf-token"))
        except ApiError:
            store.delete(stored.id)
            raise
    return stored


def preview_rows(stored: StoredCatalog, limit: int) -> dict[str, Any]:
    catalog = open_catalog(stored.path)
    rows: list[dict[str, Any]] = []
    for row in catalog.rows():
        if len(rows) >= limit:
            break
        rows.append({"row_id": row.row_id, "data": row.data})
    return {"catalog": stored.public(), "columns": catalog.columns, "rows": rows, "notes": catalog.notes}


@router.post("", status_code=201, summary="Upload a catalog (xlsx, csv, tsv, jsonl, parquet)")
async def upload(
    request: Request,
    identity: Caller,
    filename: str | None = Query(None, description="for raw uploads"),
) -> dict[str, Any]:
    return (await receive(request, identity, filename)).public()


@router.get("", summary="List uploaded catalogs, newest first")
def list_catalogs(request: Request, _: Caller) -> list[dict[str, Any]]:
    return [c.public() for c in files(request).list()]


@router.get("/{catalog_id}", summary="Preview a catalog: columns and the first rows")
def preview(
    request: Request, _: Caller, catalog_id: str, rows: int = Query(20, ge=1, le=500)
) -> dict[str, Any]:
    return preview_rows(files(request).get(check_id(catalog_id)), rows)


@router.put("/{catalog_id}", summary="Replace a catalog's contents (a new version of the same source)")
async def replace(
    request: Request,
    identity: Caller,
    catalog_id: str,
    filename: str | None = Query(None),
) -> dict[str, Any]:
    files(request).get(check_id(catalog_id))
    return (await receive(request, identity, filename, replace=catalog_id)).public()


@router.delete("/{catalog_id}", status_code=204, summary="Delete a catalog")
def delete(request: Request, _: Caller, catalog_id: str) -> None:
    files(request).delete(check_id(catalog_id))
