"""The web console's pages: login, upload, recipe and model, trial preview, run, review, download, try one.

Pages are server-rendered; forms POST back here with the session's CSRF token and are answered with a
redirect (post/redirect/get). Live progress and token streaming use the JSON/SSE API with the same session.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from skuforge.catalog import SUPPORTED_FORMATS
from skuforge.recipes import list_recipes
from skuforge.service import jobs as job_ops
from skuforge.service import launch, live
from skuforge.service.api import catalogs as catalog_api
from skuforge.service.api import jobs as job_api
from skuforge.service.auth import Identity, check_csrf, end_session, identify, same_token, start_session
from skuforge.service.console.render import page
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.service.errors import ApiError
from skuforge.service.uploads import CatalogFiles, check_id

router = APIRouter(include_in_schema=False)


def console_user(request: Request) -> Identity:
    return identify(request, get_ctx(request).options.token)


ConsoleUser = Annotated[Identity, Depends(console_user)]


async def checked_form(request: Request, identity: Identity) -> dict[str, str]:
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(identity, values.get("csrf"))
    return values


def see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(target: str | None) -> str:
    """Only same-site paths: '/jobs/x' yes, '//evil.example' or 'https://...' no."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return page(request, "login.html", next=safe_next(next), failed=False)


@router.post("/login")
async def login(request: Request) -> Response:
    ctx = get_ctx(request)
    form = await request.form()
    given = str(form.get("token", "")).strip()
    target = safe_next(str(form.get("next", "/")))
    if not given or not same_token(given, ctx.options.token):
        return page(request, "login.html", status=401, next=target, failed=True)
    response = see(target)
    start_session(
        response, ctx.options.token, str(form.get("user", "")).strip(), secure=ctx.options.secure_cookies
    )
    return response


@router.post("/logout")
async def logout(request: Request, identity: ConsoleUser) -> Response:
    await checked_form(request, identity)
    response = see("/login")
    end_session(response, secure=get_ctx(request).options.secure_cookies)
    return response


@router.get("/")
def home(request: Request, _: ConsoleUser) -> Response:
    ctx = get_ctx(request)
    files = CatalogFiles(ctx.catalogs_dir, ctx.options.max_upload_bytes)
    recent = [job_api.view(ctx, j) for j in ctx.store.list_jobs(limit=10)]
    return page(
        request,
        "home.html",
        catalogs=files.list(),
        jobs=recent,
        limit_mb=ctx.options.max_upload_bytes // (1024 * 1024),
        accept=",".join(SUPPORTED_FORMATS),
    )


@router.post("/console/upload")
async def upload(request: Request, identity: ConsoleUser) -> Response:
    stored = await catalog_api.receive(request, identity, None)
    return see(f"/catalogs/{stored.id}")


@router.post("/console/catalogs/{catalog_id}/delete")
async def delete_catalog(request: Request, identity: ConsoleUser, catalog_id: str) -> Response:
    await checked_form(request, identity)
    ctx = get_ctx(request)
    CatalogFiles(ctx.catalogs_dir, 0).delete(check_id(catalog_id))
    return see("/")


@router.get("/catalogs/{catalog_id}")
def catalog_page(request: Request, _: ConsoleUser, catalog_id: str) -> Response:
    ctx = get_ctx(request)
    stored = CatalogFiles(ctx.catalogs_dir, 0).get(check_id(catalog_id))
    preview = catalog_api.preview_rows(stored, 6)
    recipes = [r for r in list_recipes(ctx.settings.recipe_dirs) if r.problem is None]
    return page(
        request,
        "catalog.html",
        stored=stored,
        preview=preview,
        recipes=recipes,
        models=ctx.model_choices(),
        model_value=ctx.model_value(),
        trial_rows=ctx.options.trial_rows,
    )


def parse_params(text: str) -> dict[str, str]:
    params = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            params[key.strip()] = value.strip()
    return params


