"""The service and its workers on a real PostgreSQL server (started by the test, as an unprivileged user)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from skuforge.config import Settings
from skuforge.service import Worker
from skuforge.service import jobs as job_ops
from skuforge.store import open_store
from tests.service.conftest import SAMPLE_XLSX, upload, wait_for
from tests.service.postgres import PostgresServer
from tests.service.test_worker import queue_jobs, wait_states

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_the_workflow_runs_on_postgresql(postgres: PostgresServer, make_client: Any) -> None:
    client = make_client(store_url=postgres.new_database())
    assert client.get("/api/health").json()["store"] == "postgresql"
    stored = upload(client, SAMPLE_XLSX)
    trial = wait_for(
        client,
        client.post(
            "/api/jobs?kind=trial",
            json={"catalog": stored["id"], "recipe": "attributes", "model": "fake:", "review_sample": 1.0},
        ).json()["id"],
    )
    run = wait_for(client, client.post(f"/api/jobs/{trial['id']}/launch").json()["id"])
    assert run["progress"]["rows"] == 20
    item = client.get(f"/api/jobs/{run['id']}/review").json()["items"][0]
    decided = client.post(
        f"/api/jobs/{run['id']}/review",
        json={
            "row_id": item["row_id"],
            "step": item["step"],
            "variant": item["variant"],
            "action": "approve",
        },
    )
    assert decided.json()["review"] == "approved"
    assert len(client.get(f"/api/jobs/{run['id']}/review/history").json()) == 1
    assert client.get(f"/api/jobs/{run['id']}/export?format=csv").status_code == 200
    assert client.get(f"/api/jobs/{run['id']}").json()["live"]["items"] == 20  # 5 of them from the cache
    assert len(client.get(f"/api/jobs/{run['id']}/results?status=approved").json()["items"]) == 1
    body = {
        "name": "nightly",
        "cron": "0 2 * * *",
        "catalog": stored["id"],
        "recipe": "attributes",
        "model": "fake:",
    }
    schedule = client.post("/api/schedules", json=body).json()
    fired = client.post(f"/api/schedules/{schedule['id']}/run").json()["job_id"]
    assert fired == run["id"]  # the same spec continues the same run
    wait_for(client, fired)
    [firing] = client.get(f"/api/schedules/{schedule['id']}").json()["history"]
    assert firing["trigger"] == "manual" and firing["job_state"] == "done" and firing["items"] == 0


def test_concurrent_claims_on_postgresql_never_take_a_job_twice(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    store = open_store(url)
    ids = queue_jobs(store, 16)
    claimed: list[str] = []
    lock = threading.Lock()

    def claim(name: str) -> None:
        own = open_store(url)
        while (job := job_ops.claim_next(own, name)) is not None:
            with lock:
                claimed.append(job.id)
        own.close()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)
    store.close()


def test_a_job_left_running_by_a_dead_worker_is_resumed_on_postgresql(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    store = open_store(url)
    [job_id] = queue_jobs(store, 1)
    assert job_ops.claim_next(store, "dead-worker") is not None  # claimed, then the worker vanished
    time.sleep(1.2)
    worker = Worker(open_store(url), Settings(), poll_s=0.02, lease_s=1.0, run_schedules=False)
    worker.start_thread()
    try:
        wait_states(store, [job_id], ("done",))
    finally:
        worker.join()
        worker.store.close()
    assert store.get_job(job_id).totals["worker"] == worker.name
    store.close()
