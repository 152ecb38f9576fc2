"""The response cache: a request the model has answered is never sent twice.

`ResponseCache` is one SQLite file in WAL mode (default `$SKUFORGE_HOME/cache.db`) with one table,
`responses(key TEXT PRIMARY KEY, result BLOB, created_at REAL)`; `result` is the orjson of a `Result`. The key
is `Request.key(provider_name)`, a hash of the model, messages and parameters (never of code; `tag` excluded).

Writes are buffered: `put` keeps the answer in memory (where `get` sees it at once) and the buffer is
written in one transaction when it holds `flush_every` answers, when `flush_after_s` has passed since the
first unflushed one (a timer on the running event loop), and on `flush()`, `Cached.aclose()` and `close()`.

Loss window, on purpose: a kill -9 loses at most the answers buffered in the last `flush_after_s` seconds (or
`flush_every` answers). That is safe because the engine writes every item's output to its own store as soon as
it is known, and never asks again for an item it has recorded; the cache only saves money on what the store
does not hold (trial runs, changed recipes that render the same request, other jobs). Call `flush()` before
relying on the cache from another process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from skuforge import config
from skuforge.calls.stats import CallStats
from skuforge.errors import ConfigError
from skuforge.providers.base import Provider, Request, Result, Wrapper

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    result BLOB NOT NULL,
    created_at REAL NOT NULL
)
"""


class ResponseCache:
    """Answers by request key, in SQLite (WAL), with batched writes. Safe to share on one event loop."""

    def __init__(
        self, path: Path | str | None = None, *, flush_every: int = 256, flush_after_s: float = 1.0
    ) -> None:
        self.path = Path(path) if path is not None else config.home() / "cache.db"
        self.flush_every = flush_every
        self.flush_after_s = flush_after_s
        self._buffer: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"The response cache {self.path} cannot be opened: {exc}.",
                "Delete the file (it only holds cached answers) or point SKUFORGE_HOME elsewhere.",
            ) from exc
        return db

    def __len__(self) -> int:
        with self._lock:
            (stored,) = self._db.execute("SELECT count(*) FROM responses").fetchone()
            return int(stored) + len(self._buffer)

    def get(self, key: str) -> Result | None:
        """The cached answer for `key`, marked `cached=True`, or None."""
        with self._lock:
            blob = self._buffer.get(key)
            if blob is None:
                row = self._db.execute("SELECT result FROM responses WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                blob = row[0]
        data = orjson.loads(blob)
        data["cached"] = True
        return Result.model_validate(data)

    def put(self, key: str, result: Result) -> None:
        """Remember `result` for `key`; written to disk with the next batch."""
        blob = orjson.dumps(result.model_dump(exclude={"cached"}))
        with self._lock:
            self._buffer[key] = blob
            full = len(self._buffer) >= self.flush_every
        if full:
            self.flush()
        else:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: the size threshold, flush() and close() still write the buffer
        if self._timer is not None and self._timer_loop is loop:
            return
        self._timer, self._timer_loop = loop.call_later(self.flush_after_s, self.flush), loop

    def flush(self) -> None:
        """Write buffered answers in one transaction."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            if not self._buffer:
                return
            rows = [(key, blob, time.time()) for key, blob in self._buffer.items()]
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
            self._buffer.clear()

    def clear(self) -> int:
        """Forget every cached answer; returns how many there were."""
        with self._lock:
            self._buffer.clear()
            return self._db.execute("DELETE FROM responses").rowcount

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cached(Wrapper):
    """Serve repeated requests from a `ResponseCache`; store answers after success only.

    Identical requests in flight at the same time (duplicate products in one catalog) are sent once: later
    ones wait for the first answer and count as cache hits. If the first is cancelled, the next one sends.
    """

    def __init__(self, inner: Provider, cache: ResponseCache, *, stats: CallStats | None = None) -> None:
        super().__init__(inner)
        self.cache = cache
        self.stats = stats or CallStats()
        self._in_flight: dict[str, asyncio.Future[Result]] = {}

    async def generate(self, request: Request) -> Result:
        key = request.key(self.inner.name)
        while True:
            hit = self.cache.get(key)
            pending = self._in_flight.get(key)
            if hit is None and pending is None:
                return await self._send(key, request)
            if hit is None:
                assert pending is not None
                try:
                    hit = (await asyncio.shield(pending)).model_copy(update={"cached": True})
                except asyncio.CancelledError:
                    if not pending.cancelled():
                        raise  # this caller was cancelled, not the first sender
                    continue  # the first sender gave up: try again (maybe send ourselves)
            self.stats.cache_hits += 1
            return hit

    async def _send(self, key: str, request: Request) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self.inner.generate(request)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: nobody may be waiting
            raise
        finally:
            del self._in_flight[key]
        self.cache.put(key, result)
        future.set_result(result)
        return result

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """A cached answer streams whole; a streamed answer is not stored (it has no usage to keep)."""
        hit = self.cache.get(request.key(self.inner.name))
        if hit is not None:
            self.stats.cache_hits += 1
            yield hit.text
            return
        async for piece in self.inner.stream(request):
            yield piece

    async def aclose(self) -> None:
        self.cache.flush()
        await self.inner.aclose()
