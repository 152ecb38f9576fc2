"""Recurring jobs: a cron expression and a job spec, fired by the worker, or at once with `run_now`.

Each firing creates (or re-queues) the run for the same spec. Because a run's items are keyed by the hash
of the rendered request, a nightly schedule over a catalog that is replaced each day (PUT
/api/catalogs/{id}) regenerates only the new and changed rows; unchanged rows cost nothing.

Every firing is written to `schedule_runs` (when, why: cron or run-now, which job), so each schedule shows
its job history. A firing's figures count the job's items whose current version it wrote (written between
that firing and the next): an incremental run writes only new and changed rows, so the first night shows
the whole catalog and later nights what changed; an item rewritten later moves to the later firing, and a
reviewer's decision in a window counts there too. Times are UTC; `service.cron` says an expression in
plain words.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, delete, func, insert, select, update

from skuforge.engine.spec import JobSpec
from skuforge.errors import NotFoundError, UserError
from skuforge.service import cron
from skuforge.store import Store
from skuforge.store.schema import items, schedules

log = logging.getLogger("skuforge.schedules")
HISTORY = 20
"""Firings shown per schedule, newest first."""

run_metadata = MetaData()
schedule_runs = Table(
    "schedule_runs",
    run_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule_id", String(40), nullable=False, index=True),
    Column("job_id", String(40), nullable=False),
    Column("trigger", String(16), nullable=False),  # cron | manual
    Column("fired_at", Float, nullable=False),
)


class ScheduleRequest(BaseModel):
    """What the API and the console send to add or edit a schedule."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    cron: str = Field(description="five-field cron in UTC, e.g. '0 2 * * *' for 02:00 every night")
    catalog: str = Field(description="an uploaded catalog id")
    recipe: str
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    where: str | None = None
    mode: Literal["online", "batch"] = Field(
        "online", description="online, or batch (the provider's batch API: half price, within 24 h)"
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="local, or ray (when the service has a Ray cluster)"
    )
    max_cost: float | None = Field(None, ge=0, description="stop each firing before it spends more")
    enabled: bool = True


def check_cron(expr: str) -> str:
    return cron.check(expr)


def next_fire(expr: str, after: float) -> float:
    return cron.next_runs(expr, after, 1)[0]


def ensure_tables(store: Store) -> None:
    """Create `schedule_runs` if this store has not got it yet (one look-up when it has)."""
    run_metadata.create_all(store.engine)


def _view(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["spec"] = orjson.loads(data["spec"])
    data["enabled"] = bool(data["enabled"])
    data["next_run_at"] = (
        next_fire(data["cron"], data["last_run_at"] or data["created_at"]) if data["enabled"] else None
    )
    return data


def add(store: Store, name: str, cron_expr: str, spec: JobSpec, *, enabled: bool = True) -> dict[str, Any]:
    schedule_id = f"s-{secrets.token_hex(6)}"
    with store.engine.begin() as conn:
        conn.execute(
            schedules.insert().values(
                id=schedule_id,
                name=name,
                cron=check_cron(cron_expr),
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


def update_schedule(
    store: Store, schedule_id: str, *, name: str, cron_expr: str, spec: JobSpec, enabled: bool
) -> dict[str, Any]:
    """Replace a schedule's name, cron, spec and state; its history stays. A new cron counts from now."""
    before = get(store, schedule_id)
    values: dict[str, Any] = {"name": name, "cron": check_cron(cron_expr), "spec": spec.model_dump_json()}
    if values["cron"] != before["cron"] or (enabled and not before["enabled"]):
        values["last_run_at"] = time.time()  # the next slot of the new timing, no catch-up firing
    values["enabled"] = int(enabled)
    with store.engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**values))
    return get(store, schedule_id)


def remove(store: Store, schedule_id: str) -> None:
    get(store, schedule_id)
    ensure_tables(store)
    with store.engine.begin() as conn:
        conn.execute(delete(schedules).where(schedules.c.id == schedule_id))
        conn.execute(delete(schedule_runs).where(schedule_runs.c.schedule_id == schedule_id))


def set_enabled(store: Store, schedule_id: str, enabled: bool) -> dict[str, Any]:
    """Pause or resume. A resumed schedule fires at its next slot from now, not for the slots it missed."""
    before = get(store, schedule_id)
    values: dict[str, Any] = {"enabled": int(enabled)}
    if enabled and not before["enabled"]:
        values["last_run_at"] = time.time()
    with store.engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == schedule_id).values(**values))
    return get(store, schedule_id)