@router.post("/console/trial")
async def start_trial(request: Request, identity: ConsoleUser) -> Response:
    form = await checked_form(request, identity)
    ctx = get_ctx(request)
    sample = int(form["sample"]) if form.get("sample", "").isdigit() else None
    req = job_ops.JobRequest(
        catalog=form.get("catalog", ""),
        recipe=form.get("recipe", ""),
        model=form.get("model") or None,
        where=form.get("where") or None,
        params=parse_params(form.get("params", "")),
        sample=sample,
    )
    # the checks before queueing ask the model's server (a blocking preflight): off the event loop
    job = await run_in_threadpool(job_api.create_job, ctx, req, "trial")
    return see(f"/jobs/{job.id}")


@router.get("/jobs")
def jobs_page(request: Request, _: ConsoleUser) -> Response:
    ctx = get_ctx(request)
    return page(request, "jobs.html", jobs=[job_api.view(ctx, j) for j in ctx.store.list_jobs(limit=100)])


def trial_preview(ctx: ServiceContext, job_id: str) -> list[dict[str, Any]]:
    items = [job_api.item_view(i) for i in ctx.store.items(job_id, limit=50)]
    return items


@router.get("/jobs/{job_id}")
def job_page(request: Request, _: ConsoleUser, job_id: str) -> Response:
    ctx = get_ctx(request)
    job = job_api.load_job(ctx, job_id)
    data = job_api.view(ctx, job)
    data["projection"] = job_api.projection_of(ctx, job) or None
    children = [j for j in ctx.store.list_jobs(limit=200, kind="run") if j.parent_id == job.id]
    choices = []
    if job.kind == "trial" and job.state == "done":
        choices = launch.choices(data["projection"], job.model, ctx.settings, ctx.options.ray_address)
    return page(
        request,
        "job.html",
        job=data,
        items=trial_preview(ctx, job.id) if job.kind == "trial" else [],
        child=children[0].id if children else None,
        formats=job_api.EXPORT_FORMATS,
        choices=choices,
        stalled_s=live.STALLED_S,
    )


def launch_options(form: dict[str, str]) -> job_ops.LaunchRequest:
    """The launch form's choices: mode, executor and an optional budget."""
    budget = form.get("max_cost", "").strip()
    try:
        return job_ops.LaunchRequest(
            mode=form.get("mode") or "online",
            executor=form.get("executor") or "local",
            max_cost=float(budget) if budget else None,
        )
    except (ValueError, ValidationError) as exc:
        raise ApiError(
            422, f"The launch options are not valid: {exc}".splitlines()[0],
            "Choose online or batch, local or Ray, and a budget in dollars (or none).",
        ) from exc  # fmt: skip


@router.post("/console/jobs/{job_id}/{action}")
async def job_action(request: Request, identity: ConsoleUser, job_id: str, action: str) -> Response:
    form = await checked_form(request, identity)
    ctx = get_ctx(request)
    job = job_api.load_job(ctx, job_id)
    if action == "launch":
        run = job_api.launch_run(ctx, job, launch_options(form))
        return see(f"/jobs/{run.id}")
    job_ops.request_control(ctx.store, job.id, action)
    return see(f"/jobs/{job.id}")


@router.get("/jobs/{job_id}/download")
def download(
    request: Request,
    identity: ConsoleUser,
    job_id: str,
    format: str | None = None,
    approved_only: bool = False,
) -> Response:
    return job_api.export(request, identity, job_id, format, approved_only)


@router.get("/try")
def try_page(request: Request, _: ConsoleUser, catalog: str | None = None) -> Response:
    ctx = get_ctx(request)
    recipes = [r for r in list_recipes(ctx.settings.recipe_dirs) if r.problem is None]
    files = CatalogFiles(ctx.catalogs_dir, 0).list()
    return page(
        request,
        "try.html",
        recipes=recipes,
        models=ctx.model_choices(),
        model_value=ctx.model_value(),
        catalogs=files,
        chosen=catalog,
    )


@router.get("/docs")
def api_docs(request: Request, _: ConsoleUser) -> Response:
    spec = request.app.openapi()
    routes = [
        (path, method.upper(), op.get("summary", ""))
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    return page(request, "docs.html", routes=routes)
