"""The job store: jobs, items (one per product x step x variant), reviews and schedules.

SQLite in WAL mode under SKUFORGE_HOME by default, or any SQLAlchemy URL (PostgreSQL for a shared service).
Item outcomes go through one writer thread that commits whatever has arrived as one transaction (group
commit), so the event loop never waits on the disk and a kill -9 loses only outcomes not yet handed over.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from skuforge.errors import ConfigError, NotFoundError
from skuforge.store.records import FINISHED, ItemOutcome, ItemRecord, Job, JobCounts
from skuforge.store.schema import SCHEMA_VERSION, items, jobs, meta, metadata

_JOB_JSON = ("params", "selection", "settings", "totals")
_ITEM_JSON = ("output", "findings", "meta")


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def new_job_id() -> str:
    return f"j-{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError(
            f"Cannot open the store at {url.split('@')[-1]}: {exc}",
            "Use a URL like sqlite:///path/skuforge.db or postgresql+psycopg://user@host/db.",
        ) from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class _Writer(threading.Thread):
    """Commits queued item outcomes in groups; `flush()` waits until everything queued is durable."""

    def __init__(self, store: Store) -> None:
        super().__init__(name="skuforge-store-writer", daemon=True)
        self.store = store
        self.queue: queue.Queue[tuple[str, ItemOutcome] | None] = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            first = self.queue.get()
            batch = [first]
            while len(batch) < 4096:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            rows = [b for b in batch if b is not None]
            try:
                if rows and self.error is None:
                    self.store._write_items(rows)
            except BaseException as exc:  # surfaced to the caller on the next record/flush
                self.error = exc
            for _ in batch:
                self.queue.task_done()
            if None in batch:
                return


class Store:
    """All persistent state. Create with `open_store()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._migrate()
        self._writer: _Writer | None = None
        self._lock = threading.Lock()

    # -- schema ----------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
                if row is None:
                    conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise ConfigError(
                        f"The store {self.url} was written by a newer skuforge (schema {row[0]}).",
                        "Upgrade skuforge, or point SKUFORGE_HOME / --store at another store.",
                    )
        except OperationalError as exc:
            raise ConfigError(
                f"Cannot use the store at {self.url}: {exc.orig}", "Check the path or URL."
            ) from exc

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None
        self.engine.dispose()

    # -- jobs ------------------------------------------------------------------------------------------
    def create_job(
        self, *, kind: str, catalog: str, recipe: str, fingerprint: str = "", **fields: Any
    ) -> Job:
        now = time.time()
        job = Job(
            id=fields.pop("id", None) or new_job_id(),
            kind=kind,
            state=fields.pop("state", "draft"),
            fingerprint=fingerprint or secrets.token_hex(8),
            catalog=catalog,
            recipe=recipe,
            created_at=now,
            updated_at=now,
            **fields,
        )
        row = asdict(job)
        for name in _JOB_JSON:
            row[name] = _dumps(row[name]) or "{}"
        with self.engine.begin() as conn:
            conn.execute(jobs.insert().values(**row))
        return job

    def _job_from_row(self, row: Any) -> Job:
        data = dict(row._mapping)
        for name in _JOB_JSON:
            data[name] = _loads(data[name]) or {}
        return Job(**data)

    def get_job(self, job_id: str) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                near = (
                    conn.execute(select(jobs.c.id).where(jobs.c.id.like(f"%{job_id}%")).limit(5))
                    .scalars()
                    .all()
                )
        if row is None:
            hint = f"Did you mean {', '.join(near)}?" if near else "List jobs with `skuforge jobs`."
            raise NotFoundError(f"No job '{job_id}' in the store {self.url}.", hint)
        return self._job_from_row(row)

    def find_job(self, fingerprint: str, kind: str = "run") -> Job | None:
        """The newest job of `kind` with this fingerprint (same catalog, recipe, model, params, selection)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(jobs)
                .where(jobs.c.fingerprint == fingerprint, jobs.c.kind == kind)
                .order_by(jobs.c.created_at.desc())
                .limit(1)
            ).first()
        return self._job_from_row(row) if row else None

    def list_jobs(self, *, limit: int = 50, state: str | None = None, kind: str | None = None) -> list[Job]:
        query = select(jobs).order_by(jobs.c.created_at.desc()).limit(limit)
        if state:
            query = query.where(jobs.c.state == state)
        if kind:
            query = query.where(jobs.c.kind == kind)
        with self.engine.connect() as conn:
            return [self._job_from_row(r) for r in conn.execute(query)]

    def update_job(self, job_id: str, **fields: Any) -> None:
        for name in _JOB_JSON:
            if name in fields:
                fields[name] = _dumps(fields[name]) or "{}"
        fields["updated_at"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**fields))

    def set_state(self, job_id: str, state: str, error: str | None = None) -> None:
        self.update_job(job_id, state=state, error=error)

    def delete_job(self, job_id: str) -> None:
        self.flush()
        with self.engine.begin() as conn:
            conn.execute(items.delete().where(items.c.job_id == job_id))
            conn.execute(jobs.delete().where(jobs.c.id == job_id))

    # -- items -----------------------------------------------------------------------------------------
    def record(self, job_id: str, outcomes: Iterable[ItemOutcome]) -> None:
        """Queue outcomes for the writer thread; they are committed within milliseconds."""
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = _Writer(self)
                self._writer.start()
        if self._writer.error is not None:
            raise self._writer.error
        for outcome in outcomes:
            self._writer.queue.put((job_id, outcome))

    def flush(self) -> None:
        """Block until every queued outcome is committed."""
        writer = self._writer
        if writer is not None:
            writer.queue.join()
            if writer.error is not None:
                raise writer.error

    def _write_items(self, batch: list[tuple[str, ItemOutcome]]) -> None:
        now = time.time()
        rows = []
        for job_id, o in batch:
            row = asdict(o)
            for name in _ITEM_JSON:
                row[name] = _dumps(row[name])
            row["cached"] = int(o.cached)
            row.update(job_id=job_id, updated_at=now)
            rows.append(row)
        stmt = self._upsert()
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def _upsert(self) -> Any:
        """The insert-or-update of items, built once: building it costs more than writing a few rows."""
        if (built := self.__dict__.get("_upsert_stmt")) is not None:
            return built
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(items)
        keep = ("job_id", "row_id", "step", "variant")
        changed = {c.name: stmt.excluded[c.name] for c in items.columns if c.name not in keep}
        self._upsert_stmt = stmt.on_conflict_do_update(
            index_elements=["job_id", "row_id", "step", "variant"], set_=changed
        )
        return self._upsert_stmt

    def _item_from_row(self, row: Any) -> ItemRecord:
        data = dict(row._mapping)
        for name in _ITEM_JSON:
            data[name] = _loads(data[name])
        data["cached"] = bool(data["cached"])
        return ItemRecord(**data)

    def items_in_range(self, job_id: str, first: int, last: int) -> list[ItemRecord]:
        """Items whose row_index is in [first, last]: the engine's resume lookup, one query per chunk."""
        query = select(items).where(
            items.c.job_id == job_id, items.c.row_index >= first, items.c.row_index <= last
        )
        with self.engine.connect() as conn:
            return [self._item_from_row(r) for r in conn.execute(query)]

    def items(
        self,
        job_id: str,
        *,
        status: str | Iterable[str] | None = None,
        review: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        batch: int = 2000,
    ) -> Iterator[ItemRecord]:
        """Items of a job in catalog order, streamed page by page."""
        base = select(items).where(items.c.job_id == job_id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            base = base.where(items.c.status.in_(wanted))
        if review is not None:
            base = base.where(items.c.review == review)
        base = base.order_by(items.c.row_index, items.c.step, items.c.variant)
        yielded, position = 0, offset
        while limit is None or yielded < limit:
            size = batch if limit is None else min(batch, limit - yielded)
            with self.engine.connect() as conn:
                page = [self._item_from_row(r) for r in conn.execute(base.offset(position).limit(size))]
            yield from page
            yielded += len(page)
            position += len(page)
            if len(page) < size:
                return

    def get_item(self, job_id: str, row_id: str, step: str, variant: str = "") -> ItemRecord:
        query = select(items).where(
            items.c.job_id == job_id,
            items.c.row_id == row_id,
            items.c.step == step,
            items.c.variant == variant,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(
                f"Job {job_id} has no item for row '{row_id}', step '{step}' {variant}".rstrip()
            )
        return self._item_from_row(row)

    def update_item(self, job_id: str, row_id: str, step: str, variant: str = "", **fields: Any) -> None:
        for name in _ITEM_JSON:
            if name in fields:
                fields[name] = _dumps(fields[name])
        fields["updated_at"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                update(items)
                .where(
                    items.c.job_id == job_id,
                    items.c.row_id == row_id,
                    items.c.step == step,
                    items.c.variant == variant,
                )
                .values(**fields)
            )

    def counts(self, job_id: str) -> JobCounts:
        query = (
            select(
                items.c.status,
                func.count(),
                func.sum(items.c.input_tokens),
                func.sum(items.c.output_tokens),
                func.sum(items.c.cost),
                func.sum(items.c.attempts),
                func.count(func.distinct(items.c.row_id)),
            )
            .where(items.c.job_id == job_id)
            .group_by(items.c.status)
        )
        counts = JobCounts()
        with self.engine.connect() as conn:
            for status, n, tin, tout, cost, attempts, _rows in conn.execute(query):
                if status in ("done", "flagged", "failed", "skipped"):
                    setattr(counts, status, n)
                counts.input_tokens += tin or 0
                counts.output_tokens += tout or 0
                counts.cost += cost or 0.0
                counts.requests += attempts or 0
            counts.rows = conn.execute(
                select(func.count(func.distinct(items.c.row_id))).where(items.c.job_id == job_id)
            ).scalar_one()
        return counts


_FINISHED = FINISHED


def open_store(url: str | None = None) -> Store:
    """Open (and create or migrate) the store at `url`, default the one in Settings / SKUFORGE_HOME."""
    if url is None:
        from skuforge.config import load_settings

        url = load_settings().store_url()
    return Store(url)
