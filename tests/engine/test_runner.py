"""The local runner: every row once, nothing sent twice, changed rows regenerated, faults recorded."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from skuforge.engine.export import export_job
from skuforge.errors import RecipeError, SkuforgeError, TransientError
from skuforge.providers.fake import FakeProvider
from skuforge.store import Store
from tests.engine.conftest import Harness, default_title, write_catalog


def test_every_row_gets_exactly_one_item_per_step(harness: Harness, catalog: Path) -> None:
    job = harness.job(catalog)
    _, progress = harness.run(job)
    items = list(harness.store.items(job.id))
    assert sorted({i.row_id for i in items}) == [f"SKU-{i:05d}" for i in range(30)]
    assert len(items) == 30
    assert progress.rows_done == 30
    assert harness.store.get_job(job.id).state == "done"


def test_running_the_same_job_again_sends_no_request(harness: Harness, catalog: Path) -> None:
    job = harness.job(catalog)
    harness.run(job)
    sent = harness.fake.calls
    _, progress = harness.run(job)
    assert harness.fake.calls == sent
    assert progress.requests == 0
    assert progress.reused == sent


def test_a_changed_title_regenerates_only_that_row(harness: Harness, tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "c.csv", 30)
    job = harness.job(path)
    harness.run(job)
    first = harness.fake.calls
    write_catalog(path, 30, title_of=lambda i: "Acme Kettle 1.7 L Black" if i == 7 else default_title(i))
    harness.run(job)
    assert harness.fake.calls - first == 1
    assert harness.fake.requests[-1].messages[-1].content.count("Acme Kettle 1.7 L Black") == 1


def test_a_recipe_column_missing_from_the_catalog_fails_before_any_request(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "no_title.csv"
    path.write_text("sku,name\nA,Thing\n", encoding="utf-8")
    job = harness.job(path)
    with pytest.raises(RecipeError) as info:
        harness.run(job)
    assert "title" in info.value.message and "attributes" in info.value.message
    assert harness.fake.calls == 0


def test_malformed_output_gets_one_repair_then_the_item_fails_with_the_reason(
    harness: Harness, tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.csv", 1)
    harness.fake.options.script = ["not json at all", "{still not json"]
    job = harness.job(path)
    harness.run(job)
    (item,) = harness.store.items(job.id)
    assert item.status == "failed"
    assert "after one repair" in (item.error or "")
    assert item.attempts == 2
    repair = harness.fake.requests[1]
    assert any("not json at all" in m.content for m in repair.messages)


def test_a_repaired_answer_is_kept(harness: Harness, tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "c.csv", 1)
    job = harness.job(path)
    harness.fake.options.script = ["oops"]  # then the generator answers validly
    harness.run(job)
    (item,) = harness.store.items(job.id)
    assert item.status in ("done", "flagged")
    assert item.attempts == 2


def test_provider_faults_fail_the_item_and_the_batch_goes_on(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_catalog(tmp_path / "c.csv", 20)
    fake = FakeProvider(script=[TransientError("boom")] * 3)  # no retries: the first 3 calls fail for good
    h = Harness(store, fake)
    job = h.job(path, limits={"max_retries": 0, "concurrency": 1, "timeout_s": 5})
    h.run(job)
    items = list(store.items(job.id))
    failed = [i for i in items if i.status == "failed"]
    assert len(items) == 20
    assert len(failed) == 3 and all("boom" in (i.error or "") for i in failed)
    assert store.get_job(job.id).state == "done"


def test_budget_stops_the_run_before_it_is_exceeded_and_resume_finishes(
    harness: Harness, tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.csv", 40)
    job = harness.job(path, max_cost=0.004, limits={"concurrency": 4})
    runner, progress = harness.run(job)
    assert runner.stopped_reason == "budget"
    assert harness.store.get_job(job.id).state == "paused"
    spent = harness.store.counts(job.id)
    assert 0 < spent.cost <= 0.004
    assert progress.rows_done < 40

    harness.store.update_job(job.id, settings={**harness.store.get_job(job.id).settings, "max_cost": None})
    harness.run(job)
    items = list(harness.store.items(job.id))
    assert len(items) == 40 and len({i.row_id for i in items}) == 40
    assert harness.fake.calls == 40
    assert harness.store.get_job(job.id).state == "done"


def test_translate_makes_one_item_per_locale(harness: Harness, tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "c.csv", 5)
    job = harness.job(path, recipe="translate", params={"locales": "de,fr"})
    harness.run(job)
    items = list(harness.store.items(job.id))
    assert sorted({i.variant for i in items}) == ["de", "fr"]
    assert len(items) == 10


def test_a_chained_recipe_feeds_earlier_outputs_to_later_steps(harness: Harness, tmp_path: Path) -> None:
    path = write_catalog(tmp_path / "c.csv", 3)
    job = harness.job(path, recipe="enrich", params={"locales": "de"})
    harness.run(job)
    steps = {i.step for i in harness.store.items(job.id)}
    assert len(steps) >= 2
    later = [r for r in harness.fake.requests if "selling" in r.messages[0].content.lower()]
    assert later, "the selling points step sent requests"


def test_progress_events_count_rows(harness: Harness, catalog: Path) -> None:
    seen: list[int] = []
    job = harness.job(catalog)
    harness.run(job, on_progress=lambda p: seen.append(p.rows_done))
    assert seen[-1] == 30 and seen == sorted(seen)


def test_item_keys_do_not_depend_on_the_tag(tmp_path: Path) -> None:
    from skuforge.engine.pipeline import item_key
    from skuforge.providers.base import Message, Request
    from skuforge.recipes import load_recipe

    recipe = load_recipe("title")
    step = recipe.steps[0]
    a = Request(messages=[Message(role="user", content="x")], tag="a")
    b = Request(messages=[Message(role="user", content="x")], tag="b")
    assert item_key(a, "fake:", recipe, step) == item_key(b, "fake:", recipe, step)
    assert item_key(a, "fake:", recipe, step) != item_key(a, "openai:gpt-4o", recipe, step)


def test_run_job_helper_runs_from_sync_code(store, catalog: Path) -> None:  # type: ignore[no-untyped-def]
    from skuforge.engine.runner import run_job

    h = Harness(store, FakeProvider())
    job = h.job(catalog)
    progress = run_job(store, store.get_job(job.id), provider_factory=lambda _m: h.fake)
    assert progress.state == "done"
    assert not asyncio.iscoroutine(progress)


def test_a_catalog_without_rows_fails_before_any_request_and_leaves_no_queued_job(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "header-only.csv"
    path.write_text("sku,title,category\n", encoding="utf-8")
    job = harness.job(path)
    with pytest.raises(SkuforgeError) as info:
        harness.run(job)
    assert harness.fake.calls == 0
    stored = harness.store.get_job(job.id)
    assert stored.state == "failed" and stored.error and "row" in stored.error
    assert "row" in info.value.message


def test_a_worker_marks_a_job_it_cannot_run_failed_with_the_reason(store: Store, tmp_path: Path) -> None:
    from skuforge.config import Settings
    from skuforge.engine.spec import JobSpec
    from skuforge.service import Worker
    from skuforge.service import jobs as job_ops

    catalog = write_catalog(tmp_path / "c.csv", 5)
    job = job_ops.create(store, JobSpec.create(catalog, recipe="attributes", model="fake:"))
    assert store.get_job(job.id).state == "queued"
    catalog.unlink()  # the catalog went away after the job was queued
    worker = Worker(store, Settings(), poll_s=0.01, run_schedules=False)

    async def until_settled() -> None:
        task = asyncio.create_task(worker.run_forever())
        while store.get_job(job.id).state in ("queued", "running"):
            await asyncio.sleep(0.02)
        worker.stop()
        await task

    asyncio.run(until_settled())
    stored = store.get_job(job.id)
    assert stored.state == "failed" and "c.csv" in (stored.error or "")


def test_a_duplicated_product_id_fails_the_run_before_any_request_naming_both_rows(
    harness: Harness, tmp_path: Path
) -> None:
    path = write_catalog(tmp_path / "c.csv", 40)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[31] = lines[31].replace("SKU-00030", "SKU-00004")  # the 31st product reuses the 5th one's id
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    job = harness.job(path)
    with pytest.raises(SkuforgeError) as info:
        harness.run(job)
    assert "SKU-00004" in info.value.message and "appears twice" in info.value.message
    assert "line 6" in info.value.message and "line 32" in info.value.message
    assert harness.fake.calls == 0


def test_a_value_the_catalog_gives_only_as_another_attribute_is_dropped_and_the_item_says_why(
    harness: Harness, tmp_path: Path
) -> None:
    path = tmp_path / "kitchen.csv"
    filled = [f"K{i},Acme Pan {i} Black Steel,Kitchen,Acme,Black,Steel,{20 + i} cm,1 kg" for i in range(12)]
    lacking = "K99,Acme Pan 99 Black,Kitchen,Acme,Black,,30 cm,1 kg"  # only its material is missing
    path.write_text("\n".join(["sku,title,category,brand,color,material,size,weight", *filled, lacking]))
    harness.fake.options.script = ['{"material": "Black"}']  # a colour, given as the material
    job = harness.job(path)
    harness.run(job)
    (item,) = [i for i in harness.store.items(job.id) if i.row_id == "K99"]
    assert harness.fake.calls == 1
    assert item.status == "done" and item.output == {"material": None}
    (note,) = [f for f in item.findings or [] if f["check"] == "catalog_values"]
    assert note["ok"] and note["field"] == "material"
    assert "give it as color (13 rows), never as material" in note["reason"]  # its own colour counts
    export_job(harness.store, job, tmp_path / "out.csv")
    with (tmp_path / "out.csv").open(encoding="utf-8-sig") as out:
        exported = {row["sku"]: row for row in csv.DictReader(out)}
    assert exported["K99"]["skuforge_status"] == "done"
    assert exported["K99"]["skuforge_notes"] == f"{item.step}: {note['reason']}"


def test_the_run_says_it_is_winding_down_only_once_every_row_has_started(
    store: Store, tmp_path: Path
) -> None:
    """The hedging layer copies stragglers sooner at the end of a run; it learns the end from this."""
    from skuforge.config import Limits
    from skuforge.engine.runner import Runner
    from tests.engine.conftest import Harness

    class Watching(FakeProvider):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[bool] = []
            self.runner: Runner | None = None

        async def generate(self, request):  # type: ignore[no-untyped-def]
            assert self.runner is not None
            self.seen.append(self.runner.progress.all_started)
            return await super().generate(request)

    watching = Watching()
    catalog = write_catalog(tmp_path / "c.csv", 120)
    job = Harness(store, watching).job(catalog, recipe="title", limits=Limits(concurrency=4))
    runner = Runner(store, store.get_job(job.id), provider_factory=lambda _m: watching)
    watching.runner = runner
    asyncio.run(runner.run())
    assert watching.seen[0] is False and watching.seen[-1] is True
    assert watching.seen.index(True) >= 120 - 64  # not before the last window of rows was started
