"""The Ray executor on a local Ray instance: the local runner's outcomes, results kept in the output folder
and exported from there, the selection applied per partition, and a worker lost mid-run.

The contract every executor keeps (resume by product and key, twins, chained recipes, the budget, kill -9)
is in test_contract.py; the coordinator's leases are in test_ray_lease.py (no Ray needed). Ray is slow to
start on two cores, so each test here is one or two small runs."""

from __future__ import annotations

import asyncio
import csv
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skuforge.catalog import open_catalog
from skuforge.catalog.selection import draw
from skuforge.cli.run import start_job
from skuforge.engine import ray_results
from skuforge.engine.export import export_job
from skuforge.engine.ray_runner import RayExecutor
from skuforge.engine.runner import Runner
from skuforge.engine.spec import JobSpec, Selection
from skuforge.store import Store, open_store
from skuforge.testing.mock_openai import MockConfig, MockServer
from tests.engine.conftest import write_catalog

# Ray Data warns about its own deprecated settings when it builds its context; not ours to fix.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")

CHAIN = """
name: chain
version: "1"
steps:
  - name: short
    instruction: Write a short title.
    input: {fields: [title]}
    output: {fields: {title: string}}
  - name: final
    instruction: "Write a tagline for: {{ outputs.short.title }}"
    input: {fields: [title]}
    output: {fields: {tagline: string}}
"""


@pytest.fixture(scope="module")
def ray_local() -> Iterator[object]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _items(store: Store, job_id: str) -> dict[tuple[str, str, str], tuple[str, object, str]]:
    return {(i.row_id, i.step, i.variant): (i.status, i.output, i.key) for i in store.items(job_id)}


def _products(path: Path, numbers: list[int]) -> Path:
    """A catalog without an id column: rows are known by what they say, not by position."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["title", "category"])
        for i in numbers:
            w.writerow([f"Acme kettle model {i} in steel", ["Kitchen", "Garden"][i % 2]])
    return path


def test_the_ray_executor_writes_the_same_items_as_the_local_runner(
    tmp_path: Path, ray_local: object
) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 37)
    spec = JobSpec.create(
        catalog, recipe="selling_points", model="fake:", params={"locales": "en,de"}, cache=False
    )
    local = open_store(f"sqlite:///{tmp_path / 'local.db'}")
    local_job, _ = start_job(local, spec)
    asyncio.run(Runner(local, local_job).run())
    local.flush()
    distributed = open_store(f"sqlite:///{tmp_path / 'ray.db'}")
    ray_job, _ = start_job(distributed, spec)
    executor = RayExecutor(block_rows=10, workers=2, parts_dir=str(tmp_path / "parts"))
    progress = asyncio.run(Runner(distributed, ray_job, executor=executor).run())
    distributed.flush()
    expected, got = _items(local, local_job.id), _items(distributed, ray_job.id)
    assert len(expected) == 37 * 2 and got == expected
    assert progress.rows_done == 37 and progress.done + progress.flagged == len(expected) - progress.failed
    assert list((tmp_path / "parts").glob("part-*")) == []  # a small run: every part recorded, then dropped
    local.close()
    distributed.close()


def test_a_large_run_keeps_its_results_in_its_output_folder_and_exports_from_there(
    tmp_path: Path, ray_local: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results in the output folder ("output" mode, what runs over SKUFORGE_RAY_STORE_ROWS get): export and
    counts read them; a rerun after rows were inserted at the top and the feed re-sorted sends only the
    new rows, finding the others by key in the shards of finished keys (four shards here)."""
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(CHAIN, encoding="utf-8")
    path = _products(tmp_path / "feed.csv", list(range(40)))
    with MockServer(MockConfig(latency_ms=20)) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        spec = JobSpec.create(path, recipe=str(recipe), model="openai:mock-model", cache=False,
                              limits={"concurrency": 3})  # fmt: skip
        store = open_store(f"sqlite:///{tmp_path / 'ray.db'}")
        job, _ = start_job(store, spec)
        parts = str(tmp_path / "parts")
        options: dict[str, Any] = {"block_rows": 8, "workers": 2, "parts_dir": parts, "results": "output"}
        asyncio.run(Runner(store, job, executor=RayExecutor(**options)).run())
        first = mock.stats.snapshot()

        local = open_store(f"sqlite:///{tmp_path / 'local.db'}")
        local_job, _ = start_job(local, spec)
        asyncio.run(Runner(local, local_job).run())
        local.flush()
        export_job(store, store.get_job(job.id), tmp_path / "ray.csv")
        export_job(local, local_job, tmp_path / "local.csv")
        base = mock.stats.snapshot()  # the local run asked the same 80 prompts again, on purpose

        new = list(range(100, 110))
        _products(path, random.Random(3).sample(new + list(range(40)), 50))
        executor = RayExecutor(**options, shard_keys=20)
        progress = asyncio.run(Runner(store, store.get_job(job.id), executor=executor).run())
        second = mock.stats.snapshot()
    assert first["requests"] == 80 and first["max_concurrent"] <= 3  # 2 steps x 40; one limit for all
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert {i.status for i in store.items(job.id)} <= {"flagged", "failed"}  # the store: what needs a person
    counts = ray_results.counts(store, store.get_job(job.id))
    assert counts.rows == 50 and counts.done + counts.flagged == 100 and counts.failed == 0
    assert second["requests"] - base["requests"] == 20  # the 10 new rows, 2 steps each
    assert second["resent_after_success"] == base["resent_after_success"]
    assert executor.index_entries == 80 and progress.reused == 80 and progress.rows_done == 50
    store.close()
    local.close()


