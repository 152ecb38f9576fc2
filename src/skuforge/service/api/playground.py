"""/api/try: run one product through a recipe and stream the model's tokens as they come (SSE).

For quick prompt iteration: the recipe's first step is rendered for one row (a row of an uploaded catalog,
or fields typed in), and the provider's `stream()` pieces are sent as `token` events, then a `done` event
with the parsed output (or the parse error).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from skuforge.catalog import open_catalog
from skuforge.errors import NotFoundError, SkuforgeError
from skuforge.providers.choice import choose_model
from skuforge.recipes import load_recipe
from skuforge.service import jobs as job_ops
from skuforge.service.auth import Caller
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.service.uploads import CatalogFiles, check_id

router = APIRouter(prefix="/api/try", tags=["try"])


class TryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipe: str
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    catalog: str | None = Field(None, description="an uploaded catalog id; with row_id or row_index")
    row_id: str | None = None
    row_index: int = Field(0, ge=0)
    row: dict[str, Any] | None = Field(None, description="product fields, instead of a catalog row")


def pick_row(ctx: ServiceContext, req: TryRequest) -> tuple[dict[str, Any], str]:
    if req.row is not None:
        return req.row, "the product typed in"
    if req.catalog is None:
        raise NotFoundError("Give a catalog id and a row, or the product's fields as 'row'.")
    stored = CatalogFiles(ctx.catalogs_dir, 0).get(check_id(req.catalog))
    for row in open_catalog(stored.path).rows():
        if row.row_id == req.row_id or (req.row_id is None and row.index == req.row_index):
            return row.data, row.line
    raise NotFoundError(
        f"Catalog '{stored.name}' has no row '{req.row_id or req.row_index}'.",
        "Preview the catalog to see its row ids.",
    )


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def token_stream(ctx: ServiceContext, req: TryRequest) -> AsyncIterator[bytes]:
    from skuforge.providers import get_provider

    try:
        recipe = load_recipe(req.recipe, ctx.settings.recipe_dirs)
        data, label = pick_row(ctx, req)
        params = recipe.resolve_params(req.params)
        step = recipe.steps[0]
        variant = step.variants(params)[0]
        request = step.build_request(data, {}, variant, params, row_label=label)
        if request is None:
            yield sse("done", {"skipped": True, "message": "The recipe has nothing to ask for this product."})
            return
        chosen = choose_model(req.model, ctx.settings, recipe).model
        provider = get_provider(job_ops.check_model(chosen, ctx.settings), ctx.settings)
        yield sse("prompt", {"messages": [m.model_dump() for m in request.messages]})
        pieces: list[str] = []
        try:
            async for piece in provider.stream(request):
                pieces.append(piece)
                yield sse("token", piece)
        finally:
            await provider.aclose()
        try:
            output: Any = step.parse("".join(pieces))
            yield sse("done", {"output": output})
        except SkuforgeError as exc:
            yield sse("done", {"error": exc.message})
    except SkuforgeError as exc:
        yield sse("error", {"error": {"code": "error", "message": exc.message, "hint": exc.hint}})


@router.post("", summary="Stream one product through a recipe (server-sent events)")
async def try_one(request: Request, _: Caller, req: TryRequest) -> StreamingResponse:
    return StreamingResponse(
        token_stream(get_ctx(request), req),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
