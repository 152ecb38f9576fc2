"""Console pages for schedules: list and create, then per schedule edit, pause or resume, run now, delete,
and its job history. The cron field previews itself in plain words as the operator types (console.js asks
GET /api/schedules/preview); the page also renders that preview, so it reads right without JavaScript.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from skuforge.errors import UserError
from skuforge.recipes import list_recipes
from skuforge.service import cron, schedules
from skuforge.service.api import schedules as schedule_api
from skuforge.service.console.pages import ConsoleUser, checked_form, parse_params, see
from skuforge.service.console.render import language, page
from skuforge.service.context import ServiceContext, get_ctx
from skuforge.service.errors import ApiError
from skuforge.service.uploads import CatalogFiles

router = APIRouter(include_in_schema=False)
ACTIONS = ("enable", "disable", "run", "delete")


def form_choices(ctx: ServiceContext) -> dict[str, Any]:
    """What the schedule form offers: catalogs, recipes, models, and whether Ray is there."""
    return {
        "catalogs": CatalogFiles(ctx.catalogs_dir, 0).list(),
        "recipes": [r for r in list_recipes(ctx.settings.recipe_dirs) if r.problem is None],
        "models": ctx.model_choices(),
        "model_value": ctx.model_value(),
        "ray": bool(ctx.options.ray_address),
    }


def request_from(form: dict[str, str]) -> schedules.ScheduleRequest:
    """The schedule a console form describes; a bad field is a 422 page that names it."""
    budget = form.get("max_cost", "").strip()
    try:
        return schedules.ScheduleRequest(
            name=form.get("name", "").strip(),
            cron=form.get("cron", "").strip(),
            catalog=form.get("catalog", ""),
            recipe=form.get("recipe", ""),
            model=form.get("model") or None,
            params=parse_params(form.get("params", "")),
            where=form.get("where") or None,
            mode=form.get("mode") or "online",
            executor=form.get("executor") or "local",
            max_cost=float(budget) if budget else None,
            enabled=form.get("enabled", "on") == "on",
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = f"The schedule's {field} is not valid: {first['msg']}."
        raise ApiError(422, message, "Correct it and save again.") from exc
    except ValueError as exc:
        message = f"The budget '{budget}' is not a number."
        raise ApiError(
            422, message, "Give the budget in dollars, e.g. 5 or 12.50, or leave it empty."
        ) from exc


def preview(expr: str, lang: str) -> dict[str, Any]:
    try:
        runs = cron.next_runs(expr, time.time())
        next_text = [cron.stamp(t) for t in runs]
        return {"valid": True, "description": cron.describe(expr, lang), "next": next_text}
    except UserError as exc:
        return {"valid": False, "error": exc.message}


@router.get("/schedules")
def schedules_page(request: Request, _: ConsoleUser) -> Response:
    ctx = get_ctx(request)
    lang = language(request)
    entries = [schedule_api.public(ctx, e, lang) for e in schedules.list_all(ctx.store)]
    for entry in entries:
        entry["next_text"] = [cron.stamp(t) for t in entry["next_runs"]]
    draft: dict[str, Any] = {"cron": "0 2 * * *", "enabled": True, "spec": {"recipe": "attributes"}}
    return page(
        request,
        "schedules.html",
        schedules=entries,
        draft=draft,
        draft_preview=preview(draft["cron"], lang),
        **form_choices(ctx),
    )


@router.post("/console/schedules")
async def create(request: Request, identity: ConsoleUser) -> Response:
    form = await checked_form(request, identity)
    ctx = get_ctx(request)
    req = request_from(form)
    entry = schedules.add(ctx.store, req.name, req.cron, schedule_api.spec_for(ctx, req), enabled=req.enabled)
    return see(f"/schedules/{entry['id']}")


@router.get("/schedules/{schedule_id}")
def schedule_page(request: Request, _: ConsoleUser, schedule_id: str) -> Response:
    ctx = get_ctx(request)
    lang = language(request)
    entry = schedule_api.public(ctx, schedules.get(ctx.store, schedule_id), lang)
    entry["next_text"] = [cron.stamp(t) for t in entry["next_runs"]]
    return page(
        request,
        "schedule.html",
        s=entry,
        draft=entry,
        draft_preview=preview(entry["cron"], lang),
        history=schedules.history(ctx.store, schedule_id),
        **form_choices(ctx),
    )


@router.post("/console/schedules/{schedule_id}")
async def edit(request: Request, identity: ConsoleUser, schedule_id: str) -> Response:
    form = await checked_form(request, identity)
    ctx = get_ctx(request)
    schedules.get(ctx.store, schedule_id)
    req = request_from(form)
    schedules.update_schedule(
        ctx.store, schedule_id, name=req.name, cron_expr=req.cron, spec=schedule_api.spec_for(ctx, req),
        enabled=req.enabled,
    )  # fmt: skip
    return see(f"/schedules/{schedule_id}")


@router.post("/console/schedules/{schedule_id}/{action}")
async def act(request: Request, identity: ConsoleUser, schedule_id: str, action: str) -> Response:
    await checked_form(request, identity)
    ctx = get_ctx(request)
    if action not in ACTIONS:
        raise ApiError(404, f"Unknown schedule action '{action}'.", f"Use one of: {', '.join(ACTIONS)}.")
    if action == "delete":
        schedules.remove(ctx.store, schedule_id)
        return see("/schedules")
    if action == "run":
        schedules.run_now(ctx.store, schedule_id)
    else:
        schedules.set_enabled(ctx.store, schedule_id, action == "enable")
    return see(f"/schedules/{schedule_id}")
