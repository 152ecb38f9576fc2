"""The job store: jobs, items (one per product x step x variant), budget ledgers, reviews and schedules.

SQLite in WAL mode under SKUFORGE_HOME by default, or any SQLAlchemy URL (PostgreSQL for a shared service).
Item outcomes go through one writer thread that commits whatever has arrived as one transaction (group
commit), so the event loop never waits on the disk. `record(..., on_durable=...)` calls back once the
outcome is committed: an executor holds a request's slot until then, so a kill -9 loses only requests still
in flight, never an answer the process has read and acknowledged.

Earlier work is found by product, never by position: `prior(job, row_ids)` returns the items of those rows
and `finished_by_keys(job, keys)` the finished items with those item keys (a row that moved, or an identical
row elsewhere in the catalog, reuses them).
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from skuforge.errors import ConfigError, NotFoundError
from skuforge.store.records import FINISHED, ItemOutcome, ItemRecord, Job, JobCounts, LedgerState
from skuforge.store.schema import SCHEMA_VERSION, answers, items, jobs, ledgers, meta, metadata

_JOB_JSON = ("params", "selection", "settings", "totals")
_ANSWER_COLUMNS = (
    "job_id", "key", "row_id", "step", "variant", "status", "output", "error", "findings", "meta",
    "updated_at",
)  # fmt: skip
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


Durable = Callable[[BaseException | None], None]
"""Called once an outcome is committed, with None; or with the error that stopped the commit."""


@dataclass(slots=True)
class _Outcome:
    job_id: str
    outcome: ItemOutcome
    on_durable: Durable | None = None


@dataclass(slots=True)
class _Spend:
    job_id: str
    figures: LedgerState


class _Writer(threading.Thread):
    """Commits queued item outcomes and ledger figures in groups, then calls each outcome's `on_durable`.

    `flush()` waits until everything queued is durable."""

    def __init__(self, store: Store) -> None:
        super().__init__(name="skuforge-store-writer", daemon=True)
        self.store = store
        self.queue: queue.Queue[_Outcome | _Spend | None] = queue.Queue()
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < 4096:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            outcomes = [b for b in batch if isinstance(b, _Outcome)]
            figures = {b.job_id: b.figures for b in batch if isinstance(b, _Spend)}  # the latest per job
            try:
                if (outcomes or figures) and self.error is None:
                    self.store._write(outcomes, figures)
            except BaseException as exc:  # surfaced to the caller on the next record/flush
                self.error = exc
            for entry in outcomes:
                if entry.on_durable is not None:
                    entry.on_durable(self.error)
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
                for index in items.indexes:  # a store from an older version lacks the newer indexes
                    index.create(conn, checkfirst=True)
                row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
                if row is None:
                    conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                elif int(row[0]) < SCHEMA_VERSION:
                    self._upgrade(conn, int(row[0]))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise ConfigError(
                        f"The store {self.url} was written by a newer skuforge (schema {row[0]}).",
                        "Upgrade skuforge, or point SKUFORGE_HOME / --store at another store.",
                    )
        except OperationalError as exc:
            raise ConfigError(
                f"Cannot use the store at {self.url}: {exc.orig}", "Check the path or URL."
            ) from exc

    def _upgrade(self, conn: Any, version: int) -> None:
        """Bring an older store up to SCHEMA_VERSION (tables and indexes are created by create_all)."""
        if version < 2:  # schema 2 keeps finished answers by key: fill it from the items stored so far
            names = list(_ANSWER_COLUMNS)
            source = select(*(items.c[n] for n in names)).where(
                items.c.status.in_(FINISHED), items.c.key != ""
            )
            stmt = self._insert(answers).from_select(names, source)
            conn.execute(stmt.on_conflict_do_nothing())
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT (for ON CONFLICT clauses)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        return insert(table)

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
            conn.execute(ledgers.delete().where(ledgers.c.job_id == job_id))
            conn.execute(answers.delete().where(answers.c.job_id == job_id))
            conn.execute(jobs.delete().where(jobs.c.id == job_id))

    # -- items -----------------------------------------------------------------------------------------
    def record(self, job_id: str, outcomes: Iterable[ItemOutcome], on_durable: Durable | None = None) -> None:
        """Queue outcomes for the writer thread; `on_durable` is called (in that thread) once all of them
        are committed."""
        writer = self._live_writer()
        entries = list(outcomes)
        for i, outcome in enumerate(entries):
            writer.queue.put(_Outcome(job_id, outcome, on_durable if i == len(entries) - 1 else None))
        if not entries and on_durable is not None:
            on_durable(None)

    def record_spend(self, job_id: str, figures: LedgerState) -> None:
        """Queue the job's ledger figures (absolute totals); committed with the next group of outcomes."""
        self._live_writer().queue.put(_Spend(job_id, figures))

    def _live_writer(self) -> _Writer:
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = _Writer(self)
                self._writer.start()
        if self._writer.error is not None:
            raise self._writer.error
        return self._writer

    def flush(self) -> None:
        """Block until every queued outcome is committed."""
        writer = self._writer
        if writer is not None:
            writer.queue.join()
            if writer.error is not None:
                raise writer.error

    def _write(self, batch: list[_Outcome], figures: dict[str, LedgerState]) -> None:
        now = time.time()
        rows = []
        for entry in batch:
            o, job_id = entry.outcome, entry.job_id
            row = asdict(o)
            for name in _ITEM_JSON:
                row[name] = _dumps(row[name])
            row["cached"] = int(o.cached)
            row.update(job_id=job_id, updated_at=now)
            rows.append(row)
        finished = [  # answers paid for now; a reused one (no attempt) is already there
            {k: r[k] for k in _ANSWER_COLUMNS}
            for r in rows
            if r["status"] in FINISHED and r["key"] and not (r["attempts"] == 0 and r["cached"])
        ]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self._upsert(), rows)
            if finished:
                conn.execute(self._upsert_answers(), finished)
            for job_id, state in figures.items():
                self._put_ledger(conn, job_id, spent=state.spent, uncertain=state.uncertain)

    # -- the budget ledger -----------------------------------------------------------------------------
    def open_ledger(self, job_id: str) -> LedgerState:
        """The job's spend so far, at the start of a run. What a previous run held for requests in flight
        and never settled (it was killed) is moved to `uncertain`: it may have been charged."""
        self.flush()
        with self.engine.begin() as conn:
            row = conn.execute(select(ledgers).where(ledgers.c.job_id == job_id)).first()
            if row is None:
                spent = float(
                    conn.execute(
                        select(func.coalesce(func.sum(items.c.cost), 0.0)).where(items.c.job_id == job_id)
                    ).scalar_one()
                )  # a job from before the ledger: what its items cost
                self._put_ledger(conn, job_id, spent=spent, uncertain=0.0, held=0.0)
                return LedgerState(spent=spent)
            state = LedgerState(spent=row.spent, uncertain=row.uncertain + row.held)
            if row.held:
                self._put_ledger(conn, job_id, uncertain=state.uncertain, held=0.0)
            return state

    def ledger(self, job_id: str) -> LedgerState:
        """The job's ledger as stored now (held: what the run in progress has reserved)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ledgers).where(ledgers.c.job_id == job_id)).first()
        if row is None:
            return LedgerState()
        return LedgerState(spent=row.spent, uncertain=row.uncertain, held=row.held)

    def hold(self, job_id: str, amount: float) -> None:
        """Make a reservation durable before the requests it covers are sent (a direct commit)."""
        with self.engine.begin() as conn:
            self._put_ledger(conn, job_id, held=amount)

    def _put_ledger(self, conn: Any, job_id: str, **values: float) -> None:
        values_at = {**values, "updated_at": time.time()}
        done = conn.execute(update(ledgers).where(ledgers.c.job_id == job_id).values(**values_at))
        if done.rowcount == 0:
            conn.execute(
                ledgers.insert().values(
                    job_id=job_id, **{"spent": 0.0, "uncertain": 0.0, "held": 0.0, **values_at}
                )
            )

    def _upsert(self) -> Any:
        """The insert-or-update of items, built once: building it costs more than writing a few rows."""
        if (built := self.__dict__.get("_upsert_stmt")) is not None:
            return built
        stmt = self._insert(items)
        keep = ("job_id", "row_id", "step", "variant")
        changed = {c.name: stmt.excluded[c.name] for c in items.columns if c.name not in keep}
        self._upsert_stmt = stmt.on_conflict_do_update(
            index_elements=["job_id", "row_id", "step", "variant"], set_=changed
        )
        return self._upsert_stmt

    def _upsert_answers(self) -> Any:
        if (built := self.__dict__.get("_answers_stmt")) is not None:
            return built
        stmt = self._insert(answers)
        changed = {c: stmt.excluded[c] for c in _ANSWER_COLUMNS if c not in ("job_id", "key")}
        self._answers_stmt = stmt.on_conflict_do_update(index_elements=["job_id", "key"], set_=changed)
        return self._answers_stmt

    def _item_from_row(self, row: Any) -> ItemRecord:
        data = dict(row._mapping)
        for name in _ITEM_JSON:
            data[name] = _loads(data[name])
        data["cached"] = bool(data["cached"])
        return ItemRecord(**data)

    def has_items(self, job_id: str) -> bool:
        """Whether any item of the job is stored (a first run needs no lookups)."""
        self.flush()
        with self.engine.connect() as conn:
            query = select(items.c.row_id).where(items.c.job_id == job_id).limit(1)
            return conn.execute(query).first() is not None

    def prior(self, job_id: str, row_ids: Sequence[str]) -> dict[tuple[str, str, str], ItemRecord]:
        """The items of these rows, by (row_id, step, variant): one query per chunk of rows."""
        found: dict[tuple[str, str, str], ItemRecord] = {}
        with self.engine.connect() as conn:
            for part in _parts(list(dict.fromkeys(row_ids))):
                query = select(items).where(items.c.job_id == job_id, items.c.row_id.in_(part))
                for r in conn.execute(query):
                    item = self._item_from_row(r)
                    found[(item.row_id, item.step, item.variant)] = item
        return found

    def finished_by_keys(self, job_id: str, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """The job's finished answer for each of these item keys that has one (whatever row it was for)."""
        found: dict[str, ItemRecord] = {}
        wanted = [k for k in dict.fromkeys(keys) if k]
        with self.engine.connect() as conn:
            for part in _parts(wanted):
                query = select(answers).where(answers.c.job_id == job_id, answers.c.key.in_(part))
                for r in conn.execute(query):
                    data = dict(r._mapping)
                    for name in _ITEM_JSON:
                        data[name] = _loads(data[name])
                    found[r.key] = ItemRecord(**data, row_index=-1)
        return found

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
_IN_LIMIT = 500  # values per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def _parts(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), _IN_LIMIT):
        yield values[start : start + _IN_LIMIT]


def open_store(url: str | None = None) -> Store:
    """Open (and create or migrate) the store at `url`, default the one in Settings / SKUFORGE_HOME."""
    if url is None:
        from skuforge.config import load_settings

        url = load_settings().store_url()
    return Store(url)
