"""The worker: atomic claims, several workers on one store, and a kill -9 that loses and repeats nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from skuforge.config import Settings
from skuforge.engine.spec import JobSpec
from skuforge.service import Worker
from skuforge.service import jobs as job_ops
from skuforge.store import Store, open_store
from tests.service.conftest import SAMPLE_CSV

REPO = Path(__file__).resolve().parents[2]


def queue_jobs(store: Store, n: int, model: str = "fake:", **fields: Any) -> list[str]:
    ids = []
    for i in range(n):
        spec = JobSpec.create(SAMPLE_CSV, recipe="attributes", model=model, params={}, kind="trial", **fields)
        spec.selection.sample = 2 + i  # distinct specs
        ids.append(job_ops.create(store, spec).id)
    return ids


def wait_states(store: Store, ids: list[str], states: tuple[str, ...], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(store.get_job(i).state in states for i in ids):
            return
        time.sleep(0.05)
    pytest.fail(f"jobs did not reach {states}: {[(i, store.get_job(i).state) for i in ids]}")


def test_two_claimers_never_take_the_same_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    ids = queue_jobs(store, 12)
    claimed: dict[str, list[str]] = {"a": [], "b": []}

    def claim(name: str) -> None:
        other = open_store(url)
        while (job := job_ops.claim_next(other, name)) is not None:
            claimed[name].append(job.id)
        other.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = claimed["a"] + claimed["b"]
    assert sorted(taken) == sorted(ids)  # every job once, none twice
    store.close()


def test_two_workers_share_one_queue_and_finish_every_job_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    ids = queue_jobs(store, 6)
    workers = [
        Worker(open_store(url), Settings(), poll_s=0.02, lease_s=30, run_schedules=False, name=n)
        for n in ("w1", "w2")
    ]
    for w in workers:
        w.start_thread()
    try:
        wait_states(store, ids, ("done",))
    finally:
        for w in workers:
            w.join()
            w.store.close()
    owners = {store.get_job(i).totals["worker"] for i in ids}
    assert owners <= {"w1", "w2"}
    for job_id in ids:
        assert all(item.attempts == 1 for item in store.items(job_id))
    store.close()


def test_stopping_the_worker_requeues_running_jobs_and_a_new_worker_finishes_them(tmp_path: Path) -> None:
    from skuforge.providers.fake import FakeProvider

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    spec = JobSpec.create(SAMPLE_CSV, recipe="attributes", model="fake:", kind="run")
    spec.limits.concurrency = 1
    job = job_ops.create(store, spec)
    slow = Worker(
        store,
        Settings(),
        poll_s=0.02,
        run_schedules=False,
        provider_factory=lambda name: FakeProvider(latency_s=0.1),
    )
    slow.start_thread()
    deadline = time.monotonic() + 30
    while store.counts(job.id).rows < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    slow.join()
    assert store.get_job(job.id).state == "queued"
    first = {i.row_id: i.updated_at for i in store.items(job.id)}
    fresh = Worker(store, Settings(), poll_s=0.02, run_schedules=False)
    fresh.start_thread()
    try:
        wait_states(store, [job.id], ("done",))
    finally:
        fresh.join()
    after = {i.row_id: i.updated_at for i in store.items(job.id)}
    assert len(after) == 20
    assert all(after[row] == stamp for row, stamp in first.items())  # finished items were not sent again
    store.close()


def test_a_job_survives_kill_9_of_a_worker_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("limits: {concurrency: 1}\n", encoding="utf-8")
    env = {**os.environ, "SKUFORGE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    url = f"sqlite:///{home / 'skuforge.db'}"
    store = open_store(url)
    spec = JobSpec.create(SAMPLE_CSV, recipe="attributes", model="fake:slow", kind="run")
    spec.limits.concurrency = 1
    job = job_ops.create(store, spec)
    command = [
        sys.executable,
        "-m",
        "skuforge.cli.main",
        "worker",
        "--lease",
        "1",
        "--poll",
        "0.05",
        "--no-schedules",
    ]
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        first = subprocess.Popen(command, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while store.counts(job.id).rows < 3:
            if time.monotonic() > deadline or first.poll() is not None:
                pytest.fail(f"the worker did not start the job:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert store.get_job(job.id).state == "running"  # left behind by the dead worker
    done_before = {i.row_id: i.updated_at for i in store.items(job.id)}
    second = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_states(store, [job.id], ("done",))
    finally:
        second.send_signal(signal.SIGINT)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
    items = list(store.items(job.id))
    assert len(items) == 20 and all(i.attempts == 1 for i in items)
    assert all(i.updated_at == done_before[i.row_id] for i in items if i.row_id in done_before)
    store.close()


def test_a_job_no_executor_can_start_is_marked_failed_with_the_reason(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    [impossible] = queue_jobs(store, 1, mode="batch", executor="ray")  # as a hand-made spec could ask
    [fine] = queue_jobs(store, 1)
    worker = Worker(store, Settings(), poll_s=0.02, run_schedules=False)
    worker.start_thread()
    try:
        wait_states(store, [impossible], ("failed",))
        wait_states(store, [fine], ("done",))  # the worker goes on with the next job
    finally:
        worker.join()
    assert "cannot use --executor ray" in (store.get_job(impossible).error or "")
    store.close()
