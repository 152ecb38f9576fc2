"""What a running job is doing now: throughput, spend, rate limits and retries, for the console's live view.

The worker hands a `LiveProgress` to the runner as its progress callback and starts its ticker. Once a
second it samples the run's progress (and its size, as soon as the runner has counted the rows) and the
call wrappers' counters (`CallStats`: requests, retries,
timeouts, 429s, time queued in the limiter) and writes one row per job to `job_live`. The ticker runs even
when no item finishes, so a provider that stalls (every request rate-limited or hanging) shows as a rising
429 share or a growing "last item" age rather than as a frozen page.

Figures over the last `WINDOW_S` seconds (items per minute, share of requests answered 429) show what the
provider does now; totals since the worker started the job show the whole run. The row lives in its own
table so that this once-a-second write never races with a pause or cancel written to the job's totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from typing import Any

import orjson
from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, select, update
from sqlalchemy.exc import DBAPIError

from skuforge.engine.progress import RunProgress
from skuforge.store import Store

log = logging.getLogger("skuforge.service.live")
WINDOW_S = 60.0
EVERY_S = 1.0
STALLED_S = 120.0
"""A running job that finished no item for this long is shown as stalled."""

live_metadata = MetaData()
job_live = Table(
    "job_live",
    live_metadata,
    Column("job_id", String(40), primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)


def ensure_tables(store: Store) -> None:
    live_metadata.create_all(store.engine)


def _finished(p: RunProgress) -> int:
    return p.done + p.flagged + p.failed + p.skipped


class LiveProgress:
    """The progress callback of one run; writes its live figures (and the run's size) to `job_live`."""

    def __init__(self, store: Store, job_id: str, *, every_s: float = EVERY_S, window_s: float = WINDOW_S):
        self.store, self.job_id = store, job_id
        self.every_s, self.window_s = every_s, window_s
        self.runner: Any = None
        self.progress: RunProgress | None = None
        self.started, self.started_at = time.monotonic(), time.time()
        self.last_item_at: float | None = None
        self._finished = 0
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, int, float, float]] = deque()
        self._task: asyncio.Task[None] | None = None
        with contextlib.suppress(DBAPIError):  # `skuforge serve` made it already; a bare worker may not have
            ensure_tables(store)

    # -- the runner's callback ---------------------------------------------------------------------------
    def on_progress(self, progress: RunProgress) -> None:
        self.progress = progress
        finished = _finished(progress)
        if finished != self._finished:
            self._finished = finished
            self.last_item_at = time.time()

    # -- the ticker --------------------------------------------------------------------------------------
    def start(self, runner: Any) -> None:
        """Sample `runner` (its `call_stats`, when it has them) every `every_s` until `stop()`."""
        self.runner = runner
        self._task = asyncio.get_running_loop().create_task(self._tick(), name=f"live-{self.job_id}")

    async def _tick(self) -> None:
        while True:
            await asyncio.to_thread(self.write)  # a busy database never holds up the run's event loop
            await asyncio.sleep(self.every_s)

    async def stop(self) -> None:
        """Stop the ticker and write the last figures."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.write)

    def write(self) -> None:
        """Write the figures now; best effort: a failed write is logged and the next tick tries again."""
        with self._lock:
            data = orjson.dumps(self.snapshot()).decode()
            now = time.time()
            try:
                with self.store.engine.begin() as conn:
                    where = job_live.c.job_id == self.job_id
                    if (
                        conn.execute(update(job_live).where(where).values(data=data, updated_at=now)).rowcount
                        == 0
                    ):
                        conn.execute(job_live.insert().values(job_id=self.job_id, data=data, updated_at=now))
            except DBAPIError as exc:
                log.warning("live figures of job %s not written: %s", self.job_id, exc)

    # -- the figures -------------------------------------------------------------------------------------
    def calls(self) -> dict[str, float]:
        stats = getattr(self.runner, "call_stats", None)
        return dict(stats.snapshot()) if stats is not None else {}

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        calls = self.calls()
        requests, limited = float(calls.get("requests", 0)), float(calls.get("rate_limited", 0))
        self._samples.append((now, self._finished, requests, limited))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        first = self._samples[0]
        span = now - first[0]
        elapsed = now - self.started
        window_requests, window_limited = requests - first[2], limited - first[3]
        p = self.progress or getattr(self.runner, "progress", None)  # the runner counts rows before any item
        return {
            "at": time.time(),
            "rows_total": p.rows_total if p else None,
            "started_at": self.started_at,
            "elapsed_s": round(elapsed, 1),
            "window_s": round(span, 1),
            "items": self._finished,
            "items_per_min": round((self._finished - first[1]) / span * 60, 2) if span > 0 else None,
            "items_per_min_avg": round(self._finished / elapsed * 60, 2) if elapsed > 0 else None,
            "last_item_at": self.last_item_at,
            "projected_cost": p.projected_cost if p else None,
            "rate_limited_share": round(window_limited / window_requests, 4) if window_requests else 0.0,
            "rate_limited_share_all": round(limited / requests, 4) if requests else 0.0,
            "calls": calls,
            "batches_submitted": getattr(self.runner, "batches_submitted", None),
        }


def read(store: Store, job_id: str) -> dict[str, Any] | None:
    """The latest live figures of a job (None before its first run in a worker)."""
    try:
        with store.engine.connect() as conn:
            row = conn.execute(select(job_live.c.data).where(job_live.c.job_id == job_id)).first()
    except DBAPIError:  # the table is not there yet: no worker has run a job on this store
        return None
    return orjson.loads(row[0]) if row else None


def view(data: dict[str, Any] | None, state: str) -> dict[str, Any] | None:
    """The live figures as the API shows them, with how long ago the last item finished (or the run
    started, if none has yet) while the job runs, and whether that is long enough to call it stalled."""
    if data is None:
        return None
    last = data.get("last_item_at") or data.get("started_at")
    idle = round(time.time() - last, 1) if state == "running" and last else None
    return {**data, "idle_s": idle, "stalled": idle is not None and idle >= STALLED_S}


def forget(store: Store, job_id: str) -> None:
    with contextlib.suppress(DBAPIError), store.engine.begin() as conn:
        conn.execute(delete(job_live).where(job_live.c.job_id == job_id))
