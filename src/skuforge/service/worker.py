"""The background worker: claims queued jobs, runs them, and honours pause and cancel.

Inside `skuforge serve` it runs in its own thread with its own event loop (so a long run never slows the
web server); `skuforge worker` runs the same loop as a separate process, and several may share one store.
Claims are atomic (see `service.jobs.claim_next`). While a job runs the worker refreshes its heartbeat; if
the worker dies, another one (or this one after a restart) re-queues the job once the lease expires, and
the runner skips every item already finished, so no request is sent twice. A graceful stop puts running
jobs back in the queue rather than pausing them, so a restarted service carries on by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from skuforge.config import Settings
from skuforge.errors import SkuforgeError
from skuforge.providers.base import Provider
from skuforge.service import bridge, schedules
from skuforge.service import jobs as job_ops
from skuforge.service.live import LiveProgress
from skuforge.store import Job, Store

log = logging.getLogger("skuforge.worker")


class Worker:
    """Runs up to `concurrency` jobs at once from the store's queue."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        concurrency: int = 1,
        poll_s: float = 0.5,
        lease_s: float = 60.0,
        run_schedules: bool = True,
        schedule_every_s: float = 15.0,
        provider_factory: Callable[[str], Provider] | None = None,
        name: str | None = None,
    ) -> None:
        self.store, self.settings = store, settings
        self.concurrency, self.poll_s, self.lease_s = concurrency, poll_s, lease_s
        self.run_schedules, self.schedule_every_s = run_schedules, schedule_every_s
        self.provider_factory = provider_factory
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self) % 10000}"
        self.running: dict[str, asyncio.Task[None]] = {}
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._reasons: dict[str, str] = {}

    # -- the loop --------------------------------------------------------------------------------------
    async def run_forever(self) -> None:
        """Poll, claim, run; until `stop()`. Running jobs go back to the queue on a graceful stop."""
        self._loop = asyncio.get_running_loop()
        self._stop = self._stop or asyncio.Event()
        last_beat = last_schedule = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now - last_beat >= min(self.lease_s / 4, 5.0):
                    job_ops.heartbeat(self.store, list(self.running))
                    job_ops.requeue_stale(self.store, self.lease_s)
                    last_beat = now
                if self.run_schedules and now - last_schedule >= self.schedule_every_s:
                    schedules.fire_due(self.store)
                    last_schedule = now
                self._check_controls()
                self._claim()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)
        finally:
            await self._shutdown()

    def _claim(self) -> None:
        while len(self.running) < self.concurrency:
            job = job_ops.claim_next(self.store, self.name)
            if job is None:
                return
            log.info("worker %s runs job %s", self.name, job.id)
            self.running[job.id] = asyncio.create_task(self._execute(job), name=f"job-{job.id}")

    def _check_controls(self) -> None:
        for job_id, task in list(self.running.items()):
            try:
                job = self.store.get_job(job_id)
            except SkuforgeError:
                job = None
            control = (job.totals or {}).get("control") if job else "cancel"
            if control in ("pause", "cancel") and job_id not in self._reasons:
                self._reasons[job_id] = control
                task.cancel()

    async def _execute(self, job: Job) -> None:
        from skuforge.engine.executors import make_executor

        live = LiveProgress(self.store, job.id)  # the console's live figures (and the run's size)
        try:
            runner = make_executor(
                self.store,
                job,
                settings=self.settings,
                on_progress=live.on_progress,
                provider_factory=self.provider_factory,
            )
            live.start(runner)
            await runner.run()
            if job.kind == "trial":
                self._save_projection(job.id, runner)
        except asyncio.CancelledError:
            self._after_stop(job.id, self._reasons.get(job.id, "shutdown"))
        except SkuforgeError as exc:
            log.warning("job %s failed: %s", job.id, exc.message)
            # a job no executor could start (its spec asks for what this worker cannot do) is not left running
            job_ops.transition(self.store, job.id, ("running",), "failed", error=exc.message)
        except Exception:  # the runner marked the job failed; keep the worker alive for the next job
            log.exception("job %s crashed", job.id)
            self.store.set_state(job.id, "failed", error="internal error; see the worker log")
        finally:
            await live.stop()
            self.running.pop(job.id, None)
            self._reasons.pop(job.id, None)

    def _after_stop(self, job_id: str, reason: str) -> None:
        self.store.flush()
        state = {"pause": "paused", "cancel": "cancelled"}.get(reason, "queued")
        # only from what the stop left (the runner marks a stopped run paused): a user who resumed the job
        # in the meantime (it is queued again) is not overruled
        job_ops.transition(self.store, job_id, ("running", "paused"), state, error=None)
        job = self.store.get_job(job_id)
        self.store.update_job(job_id, totals={**job.totals, "control": None})
        log.info("job %s %s", job_id, job.state)

    def _save_projection(self, job_id: str, runner: Any) -> None:
        count = getattr(runner, "latency_count", 0)
        latency = runner.latency_s_total / count if count else None
        job = self.store.get_job(job_id)
        self.store.update_job(job_id, totals={**job.totals, "latency_s": latency})
        try:
            projected = bridge.projection(self.store, self.store.get_job(job_id), self.settings)
        except SkuforgeError as exc:
            projected = {"error": exc.message}
        job = self.store.get_job(job_id)
        self.store.update_job(job_id, totals={**job.totals, "projection": projected})

    async def _shutdown(self) -> None:
        for job_id, task in list(self.running.items()):
            self._reasons.setdefault(job_id, "shutdown")
            task.cancel()
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)
        self.store.flush()

    # -- control from other threads ----------------------------------------------------------------------
    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def start_thread(self) -> None:
        """Run the loop in a daemon thread (the in-process worker of `skuforge serve`)."""
        started = threading.Event()

        def main() -> None:
            async def go() -> None:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                started.set()
                await self.run_forever()

            asyncio.run(go())

        self._thread = threading.Thread(target=main, name="skuforge-worker", daemon=True)
        self._thread.start()
        started.wait(10)

    def join(self, timeout: float = 30.0) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
