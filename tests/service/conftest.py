"""Fixtures for the service tests: an app with its in-process worker, a bearer client, the sample catalog."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from skuforge.service import ServiceOptions, create_app

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO / "examples" / "catalog.csv"
SAMPLE_XLSX = REPO / "examples" / "catalog.xlsx"
TOKEN = "test-token-0123456789"


def make_options(**overrides: Any) -> ServiceOptions:
    base: dict[str, Any] = dict(token=TOKEN, worker_poll_s=0.05, lease_s=2.0, trial_rows=5, models=["fake:"])
    base.update(overrides)
    return ServiceOptions(**base)


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build clients (each its own app) that share the test's SKUFORGE_HOME; all are closed at the end."""
    opened: list[TestClient] = []

    def build(
        store_url: str | None = None, bearer: bool = True, provider_factory: Any = None, **overrides: Any
    ) -> TestClient:
        app = create_app(make_options(**overrides), store_url=store_url, provider_factory=provider_factory)
        client = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
        client.__enter__()
        if bearer:
            client.headers["Authorization"] = f"Bearer {TOKEN}"
        opened.append(client)
        return client

    yield build
    for client in reversed(opened):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def upload(client: TestClient, path: Path = SAMPLE_CSV, name: str | None = None) -> dict[str, Any]:
    with path.open("rb") as handle:
        response = client.post("/api/catalogs", files={"file": (name or path.name, handle)})
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(
    client: TestClient, job_id: str, states: tuple[str, ...] = ("done",), timeout: float = 600
) -> dict[str, Any]:
    """Poll a job until it reaches one of `states` (fails with the job's last view otherwise). `timeout` only
    catches a hang: it is far above what a loaded 2-core machine needs, and a passing test never waits it."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job.get("state") in states:
            return job
        if job.get("state") == "failed" and "failed" not in states:
            pytest.fail(f"job {job_id} failed: {job.get('error')}")
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not reach {states}; last seen: {job}")
