"""The FastAPI application: REST API under /api, the web console at /, a worker in the background.

    from skuforge.service import ServiceOptions, create_app
    app = create_app(ServiceOptions(token="s3cret"))      # uvicorn.run(app) or TestClient(app)

Every route but /login and /static needs the token (see `service.auth`); every error has one JSON shape
(see `service.errors`). The OpenAPI document is at /openapi.json (with the token) and rendered at /docs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from skuforge import __version__ as version
from skuforge.config import Settings
from skuforge.providers.base import Provider
from skuforge.service import errors, live, schedules
from skuforge.service.api import catalogs, jobs, playground, recipes, review
from skuforge.service.api import schedules as schedule_api
from skuforge.service.auth import Caller
from skuforge.service.context import ServiceContext, ServiceOptions, build_context
from skuforge.service.worker import Worker

log = logging.getLogger("skuforge.service")
STATIC = Path(__file__).parent / "console" / "static"


def create_app(
    options: ServiceOptions,
    *,
    store_url: str | None = None,
    settings: Settings | None = None,
    provider_factory: Callable[[str], Provider] | None = None,
) -> FastAPI:
    """Build the app. The store opens now; the worker (when `options.run_worker`) starts with the app."""
    ctx = build_context(options, store_url, settings)
    schedules.ensure_tables(ctx.store)  # the service's own tables: schedule firings, live job figures
    live.ensure_tables(ctx.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if options.run_worker:
            worker = Worker(
                ctx.store,
                ctx.settings,
                concurrency=options.worker_concurrency,
                poll_s=options.worker_poll_s,
                lease_s=options.lease_s,
                provider_factory=provider_factory,
            )
            worker.start_thread()
        app.state.worker = worker
        try:
            yield
        finally:
            if worker is not None:
                worker.join()
            ctx.store.close()

    app = FastAPI(
        title="skuforge",
        version=str(version),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="Enrich e-commerce catalogs with generated content. Every call needs "
        '\'Authorization: Bearer <token>\'; every error is {"error": {"code", "message", "hint"}}.',
    )
    app.state.ctx = ctx
    errors.install(app)
    for module in (
        catalogs,
        recipes,
        review,
        jobs,
        schedule_api,
        playground,
    ):  # review before jobs/{id}/{action}
        app.include_router(module.router)
    _meta_routes(app, ctx)
    from skuforge.service.console import pages, review_pages, schedule_pages

    for console in (review_pages, schedule_pages, pages):  # /jobs/{id}/review before /jobs/{id}
        app.include_router(console.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _meta_routes(app: FastAPI, ctx: ServiceContext) -> None:
    @app.get("/api/health", tags=["service"], summary="Liveness, store dialect and the worker's state")
    def health(request: Request, _: Caller) -> dict[str, Any]:
        worker = request.app.state.worker if hasattr(request.app.state, "worker") else None
        return {
            "ok": True,
            "version": str(version),
            "store": ctx.store.dialect,
            "worker": {"in_process": worker is not None, "running": sorted(worker.running) if worker else []},
            "local_models": _loaded_local_models(),
        }

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Caller) -> dict[str, Any]:
        return app.openapi()


def _loaded_local_models() -> list[str]:
    """The local model files this process holds in memory: one copy each, shared by every job and the
    playground (see `providers.local.shared_model`)."""
    try:
        from skuforge.providers.local import loaded_models
    except ImportError:  # the local extra is not installed
        return []
    return sorted(path.name for path in loaded_models())