def test_where_sample_and_limit_are_applied_per_partition(tmp_path: Path, ray_local: object) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 90)
    selection = Selection(where="category = 'Kitchen' AND title LIKE '%Widget%'", sample=12, seed=3, limit=5)
    store = open_store(f"sqlite:///{tmp_path / 'ray.db'}")
    job, _ = start_job(store, JobSpec.create(catalog, recipe="title", model="fake:", cache=False,
                                             selection=selection))  # fmt: skip
    executor = RayExecutor(block_rows=8, workers=2, parts_dir=str(tmp_path / "parts"))
    asyncio.run(Runner(store, job, executor=executor).run())
    rows = list(open_catalog(catalog, id_column="sku").rows())
    kitchen = [r for r in rows if r.data["category"] == "Kitchen"]
    below = int(12 / len(kitchen) * 2**64)  # each matching row is kept when its seeded draw is under this
    expected = [r.row_id for r in kitchen if draw(3, r.row_id) < below][:5]
    assert sorted(i.row_id for i in store.items(job.id)) == sorted(expected) and len(expected) == 5
    store.close()


def _kill_a_worker(ray: Any, when: Any) -> threading.Thread:
    """ray.kill one actor of the call stage once `when()` holds (Ray's own actor table finds it)."""
    import ray._private.state as state
    from ray._raylet import ActorID

    def kill() -> None:
        while not when():
            time.sleep(0.02)
        alive = [
            k for k, v in state.actors().items() if "Caller" in v["ActorClassName"] and v["State"] == "ALIVE"
        ]
        worker = ray._private.worker.global_worker.core_worker.get_actor_handle(ActorID.from_hex(alive[0]))
        ray.kill(worker)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_worker_killed_mid_run_repeats_at_most_the_blocks_it_held(
    tmp_path: Path, ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bound, and why: outcomes are durable when a piece of their block (here every 4 outcomes) or its part
    is written; a worker runs at most 2 tasks at once (`max_concurrent_calls_per_actor=2`) of 2 blocks
    each, so its death loses at most the unwritten answers of 4 blocks of 20 rows. The run goes on with the
    other worker, then runs the rows no worker reported back again, reading the pieces the lost attempt
    wrote, in the same invocation; every block ends as one part, with no piece left."""
    catalog = write_catalog(tmp_path / "c.csv", 400)
    with MockServer(MockConfig(latency_ms=40)) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        monkeypatch.setenv("SKUFORGE_RAY_PIECE_ROWS", "4")
        store = open_store(f"sqlite:///{tmp_path / 'ray.db'}")
        spec = JobSpec.create(
            catalog, recipe="title", model="openai:mock-model", cache=False, limits={"concurrency": 8}
        )
        job, _ = start_job(store, spec)
        executor = RayExecutor(block_rows=20, workers=2, parts_dir=str(tmp_path / "parts"), results="output")
        killer = _kill_a_worker(ray_local, lambda: mock.stats.snapshot()["requests"] >= 120)
        progress = asyncio.run(Runner(store, job, executor=executor).run())
        killer.join(timeout=5)
        stats = mock.stats.snapshot()
    assert executor.lost_workers == 1 and progress.rows_done == 400
    assert ray_results.counts(store, store.get_job(job.id)).rows == 400
    assert stats["unique_prompts"] == 400 and stats["resent_after_success"] <= 4 * 20
    assert list((tmp_path / "parts").glob("*.piece-*")) == []
    store.close()


def test_what_a_worker_killed_during_a_run_was_writing_is_gone_when_the_run_ends(
    tmp_path: Path, ray_local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed while writing a piece leaves its temporary file; the run removes it once every block
    is back (the next run did so before, and until then the folder held a stray `.piece-` file)."""
    attempts = RayExecutor._attempts

    async def killed_while_writing(self: RayExecutor, ray: Any) -> None:
        await attempts(self, ray)
        stray = f"{self.folder.path}/part-0001-000000000000-000000000019.piece-0002.parquet.tmp-0badf00d"
        Path(stray).write_bytes(b"PAR1 half a piece")

    monkeypatch.setattr(RayExecutor, "_attempts", killed_while_writing)
    with MockServer(MockConfig(latency_ms=5)) as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.url)
        store = open_store(f"sqlite:///{tmp_path / 'ray.db'}")
        catalog = write_catalog(tmp_path / "c.csv", 40)
        spec = JobSpec.create(catalog, recipe="title", model="openai:mock-model")
        job, _ = start_job(store, spec)
        executor = RayExecutor(block_rows=20, workers=1, parts_dir=str(tmp_path / "parts"), results="output")
        progress = asyncio.run(Runner(store, job, executor=executor).run())
    assert progress.rows_done == 40
    assert [p.name for p in (tmp_path / "parts").rglob("*") if ".tmp-" in p.name] == []
    store.close()


def test_a_local_model_in_a_worker_gets_the_threads_of_the_cpus_it_reserved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from skuforge.engine.ray_workers import _reserve_threads

    class Context:
        def get_assigned_resources(self) -> dict[str, float]:
            return {"CPU": 3.0}

    class Ray:
        def get_runtime_context(self) -> Context:
            return Context()

    monkeypatch.delenv("SKUFORGE_THREADS", raising=False)
    _reserve_threads(Ray())
    assert os.environ["SKUFORGE_THREADS"] == "3"
    monkeypatch.setenv("SKUFORGE_THREADS", "1")  # the operator's own setting wins
    _reserve_threads(Ray())
    assert os.environ["SKUFORGE_THREADS"] == "1"
