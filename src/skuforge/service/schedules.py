"""Recurring jobs: a cron expression and a job spec, fired by the worker.

Each firing creates (or re-queues) the run for the same spec. Because a run's items are keyed by the hash
of the rendered request, a nightly schedule over a catalog that is replaced each day (PUT
/api/catalogs/{id}) regenerates only the new and changed rows; unchanged rows cost nothing.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select, update

from skuforge.engine.spec import JobSpec
from skuforge.errors import NotFoundError, UserError, require
from skuforge.store import Store
from skuforge.store.schema import schedules

log = logging.getLogger("skuforge.schedules")


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    cron: str = Field(description="five-field cron, e.g. '0 2 * * *' for 02:00 every night (UTC)")
    catalog: str = Field(description="an uploaded catalog id")
    recipe: str
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    where: str | None = None
    enabled: bool = True


def check_cron(expr: str) -> str:
    croniter = require("croniter", "Schedules", "service")
    if not croniter.croniter.is_valid(expr):
        raise UserError(
            f"'{expr}' is not a cron expression.",
            "Use five fields: minute hour day month weekday, e.g. '0 2 * * *' (02:00 daily).",
        )
    return expr


def next_fire(expr: str, after: float) -> float:
    croniter = require("croniter", "Schedules", "service")
    base = datetime.fromtimestamp(after, tz=UTC)
    return float(croniter.croniter(expr, base).get_next(float))


def _view(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["spec"] = orjson.loads(data["spec"])
    data["enabled"] = bool(data["enabled"])
    data["next_run_at"] = (
        next_fire(data["cron"], data["last_run_at"] or data["created_at"]) if data["enabled"] else None
    )
    return data


def add(store: Store, name: str, cron: str, spec: JobSpec, *, enabled: bool = True) -> dict[str, Any]:
    schedule_id = f"s-{secrets.token_hex(6)}"
    with store.engine.begin() as conn:
        conn.execute(
            schedules.insert().values(
                id=schedule_id,
                name=name,
                cron=check_cron(cron),
                spec=spec.model_dump_json(),
                enabled=int(enabled),
                created_at=time.time(),
            )
        )
    return get(store, schedule_id)


def get(store: Store, schedule_id: str) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise NotFoundError(f"No schedule '{schedule_id[:60]}'.", "List schedules with GET /api/schedules.")
    return _view(row)


def list_all(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [_view(r) for r in conn.execute(select(schedules).order_by(schedules.c.created_at))]


def remove(store: Store, schedule_id: str) -> None:
    get(store, schedule_id)
    with store.engine.begin() as conn:
        conn.execute(delete(schedules).where(schedules.c.id == schedule_id))


def set_enabled(store: Store, schedule_id: str, enabled: bool) -> dict[str, Any]:
    get(store, schedule_id)
    with store.engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(enabled=int(enabled)))
    return get(store, schedule_id)


def fire_due(store: Store, now: float | None = None) -> list[str]:
    """Create the job of every enabled schedule whose next time has come; returns the job ids.

    The `last_run_at` update is conditional on the value read, so two workers never fire one schedule twice.
    """
    from skuforge.service import jobs as job_ops

    now = time.time() if now is None else now
    fired = []
    for entry in list_all(store):
        if not entry["enabled"] or entry["next_run_at"] is None or entry["next_run_at"] > now:
            continue
        with store.engine.begin() as conn:
            won = (
                conn.execute(
                    update(schedules)
                    .where(
                        schedules.c.id == entry["id"],
                        schedules.c.last_run_at.is_(entry["last_run_at"])
                        if entry["last_run_at"] is None
                        else schedules.c.last_run_at == entry["last_run_at"],
                    )
                    .values(last_run_at=now)
                ).rowcount
                == 1
            )
        if not won:
            continue
        try:
            job = job_ops.create(store, JobSpec.model_validate(entry["spec"]))
        except UserError as exc:
            log.error("schedule %s (%s) could not start: %s", entry["id"], entry["name"], exc)
            continue
        with store.engine.begin() as conn:
            conn.execute(update(schedules).where(schedules.c.id == entry["id"]).values(last_job_id=job.id))
        fired.append(job.id)
    return fired