def _start(store: Store, entry: dict[str, Any], trigger: str) -> str:
    """Create or re-queue the schedule's run and write the firing, at the time it happens, to its
    history; returns the job id."""
    from skuforge.service import jobs as job_ops

    job = job_ops.create(store, JobSpec.model_validate(entry["spec"]))
    ensure_tables(store)
    with store.engine.begin() as conn:
        conn.execute(update(schedules).where(schedules.c.id == entry["id"]).values(last_job_id=job.id))
        conn.execute(
            insert(schedule_runs).values(
                schedule_id=entry["id"], job_id=job.id, trigger=trigger, fired_at=time.time()
            )
        )
    return job.id


def run_now(store: Store, schedule_id: str) -> str:
    """Fire a schedule at once (paused or not); its cron timing is unchanged. Returns the job id."""
    return _start(store, get(store, schedule_id), "manual")


def fire_due(store: Store, now: float | None = None) -> list[str]:
    """Create the job of every enabled schedule whose next time has come; returns the job ids.

    The `last_run_at` update is conditional on the value read, so two workers never fire one schedule twice.
    """
    now = time.time() if now is None else now
    fired = []
    for entry in list_all(store):
        if not entry["enabled"] or entry["next_run_at"] is None or entry["next_run_at"] > now:
            continue
        last = schedules.c.last_run_at
        seen = last.is_(None) if entry["last_run_at"] is None else last == entry["last_run_at"]
        with store.engine.begin() as conn:
            query = update(schedules).where(schedules.c.id == entry["id"], seen).values(last_run_at=now)
            won = conn.execute(query).rowcount == 1
        if not won:
            continue
        try:
            fired.append(_start(store, entry, "cron"))
        except UserError as exc:
            log.error("schedule %s (%s) could not start: %s", entry["id"], entry["name"], exc)
    return fired


def history(store: Store, schedule_id: str, limit: int = HISTORY) -> list[dict[str, Any]]:
    """The schedule's firings, newest first, each with the job's current items it wrote (and their cost)."""
    get(store, schedule_id)
    ensure_tables(store)
    store.flush()
    query = (
        select(schedule_runs)
        .where(schedule_runs.c.schedule_id == schedule_id)
        .order_by(schedule_runs.c.fired_at.desc(), schedule_runs.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        runs = [dict(r._mapping) for r in conn.execute(query)]
        until: float | None = None
        for run in runs:
            run.update(_written(conn, run["job_id"], run["fired_at"], until))
            until = run["fired_at"]
    states = {}
    for run in runs:
        if run["job_id"] not in states:
            try:
                states[run["job_id"]] = store.get_job(run["job_id"]).state
            except NotFoundError:
                states[run["job_id"]] = "deleted"
        run["job_state"] = states[run["job_id"]]
    return runs


def _written(conn: Any, job_id: str, since: float, until: float | None) -> dict[str, Any]:
    where = [items.c.job_id == job_id, items.c.updated_at >= since]
    if until is not None:
        where.append(items.c.updated_at < until)
    count, flagged, failed, cost = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum((items.c.status == "flagged").cast(Integer)), 0),
            func.coalesce(func.sum((items.c.status == "failed").cast(Integer)), 0),
            func.coalesce(func.sum(items.c.cost), 0.0),
        ).where(*where)
    ).one()
    return {"items": int(count), "flagged": int(flagged), "failed": int(failed), "cost": float(cost)}
