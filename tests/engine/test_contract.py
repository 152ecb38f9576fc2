"""The executor contract: one suite, run against the local, the provider-batch and the Ray executor.

Every executor schedules and persists; the item pipeline, resume by product and item key, the budget ledger
and durability before acknowledgement are the engine's. Each test here runs once per executor against the
project's mock server (online requests and the OpenAI Batch API), counting what the server received and
what it would have billed, so the assertions hold whichever process sent the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skuforge.cli.run import start_job
from skuforge.engine.executors import executor_for
from skuforge.engine.progress import RunProgress
from skuforge.engine.runner import Runner
from skuforge.engine.spec import JobSpec
from skuforge.knowledge.catalog_examples import pool_files
from skuforge.providers.base import Request, Result, Usage
from skuforge.providers.fake import FakeProvider
from skuforge.providers.prices import price_for
from skuforge.store import Job, Store, open_store
from skuforge.testing.mock_batch import BatchConfig, MockBatches
from skuforge.testing.mock_openai import MockConfig, MockServer

pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*")
EXECUTORS = ("local", "batch", "ray")
MODEL = "openai:gpt-4o-mini"
COLUMNS = ["title", "category", "brand", "color", "material", "description"]
KINDS = ["Kettle", "Hose Clamp", "Yoga Bag", "Desk Lamp", "Water Bottle", "Backpack"]


def product(i: int) -> dict[str, str]:
    """A realistic-enough product row; no id column, so rows are known by content, not position."""
    color = ["Black", "White", "Red", "", "Navy Blue"][i % 5]
    material = ["Stainless Steel", "Cotton", "", "Copper", "Polyester"][i % 5]
    kind = KINDS[i % len(KINDS)]
    return {
        "title": f"Acme {kind} {i} {color or 'Grey'} {material or 'Plastic'} {10 + i % 7} cm",
        "category": ["Kitchen", "Garden", "Sports"][i % 3],
        "brand": "Acme" if i % 4 else "",
        "color": color,
        "material": material,
        "description": f"A sturdy {kind.lower()} number {i}, {material or 'plastic'} body.",
    }


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


class Servers:
    """The mock server with its batch endpoints; counts what arrived and what a vendor would bill."""

    def __init__(self, server: MockServer, batches: MockBatches) -> None:
        self.server, self.batches = server, batches

    def sent(self, kind: str) -> int:
        """Requests (or batch lines) received for the model so far."""
        if kind == "batch":
            return self.batches.lines_received
        return int(self.server.stats.snapshot()["endpoints"].get("/v1/chat/completions", 0))

    def billed(self, kind: str) -> float:
        """What the vendor would charge for everything it processed, at the table's price."""
        price = price_for(MODEL)
        assert price is not None
        if kind == "batch":
            usage = Usage(
                input_tokens=self.batches.billed["input"], output_tokens=self.batches.billed["output"]
            )
            return price.cost(usage, batch=True)
        billed = self.server.stats.snapshot()["billed"]
        usage = Usage(input_tokens=billed.get("input", 0), output_tokens=billed.get("output", 0))
        return price.cost(usage)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    batches = MockBatches(BatchConfig())
    with MockServer(MockConfig(latency_ms=5), routes=batches.routes()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("SKUFORGE_BATCH_POLL_S", "0.01")
        yield Servers(server, batches)


class Contract:
    """Runs jobs in-process on one executor, against the mock server."""

    def __init__(self, kind: str, store: Store, tmp: Path, servers: Servers) -> None:
        self.kind, self.store, self.tmp, self.servers = kind, store, tmp, servers

    def spec(self, catalog: Path, **fields: Any) -> JobSpec:
        return JobSpec.create(catalog, model=MODEL, cache=False, **executor_fields(self.kind), **fields)

    def job(self, catalog: Path, *, recipe: str = "title", **fields: Any) -> Job:
        job, _ = start_job(self.store, self.spec(catalog, recipe=recipe, **fields))
        return job

    def run(self, job: Job) -> RunProgress:
        job = self.store.get_job(job.id)
        spec = JobSpec.from_job(job)
        options: dict[str, Any] = {}
        if self.kind == "batch":
            options = {"poll_s": 0.01}
        elif self.kind == "ray":
            options = {"block_rows": 16, "workers": 2, "parts_dir": str(self.tmp / "parts")}
        runner = Runner(self.store, job, executor=executor_for(spec, **options))
        progress = asyncio.run(runner.run())
        self.store.flush()
        return progress

    def sent(self) -> int:
        return self.servers.sent(self.kind)


def executor_fields(kind: str) -> dict[str, str]:
    return {"mode": "batch"} if kind == "batch" else {"executor": kind}


@pytest.fixture(params=EXECUTORS)
def contract(request: pytest.FixtureRequest, tmp_path: Path, servers: Servers) -> Iterator[Contract]:
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield Contract(request.param, store, tmp_path, servers)
    store.close()


def finished(store: Store, job: Job) -> list[Any]:
    return [i for i in store.items(job.id) if i.status in ("done", "flagged")]


# -- resume and incremental runs, by product and item key ----------------------------------------------------
def test_a_rerun_sends_only_the_rows_that_are_new_or_edited_wherever_they_moved(
    contract: Contract, tmp_path: Path
) -> None:
    path = tmp_path / "feed.csv"
    old = [product(i) for i in range(30)]
    job = contract.job(write_rows(path, old))
    contract.run(job)
    assert contract.sent() == 30

    new = [product(i) for i in range(100, 150)]
    write_rows(path, new + old)  # 50 new rows inserted at the top: every old row moved down
    contract.run(job)
    assert contract.sent() == 30 + 50

    shuffled = random.Random(7).sample(new + old, len(new + old))
    write_rows(path, shuffled)
    contract.run(job)
    assert contract.sent() == 80

    edited = [dict(row) for row in shuffled]
    for row in edited[10:15]:
        row["title"] += " (2025 model)"
    write_rows(path, edited)
    progress = contract.run(job)
    assert contract.sent() == 85
    assert progress.reused == 75 and progress.rows_done == 80
    assert len(finished(contract.store, job)) == 80


def test_a_recipe_that_learns_from_the_catalog_shows_each_row_the_examples_a_local_run_shows(
    contract: Contract, tmp_path: Path
) -> None:
    rows = [product(i) for i in range(24)]  # some rows have colour and material, others lack them
    catalog = write_rows(tmp_path / "feed.csv", rows)
    job = contract.job(catalog, recipe="attributes")
    contract.run(job)
    assert contract.sent() == 24

    alone = open_store(f"sqlite:///{tmp_path / 'alone.db'}")  # the same job run on its own, locally
    twin = Contract("local", alone, tmp_path, contract.servers).job(catalog, recipe="attributes")
    runner = Runner(alone, twin)
    asyncio.run(runner.run())
    alone.flush()
    assert runner.examples_dir is not None and pool_files(runner.examples_dir)  # it had examples to show
    keys = {i.row_id: i.key for i in contract.store.items(job.id)}
    assert keys == {i.row_id: i.key for i in alone.items(twin.id)}  # the same requests, example for example
    alone.close()


def test_two_identical_rows_are_two_items_and_both_are_answered(contract: Contract, tmp_path: Path) -> None:
    rows = [product(i) for i in range(6)]
    rows.insert(4, dict(rows[1]))  # a second, identical row (a variant listed twice)
    job = contract.job(write_rows(tmp_path / "twins.csv", rows))
    contract.run(job)
    items = {i.row_id: i for i in contract.store.items(job.id)}
    assert len(items) == 7 and {i.status for i in items.values()} <= {"done", "flagged"}
    assert items["2"].output == items["5"].output and items["2"].key == items["5"].key
    assert contract.sent() <= 7  # the batch server refuses duplicate custom_ids: none were sent


def test_a_chained_recipe_whose_second_step_fails_records_every_step_of_that_row(
    contract: Contract, tmp_path: Path
) -> None:
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(CHAIN, encoding="utf-8")
    rows = [product(i) for i in range(8)]  # product 3 has no colour: its second step cannot be rendered
    job = contract.job(write_rows(tmp_path / "c.csv", rows), recipe=str(recipe))
    contract.run(job)
    by_item = {(i.row_id, i.step): i for i in contract.store.items(job.id)}
    assert len(by_item) == 8 * 3
    assert by_item[("4", "short")].status in ("done", "flagged")
    assert by_item[("4", "colour_line")].status == "failed"
    assert "color" in (by_item[("4", "colour_line")].error or "")
    assert by_item[("4", "final")].status == "failed"
    assert "earlier step 'colour_line' failed" in (by_item[("4", "final")].error or "")
    assert by_item[("1", "final")].status in ("done", "flagged")


CHAIN = """
name: chain
version: "1"
steps:
  - name: short
    instruction: Write a short title.
    input: {fields: [title]}
    output: {fields: {title: string}}
  - name: colour_line
    instruction: "Write one line about the colour of: {{ outputs.short.title }}"
    input: {fields: [title, color]}
    output: {fields: {line: string}}
  - name: final
    instruction: "Combine {{ outputs.short.title }} and {{ outputs.colour_line.line }}."
    input: {fields: [title]}
    output: {fields: {text: string}}
"""


# -- money ---------------------------------------------------------------------------------------------------
def test_the_cost_limit_is_never_exceeded_counting_reservations(contract: Contract, tmp_path: Path) -> None:
    rows = [product(i) for i in range(60)]
    path = write_rows(tmp_path / "c.csv", rows)
    limit = 0.0012  # about a third of what the 60 rows cost
    job = contract.job(path, max_cost=limit)
    progress = contract.run(job)
    billed = contract.servers.billed(contract.kind)
    assert 0 < billed <= limit
    assert contract.store.get_job(job.id).state == "paused"
    assert progress.rows_done < 60
    ledger = contract.store.ledger(job.id)
    assert ledger.spent == pytest.approx(billed, rel=1e-6) and ledger.held == 0
    contract.run(job)  # the limit counts every run of the job: a second run stops within it too
    assert billed <= contract.servers.billed(contract.kind) <= limit
    assert contract.store.ledger(job.id).spent == pytest.approx(contract.servers.billed(contract.kind))


# -- kill -9 -------------------------------------------------------------------------------------------------
def _cli(kind: str, catalog: Path, out: Path, *extra: str) -> list[str]:
    flags = {"local": [], "batch": ["--mode", "batch"], "ray": ["--executor", "ray"]}[kind]
    return [
        sys.executable, "-m", "skuforge.cli.main", "run", str(catalog), "--recipe", "title", "--model", MODEL,
        "--no-cache", "--quiet", "--concurrency", "4", "--out", str(out), *flags, *extra,
    ]  # fmt: skip


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM items WHERE status != 'failed'").fetchone()[0])
    except sqlite3.Error:
        return 0


def _in_flight_lines(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            found = conn.execute("SELECT sum(lines) FROM provider_batches WHERE state = 'submitted'")
            return int(found.fetchone()[0] or 0)
    except sqlite3.Error:
        return 0


def _part_items(home: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in home.glob("ray/*/part-*.parquet"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 the run and every process it started (Ray's daemons and workers start sessions of their
    own, so they are found as descendants, not by process group)."""
    import psutil

    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:  # it had already finished: a kill at the very end
        tree = []
    for process in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=30)
    proc.wait()


def _first_run(kind: str, cmd: list[str], env: dict[str, str], servers: Servers, at: int, log: Path) -> None:
    with log.open("wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    deadline = time.monotonic() + 240
    while servers.sent(kind) < at and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.01)
    if kind == "batch":  # kill once the batch is recorded as in flight, or mid-collection
        time.sleep(random.Random(at).random() * 0.5)
    _kill(proc)


def test_a_kill_9_at_a_random_point_loses_no_committed_answer(
    contract: Contract, tmp_path: Path, servers: Servers
) -> None:
    """Bound, and why: a committed answer is never asked again, and an item is committed before its
    request's slot is given to another request; so the rerun sends exactly the items that were not
    committed (each once), and the first run lost at most the requests in flight (`--concurrency 4`)."""
    kind, rows = contract.kind, 48
    catalog = write_rows(tmp_path / "c.csv", [product(i) for i in range(rows)])
    home = tmp_path / "home"
    env = {**os.environ, "SKUFORGE_HOME": str(home), "OPENAI_BASE_URL": servers.server.url}
    env.update(SKUFORGE_BATCH_POLL_S="0.05", SKUFORGE_RAY_BLOCK_ROWS="8")
    cmd = _cli(kind, catalog, tmp_path / "o.csv")
    servers.server.config.latency_ms = 40  # slow enough that the kill lands mid-run
    at = random.Random().randint(8, rows - 8) if kind != "batch" else 1
    _first_run(kind, cmd, env, servers, at, tmp_path / "first.log")
    first_sent = servers.sent(kind)
    committed = _stored(home / "skuforge.db") + (_part_items(home) if kind == "ray" else 0)
    in_flight = _in_flight_lines(home / "skuforge.db") if kind == "batch" else 0

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    store = open_store(f"sqlite:///{home / 'skuforge.db'}")
    (job,) = store.list_jobs()
    items = list(store.items(job.id))
    assert len(items) == rows and {i.status for i in items} <= {"done", "flagged"}
    assert len({i.row_id for i in items}) == rows
    assert servers.sent(kind) - first_sent == rows - committed - in_flight
    if kind == "local":
        assert first_sent - committed <= 4
    store.close()


# -- checks that call a model --------------------------------------------------------------------------------
def test_a_moderation_check_pays_through_the_run_and_counts_in_its_ledger(
    contract: Contract, tmp_path: Path
) -> None:
    recipe = tmp_path / "moderated.yaml"
    recipe.write_text(MODERATED.replace("MODEL", MODEL), encoding="utf-8")
    job = contract.job(write_rows(tmp_path / "c.csv", [product(i) for i in range(10)]), recipe=str(recipe))
    contract.run(job)
    items = list(contract.store.items(job.id))
    assert len(items) == 10 and all(any(f["check"] == "moderation" for f in i.findings or []) for i in items)
    guard_calls = contract.servers.server.stats.snapshot()["endpoints"]["/v1/chat/completions"]
    assert guard_calls >= 10  # one guard prompt per item, online whatever the executor
    ledger = contract.store.ledger(job.id)
    assert ledger.spent == pytest.approx(contract.servers.billed("local") + _batch_part(contract), rel=1e-6)


def _batch_part(contract: Contract) -> float:
    return contract.servers.billed("batch") if contract.kind == "batch" else 0.0


MODERATED = """
name: moderated
version: "1"
instruction: Write a short title.
input: {fields: [title]}
output: {fields: {title: string}}
checks:
  - {check: moderation, model: "MODEL", on_fail: flag}
"""


class Watching(FakeProvider):
    """A fake model that notes how many generation and guard (moderation) calls are in flight at once."""

    def __init__(self) -> None:
        super().__init__(latency_s=0.02)
        self.flying = {"moderation": 0, "other": 0}
        self.most_guards = self.most_beside_guard = 0

    async def generate(self, request: Request) -> Result:
        kind = "moderation" if request.tag == "moderation" else "other"
        self.flying[kind] += 1
        self.most_guards = max(self.most_guards, self.flying["moderation"])
        if self.flying["moderation"]:
            self.most_beside_guard = max(self.most_beside_guard, self.flying["other"])
        try:
            return await super().generate(request)
        finally:
            self.flying[kind] -= 1


def test_requests_keep_flowing_while_a_moderation_check_waits_for_its_model(tmp_path: Path) -> None:
    """Measured, not timed: with 8 requests in flight, guard calls overlap each other and generation calls.
    A check that blocked the event loop while its model answered would keep both at most 1 and 0."""
    recipe = tmp_path / "moderated.yaml"
    recipe.write_text(MODERATED.replace("MODEL", "fake:"), encoding="utf-8")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    catalog = write_rows(tmp_path / "c.csv", [product(i) for i in range(40)])
    job, _ = start_job(store, JobSpec.create(catalog, recipe=str(recipe), model="fake:", cache=False,
                                             limits={"concurrency": 8}))  # fmt: skip
    watching = Watching()
    asyncio.run(Runner(store, job, provider_factory=lambda _m: watching).run())
    store.flush()
    assert len(finished(store, job)) == 40
    assert watching.most_guards >= 2 and watching.most_beside_guard >= 1
    store.close()
