"""A wrong base URL pauses a 1,000-row run at once: nothing marked failed, and the job resumes when fixed."""

from __future__ import annotations

import asyncio
import csv
import socket
from pathlib import Path

import pytest

from skuforge.engine.runner import Runner, run_job
from skuforge.engine.spec import JobSpec
from skuforge.errors import ProviderUnavailable
from skuforge.store import Store, open_store
from skuforge.testing.mock_openai import MockConfig, MockServer

ROWS = 1000


def write_catalog(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["sku", "title", "brand", "description"])
        for i in range(rows):
            out.writerow([f"SKU-{i:05d}", f"Acme kettle {i} 1.7 L", "Acme", f"Steel kettle number {i}."])
    return path


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


@pytest.fixture
def store(tmp_path: Path) -> Store:  # type: ignore[misc]
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def test_a_wrong_base_url_pauses_the_run_with_nothing_failed_and_it_resumes(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = write_catalog(tmp_path / "catalog.csv", ROWS)
    spec = JobSpec.create(catalog, recipe="title", model="openai:gpt-5-mini", cache=False)
    job = store.create_job(**spec.job_fields(), state="queued")
    wrong = closed_port_url()
    monkeypatch.setenv("OPENAI_BASE_URL", wrong)

    runner = Runner(store, store.get_job(job.id))
    with pytest.raises(ProviderUnavailable) as info:
        asyncio.run(runner.run())
    assert f"cannot reach {wrong}: connection refused" in info.value.message
    paused = store.get_job(job.id)
    assert paused.state == "paused"
    items = list(store.items(job.id))
    assert not [i for i in items if i.status == "failed"]
    # what the design bounds: a few attempts in flight when it opened, never 1,000 rows x 7 attempts
    assert runner.call_stats.requests <= spec.limits.concurrency + 5

    with MockServer(MockConfig(models=["gpt-5-mini"])) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        progress = run_job(store, store.get_job(job.id))
    store.flush()
    assert progress.state == "done"
    done = list(store.items(job.id))
    assert len(done) == ROWS and {i.status for i in done} <= {"done", "flagged"}
