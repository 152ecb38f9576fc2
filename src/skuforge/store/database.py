"""The job store: jobs, items (one per product x step x variant), budget ledgers, reviews and schedules.

SQLite in WAL mode under SKUFORGE_HOME by default, or any SQLAlchemy URL (PostgreSQL for a shared service).
Its statements are plain SQL that both databases read (`store.sql`); on SQLite they run on Python's own
`sqlite3`, so a run on the default store does not import SQLAlchemy at all. Item outcomes go through one
writer thread that commits whatever has arrived as one transaction (group commit), so the event loop never
waits on the disk. `record(..., on_durable=...)` calls back once the outcome is committed: an executor holds
a request's slot until then, so a kill -9 loses only requests still in flight, never an answer the process
has read and acknowledged.

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
from dataclasses import dataclass, fields
from typing import Any

import orjson

from skuforge.errors import ConfigError, NotFoundError
from skuforge.store.records import FINISHED, ItemOutcome, ItemRecord, Job, JobCounts, LedgerState
from skuforge.store.sql import Database, DatabaseError, Transaction, in_list, open_database

SCHEMA_VERSION = 2
_JOB_JSON = ("params", "selection", "settings", "totals")
_JOB_COLUMNS = tuple(f.name for f in fields(Job))
_ITEM_COLUMNS = (*(f.name for f in fields(ItemOutcome)), "job_id", "updated_at")
_ANSWER_COLUMNS = (
    "job_id", "key", "row_id", "step", "variant", "status", "output", "error", "findings", "meta",
    "updated_at",
)  # fmt: skip
_ITEM_JSON = ("output", "findings", "meta")


def _upsert(table: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    """INSERT ... ON CONFLICT (keys) DO UPDATE: the same text on SQLite and PostgreSQL."""
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {changed}"
    )


_UPSERT_ITEM = _upsert("items", _ITEM_COLUMNS, ("job_id", "row_id", "step", "variant"))
_UPSERT_ANSWER = _upsert("answers", _ANSWER_COLUMNS, ("job_id", "key"))
_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join(':' + c for c in _JOB_COLUMNS)})"
)
_ONE_ITEM = "job_id = :w_job AND row_id = :w_row AND step = :w_step AND variant = :w_variant"


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def new_job_id() -> str:
    return f"j-{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}"


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
        self.db: Database = open_database(url)
        self.dialect = self.db.dialect
        self._migrate()
        self._writer: _Writer | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Any:
        """A SQLAlchemy engine on the store's database, for queries built with SQLAlchemy Core (the review
        log, the service); the store itself does not use it."""
        return self.db.engine

    # -- schema ----------------------------------------------------------------------------------------
    def _migrate(self) -> None:
        try:
            self.db.create_schema()
            with self.db.begin() as tx:
                found = tx.rows("SELECT value FROM skuforge_meta WHERE key = 'schema_version'")
                if not found:
                    tx.execute(
                        "INSERT INTO skuforge_meta (key, value) VALUES ('schema_version', :v)",
                        {"v": str(SCHEMA_VERSION)},
                    )
                elif int(found[0]["value"]) < SCHEMA_VERSION:
                    self._upgrade(tx, int(found[0]["value"]))
                elif int(found[0]["value"]) > SCHEMA_VERSION:
                    raise ConfigError(
                        f"The store {self.url} was written by a newer skuforge (schema {found[0]['value']}).",
                        "Upgrade skuforge, or point SKUFORGE_HOME / --store at another store.",
                    )
        except DatabaseError as exc:
            raise ConfigError(f"Cannot use the store at {self.url}: {exc}", "Check the path or URL.") from exc

    @staticmethod
    def _upgrade(tx: Transaction, version: int) -> None:
        """Bring an older store up to SCHEMA_VERSION (tables and indexes are created by create_schema)."""
        if version < 2:  # schema 2 keeps finished answers by key: fill it from the items stored so far
            names = ", ".join(_ANSWER_COLUMNS)
            done, params = in_list("s", FINISHED)
            tx.execute(
                f"INSERT INTO answers ({names}) SELECT {names} FROM items "
                f"WHERE status IN {done} AND key != '' ON CONFLICT DO NOTHING",
                params,
            )
        tx.execute(
            "UPDATE skuforge_meta SET value = :v WHERE key = 'schema_version'", {"v": str(SCHEMA_VERSION)}
        )

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.queue.put(None)
            self._writer.join(timeout=30)
            self._writer = None
        self.db.close()

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
        row = {name: getattr(job, name) for name in _JOB_COLUMNS}
        for name in _JOB_JSON:
            row[name] = _dumps(row[name]) or "{}"
        with self.db.begin() as tx:
            tx.execute(_INSERT_JOB, row)
        return job

    @staticmethod
    def _job_from_row(data: dict[str, Any]) -> Job:
        for name in _JOB_JSON:
            data[name] = _loads(data[name]) or {}
        return Job(**data)

    def get_job(self, job_id: str) -> Job:
        row = self.db.one("SELECT * FROM jobs WHERE id = :id", {"id": job_id})
        if row is None:
            near = self.db.rows("SELECT id FROM jobs WHERE id LIKE :near LIMIT 5", {"near": f"%{job_id}%"})
            hint = (
                f"Did you mean {', '.join(r['id'] for r in near)}?"
                if near
                else "List jobs with `skuforge jobs`."
            )
            raise NotFoundError(f"No job '{job_id}' in the store {self.url}.", hint)
        return self._job_from_row(row)

    def find_job(self, fingerprint: str, kind: str = "run") -> Job | None:
        """The newest job of `kind` with this fingerprint (same catalog, recipe, model, params, selection)."""
        row = self.db.one(
            "SELECT * FROM jobs WHERE fingerprint = :fp AND kind = :kind ORDER BY created_at DESC LIMIT 1",
            {"fp": fingerprint, "kind": kind},
        )
        return self._job_from_row(row) if row else None

    def list_jobs(self, *, limit: int = 50, state: str | None = None, kind: str | None = None) -> list[Job]:
        wanted = {name: value for name, value in (("state", state), ("kind", kind)) if value}
        where = " AND ".join(f"{name} = :{name}" for name in wanted)
        rows = self.db.rows(
            f"SELECT * FROM jobs {'WHERE ' + where if where else ''} ORDER BY created_at DESC LIMIT :limit",
            {**wanted, "limit": limit},
        )
        return [self._job_from_row(r) for r in rows]

    def update_job(self, job_id: str, **values: Any) -> None:
        unknown = set(values) - set(_JOB_COLUMNS)
        if unknown:
            raise ValueError(f"jobs has no column {', '.join(sorted(unknown))}")
        for name in _JOB_JSON:
            if name in values:
                values[name] = _dumps(values[name]) or "{}"
        values["updated_at"] = time.time()
        assigned = ", ".join(f"{name} = :{name}" for name in values)
        with self.db.begin() as tx:
            tx.execute(f"UPDATE jobs SET {assigned} WHERE id = :w_id", {**values, "w_id": job_id})

    def set_state(self, job_id: str, state: str, error: str | None = None) -> None:
        self.update_job(job_id, state=state, error=error)

    def delete_job(self, job_id: str) -> None:
        self.flush()
        with self.db.begin() as tx:
            for table in ("items", "ledgers", "answers"):
                tx.execute(f"DELETE FROM {table} WHERE job_id = :job", {"job": job_id})
            tx.execute("DELETE FROM jobs WHERE id = :job", {"job": job_id})

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
            o = entry.outcome
            row = {name: getattr(o, name) for name in _ITEM_COLUMNS[:-2]}
            for name in _ITEM_JSON:
                row[name] = _dumps(row[name])
            row.update(cached=int(o.cached), job_id=entry.job_id, updated_at=now)
            rows.append(row)
        finished = [  # answers paid for now; a reused one (no attempt) is already there
            {k: r[k] for k in _ANSWER_COLUMNS}
            for r in rows
            if r["status"] in FINISHED and r["key"] and not (r["attempts"] == 0 and r["cached"])
        ]
        with self.db.begin() as tx:
            if rows:
                tx.executemany(_UPSERT_ITEM, rows)
            if finished:
                tx.executemany(_UPSERT_ANSWER, finished)
            for job_id, state in figures.items():
                self._put_ledger(tx, job_id, spent=state.spent, uncertain=state.uncertain)

    # -- the budget ledger -----------------------------------------------------------------------------
    def open_ledger(self, job_id: str) -> LedgerState:
        """The job's spend so far, at the start of a run. What a previous run held for requests in flight
        and never settled (it was killed) is moved to `uncertain`: it may have been charged."""
        self.flush()
        with self.db.begin() as tx:
            found = tx.rows("SELECT * FROM ledgers WHERE job_id = :job", {"job": job_id})
            if not found:
                (total,) = tx.rows(
                    "SELECT sum(cost) AS spent FROM items WHERE job_id = :job", {"job": job_id}
                )
                spent = float(total["spent"] or 0.0)  # a job from before the ledger: what its items cost
                self._put_ledger(tx, job_id, spent=spent, uncertain=0.0, held=0.0)
                return LedgerState(spent=spent)
            row = found[0]
            state = LedgerState(spent=row["spent"], uncertain=row["uncertain"] + row["held"])
            if row["held"]:
                self._put_ledger(tx, job_id, uncertain=state.uncertain, held=0.0)
            return state

    def ledger(self, job_id: str) -> LedgerState:
        """The job's ledger as stored now (held: what the run in progress has reserved)."""
        row = self.db.one("SELECT * FROM ledgers WHERE job_id = :job", {"job": job_id})
        if row is None:
            return LedgerState()
        return LedgerState(spent=row["spent"], uncertain=row["uncertain"], held=row["held"])

    def hold(self, job_id: str, amount: float) -> None:
        """Make a reservation durable before the requests it covers are sent (a direct commit)."""
        with self.db.begin() as tx:
            self._put_ledger(tx, job_id, held=amount)

    @staticmethod
    def _put_ledger(tx: Transaction, job_id: str, **values: float) -> None:
        values_at = {**values, "updated_at": time.time()}
        assigned = ", ".join(f"{name} = :{name}" for name in values_at)
        if tx.execute(
            f"UPDATE ledgers SET {assigned} WHERE job_id = :job_id", {**values_at, "job_id": job_id}
        ):
            return
        row = {"job_id": job_id, "spent": 0.0, "uncertain": 0.0, "held": 0.0, **values_at}
        tx.execute(
            "INSERT INTO ledgers (job_id, spent, uncertain, held, updated_at) "
            "VALUES (:job_id, :spent, :uncertain, :held, :updated_at)",
            row,
        )

    @staticmethod
    def _item_from_row(data: dict[str, Any]) -> ItemRecord:
        for name in _ITEM_JSON:
            data[name] = _loads(data[name])
        data["cached"] = bool(data["cached"])
        return ItemRecord(**data)

    def has_items(self, job_id: str) -> bool:
        """Whether any item of the job is stored (a first run needs no lookups)."""
        self.flush()
        return (
            self.db.one("SELECT row_id FROM items WHERE job_id = :job LIMIT 1", {"job": job_id}) is not None
        )

    def has_sources(self, job_id: str) -> bool:
        """Whether any item of the job kept the passages it was written from (`meta.sources`)."""
        query = "SELECT row_id FROM items WHERE job_id = :job AND meta LIKE :sources LIMIT 1"
        return self.db.one(query, {"job": job_id, "sources": '%"sources"%'}) is not None

    def prior(self, job_id: str, row_ids: Sequence[str]) -> dict[tuple[str, str, str], ItemRecord]:
        """The items of these rows, by (row_id, step, variant): one query per chunk of rows."""
        found: dict[tuple[str, str, str], ItemRecord] = {}
        for part in _parts(list(dict.fromkeys(row_ids))):
            wanted, params = in_list("r", part)
            for r in self.db.rows(
                f"SELECT * FROM items WHERE job_id = :job AND row_id IN {wanted}", {**params, "job": job_id}
            ):
                item = self._item_from_row(r)
                found[(item.row_id, item.step, item.variant)] = item
        return found

    def finished_by_keys(self, job_id: str, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """The job's finished answer for each of these item keys that has one (whatever row it was for)."""
        found: dict[str, ItemRecord] = {}
        for part in _parts([k for k in dict.fromkeys(keys) if k]):
            wanted, params = in_list("k", part)
            for data in self.db.rows(
                f"SELECT * FROM answers WHERE job_id = :job AND key IN {wanted}", {**params, "job": job_id}
            ):
                for name in _ITEM_JSON:
                    data[name] = _loads(data[name])
                found[data["key"]] = ItemRecord(**data, row_index=-1)
        return found

    def items_in_range(self, job_id: str, first: int, last: int) -> list[ItemRecord]:
        """Items whose row_index is in [first, last]: the engine's resume lookup, one query per chunk."""
        query = "SELECT * FROM items WHERE job_id = :job AND row_index >= :first AND row_index <= :last"
        return [
            self._item_from_row(r) for r in self.db.rows(query, {"job": job_id, "first": first, "last": last})
        ]

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
        where, params = "job_id = :job", {"job": job_id}
        if status is not None:
            wanted, statuses = in_list("s", [status] if isinstance(status, str) else list(status))
            where, params = f"{where} AND status IN {wanted}", {**params, **statuses}
        if review is not None:
            where, params = f"{where} AND review = :review", {**params, "review": review}
        query = f"SELECT * FROM items WHERE {where} ORDER BY row_index, step, variant LIMIT :size OFFSET :at"
        yielded, position = 0, offset
        while limit is None or yielded < limit:
            size = batch if limit is None else min(batch, limit - yielded)
            page = [
                self._item_from_row(r) for r in self.db.rows(query, {**params, "size": size, "at": position})
            ]
            yield from page
            yielded += len(page)
            position += len(page)
            if len(page) < size:
                return

    def get_item(self, job_id: str, row_id: str, step: str, variant: str = "") -> ItemRecord:
        where = {"w_job": job_id, "w_row": row_id, "w_step": step, "w_variant": variant}
        row = self.db.one(f"SELECT * FROM items WHERE {_ONE_ITEM}", where)
        if row is None:
            raise NotFoundError(
                f"Job {job_id} has no item for row '{row_id}', step '{step}' {variant}".rstrip()
            )
        return self._item_from_row(row)

    def update_item(self, job_id: str, row_id: str, step: str, variant: str = "", **values: Any) -> None:
        unknown = set(values) - set(_ITEM_COLUMNS)
        if unknown:
            raise ValueError(f"items has no column {', '.join(sorted(unknown))}")
        for name in _ITEM_JSON:
            if name in values:
                values[name] = _dumps(values[name])
        values["updated_at"] = time.time()
        assigned = ", ".join(f"{name} = :{name}" for name in values)
        where = {"w_job": job_id, "w_row": row_id, "w_step": step, "w_variant": variant}
        with self.db.begin() as tx:
            tx.execute(f"UPDATE items SET {assigned} WHERE {_ONE_ITEM}", {**values, **where})

    def counts(self, job_id: str) -> JobCounts:
        query = (
            "SELECT status, count(*) AS n, sum(input_tokens) AS tin, sum(output_tokens) AS tout, "
            "sum(cost) AS cost, sum(attempts) AS attempts FROM items WHERE job_id = :job GROUP BY status"
        )
        counts = JobCounts()
        for r in self.db.rows(query, {"job": job_id}):
            if r["status"] in ("done", "flagged", "failed", "skipped"):
                setattr(counts, r["status"], r["n"])
            counts.input_tokens += r["tin"] or 0
            counts.output_tokens += r["tout"] or 0
            counts.cost += r["cost"] or 0.0
            counts.requests += r["attempts"] or 0
        rows = self.db.one(
            "SELECT count(DISTINCT row_id) AS n FROM items WHERE job_id = :job", {"job": job_id}
        )
        counts.rows = int(rows["n"]) if rows else 0
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
