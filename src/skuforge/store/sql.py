"""How the store talks to its database: plain SQL with `:name` parameters, on SQLite or through SQLAlchemy.

The store's statements are written once, in the SQL that SQLite and PostgreSQL share (`INSERT ... ON CONFLICT
(...) DO UPDATE SET c = excluded.c`, `LIMIT`/`OFFSET`, `count(DISTINCT ...)`). Two backends run them:

- `SqliteDatabase`: Python's own `sqlite3`, a few pooled connections in WAL mode. A `skuforge run` on the
  default store never imports SQLAlchemy: without it the first request of a run goes out 0.40-0.41 s after
  launch instead of 0.44-0.46 s, and the store's writer spends half the CPU per outcome (docs/scale.md).
- `AlchemyDatabase`: any SQLAlchemy URL (PostgreSQL for a shared service), statements through `text()`.

Both give `engine`, a SQLAlchemy engine on the same database, for the modules that build their queries with
SQLAlchemy Core (the review log, the service's queue and schedules, provider batches); on SQLite it is made
the first time one asks for it.

    db = open_database("sqlite:////home/me/.skuforge/skuforge.db")
    row = db.one("SELECT state FROM jobs WHERE id = :id", {"id": job_id})
    with db.begin() as tx:
        tx.executemany("INSERT INTO ledgers (...) VALUES (...)", rows)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from skuforge.errors import ConfigError

Params = Mapping[str, Any]
SQLITE_PREFIX = "sqlite:///"


class DatabaseError(Exception):
    """A statement failed in the database (either backend); `cause` is the driver's exception."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(message)
        self.cause = cause


class Transaction(Protocol):
    def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]: ...


class Database(Protocol):
    dialect: str

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]: ...

    def one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None: ...

    def begin(self) -> contextlib.AbstractContextManager[Transaction]: ...

    def create_schema(self) -> None: ...

    @property
    def engine(self) -> Any: ...

    def close(self) -> None: ...


def open_database(url: str) -> Database:
    """The backend for `url`: sqlite3 for `sqlite:///PATH`, SQLAlchemy for anything else."""
    if url.startswith(SQLITE_PREFIX) and "?" not in url and ":memory:" not in url:
        return SqliteDatabase(url)
    return AlchemyDatabase(url)


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name0, :name1, ...)` and its parameters, for `column IN` (at most a few hundred values)."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return "(" + ", ".join(f":{p}" for p in params) + ")", params


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


class _SqliteTx:
    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def execute(self, sql: str, params: Params | None = None) -> int:
        return self.con.execute(sql, params or {}).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.con.executemany(sql, rows)

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        return self.con.execute(sql, params or {}).fetchall()


class SqliteDatabase:
    """A SQLite file through `sqlite3`: WAL, `synchronous=NORMAL`, a 30 s busy timeout, and a small pool of
    connections that any thread may borrow (the event loop, the store's writer, the service's threads)."""

    dialect = "sqlite"
    POOL = 8

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = Path(url.removeprefix(SQLITE_PREFIX))
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._engine: Any = None
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._release(self._connect())
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"Cannot open the store at {self.path}: {exc}",
                "Check that the folder is writable and the file is a skuforge store (or absent: it is "
                "then made), or point SKUFORGE_HOME / --store elsewhere.",
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        con.row_factory = _dict_row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def _release(self, con: sqlite3.Connection) -> None:
        with self._lock:
            if len(self._idle) < self.POOL and not self._closed:
                self._idle.append(con)
                return
        con.close()

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            con = self._idle.pop() if self._idle else None
        if con is None:
            con = self._connect()
        try:
            yield con
        finally:
            if con.in_transaction:  # an error inside a statement list: leave nothing half-done
                con.rollback()
            self._release(con)

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        try:
            with self._borrow() as con:
                return con.execute(sql, params or {}).fetchall()
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc), exc) from exc

    def one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    @contextlib.contextmanager
    def begin(self) -> Iterator[Transaction]:
        """A write transaction, taken at once (`BEGIN IMMEDIATE`): two writers wait for each other instead
        of failing when a read lock cannot be upgraded."""
        try:
            with self._borrow() as con:
                con.execute("BEGIN IMMEDIATE")
                yield _SqliteTx(con)
                con.execute("COMMIT")
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc), exc) from exc

    def create_schema(self) -> None:
        from skuforge.store.ddl import SQLITE_DDL

        try:
            with self._borrow() as con:
                con.executescript(SQLITE_DDL)
        except sqlite3.Error as exc:
            raise DatabaseError(str(exc), exc) from exc

    @property
    def engine(self) -> Any:
        """A SQLAlchemy engine on the same file, made on first use (see the module docstring)."""
        with self._lock:
            if self._engine is None:
                self._engine = alchemy_engine(self.url)
            return self._engine

    def close(self) -> None:
        """Close the idle connections now, and each borrowed one when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            engine, self._engine = self._engine, None
        for con in idle:
            con.close()
        if engine is not None:
            engine.dispose()


class _AlchemyTx:
    def __init__(self, conn: Any) -> None:
        from sqlalchemy import text

        self.conn, self.text = conn, text

    def execute(self, sql: str, params: Params | None = None) -> int:
        return int(self.conn.execute(self.text(sql), dict(params or {})).rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            self.conn.execute(self.text(sql), [dict(r) for r in rows])

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in self.conn.execute(self.text(sql), dict(params or {}))]


class AlchemyDatabase:
    """Any database SQLAlchemy reaches (PostgreSQL: `postgresql+psycopg://user@host/db`)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        self.url = url
        self._errors: tuple[type[BaseException], ...] = (SQLAlchemyError,)
        self.engine = alchemy_engine(url)
        self.dialect = str(self.engine.dialect.name)

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return _AlchemyTx(conn).rows(sql, params)
        except self._errors as exc:
            raise DatabaseError(str(getattr(exc, "orig", None) or exc), exc) from exc

    def one(self, sql: str, params: Params | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    @contextlib.contextmanager
    def begin(self) -> Iterator[Transaction]:
        try:
            with self.engine.begin() as conn:
                yield _AlchemyTx(conn)
        except self._errors as exc:
            raise DatabaseError(str(getattr(exc, "orig", None) or exc), exc) from exc

    def create_schema(self) -> None:
        from skuforge.store.schema import items, metadata

        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                for index in items.indexes:  # a store from an older version lacks the newer indexes
                    index.create(conn, checkfirst=True)
        except self._errors as exc:
            raise DatabaseError(str(getattr(exc, "orig", None) or exc), exc) from exc

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alchemy_engine(url: str) -> Any:
    """A SQLAlchemy engine for `url` (SQLite files get WAL and a busy timeout, as `SqliteDatabase` does)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith(SQLITE_PREFIX):
        Path(url.removeprefix(SQLITE_PREFIX).split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
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
