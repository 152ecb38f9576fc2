"""Trials: a sample over categories, a preview and report, and a full run that pays nothing twice."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from skuforge.cli.main import main
from skuforge.engine.report import render_html
from skuforge.engine.runner import Runner
from skuforge.engine.trial import full_run_spec, promote, run_trial, trial_spec
from skuforge.errors import UserError
from skuforge.providers.fake import FakeProvider
from skuforge.store import Store, open_store
from tests.engine.conftest import Harness, write_catalog


def _trial(store: Store, catalog: Path, fake: FakeProvider, sample: int = 9, **fields: object):  # type: ignore[no-untyped-def]
    spec = trial_spec(catalog, recipe="attributes", model="fake:", sample=sample, **fields)
    return run_trial(store, spec, provider_factory=lambda _m: fake)


def test_a_trial_samples_every_category_and_stores_a_trial_job(store: Store, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 60)
    result = _trial(store, catalog, FakeProvider(), sample=9)
    assert result.job.kind == "trial" and result.job.state == "done"
    categories = [item.inputs.get("category") for item in result.preview]
    assert len(result.preview) == 9
    assert sorted(set(categories)) == ["Kitchen", "Shoes", "Toys"]
    assert all(item.outputs and item.inputs["title"] for item in result.preview)
    assert result.checks["schema"]["passed"] == 9
    assert result.projection.rows_total == 60


def test_the_full_run_of_a_trial_does_not_send_the_trial_products_again(store: Store, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 60)
    fake = FakeProvider()
    trial = _trial(store, catalog, fake, sample=12)
    trial_calls = fake.calls
    assert trial_calls == 12
    full = promote(store, trial.job.id)
    assert full.parent_id == trial.job.id and full.kind == "run"
    assert full.selection["sample"] is None and full.params == trial.job.params
    runner = Runner(store, store.get_job(full.id), provider_factory=lambda _m: fake)
    progress = asyncio.run(runner.run())
    store.flush()
    assert fake.calls - trial_calls == 60 - 12
    assert progress.cache_hits == 12 and progress.requests == 48
    trial_keys = {(i.row_id, i.key) for i in store.items(trial.job.id)}
    full_items = {(i.row_id, i.key): i for i in store.items(full.id)}
    assert trial_keys <= set(full_items)
    assert all(full_items[k].cost == 0 and full_items[k].cached for k in trial_keys)


def test_promoting_a_run_job_is_refused_with_a_hint(store: Store, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 5)
    job = Harness(store, FakeProvider()).job(catalog)
    with pytest.raises(UserError) as info:
        full_run_spec(store.get_job(job.id))
    assert "not a trial" in info.value.message and "kind 'trial'" in info.value.hint


def test_the_report_is_self_contained_and_escapes_product_text(store: Store, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 6, title_of=lambda i: f"<script>alert({i})</script> Kettle")
    html = render_html(_trial(store, catalog, FakeProvider(), sample=3))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<style>" in html and "Projected full run" in html and "schema" in html


def test_the_trial_command_prints_json_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 40)
    report = tmp_path / "out" / "trial.html"
    code = main([
        "trial", str(catalog), "--recipe", "attributes", "--model", "fake:", "--sample", "6", "--seed", "3",
        "--out", str(report), "--json",
    ])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["items"]) == 6 and data["checks"]["schema"]["passed"] == 6
    assert data["projection"]["rows_total"] == 40 and data["projection"]["items_to_send"] == 34
    assert (
        data["projection"]["cost_low"]
        <= data["projection"]["cost_expected"]
        <= data["projection"]["cost_high"]
    )
    assert report.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert data["report"] == str(report)


def test_run_from_trial_runs_the_whole_selection_as_a_child_of_the_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 30)
    where = "category <> 'Toys'"
    assert main(["trial", str(catalog), "--model", "fake:", "--sample", "4", "--where", where,
                 "--out", str(tmp_path / "t.html"), "--json"]) == 0  # fmt: skip
    trial = json.loads(capsys.readouterr().out)
    assert trial["projection"]["rows_total"] == 20
    out = tmp_path / "enriched.csv"
    assert main(["run", "--from-trial", trial["job_id"], "--out", str(out), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["state"] == "done" and run["rows_done"] == 20 and run["cache_hits"] == 4
    store = open_store()
    try:
        job = store.get_job(run["job_id"])
    finally:
        store.close()
    assert job.parent_id == trial["job_id"] and job.selection["where"] == where
    assert out.exists()


def test_run_without_a_catalog_or_a_trial_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "fake:"]) != 0
    assert "--from-trial" in capsys.readouterr().err


def test_a_cost_limit_pauses_the_run_before_it_is_exceeded_and_resume_finishes_each_row_once(
    harness: Harness, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 80)
    limit = 0.01
    job = harness.job(catalog, max_cost=limit)
    runner, progress = harness.run(job)
    first = list(harness.store.items(job.id))
    assert runner.stopped_reason == "budget" and harness.store.get_job(job.id).state == "paused"
    assert 0 < len(first) < 80
    assert progress.cost <= limit and harness.store.counts(job.id).cost <= limit
    assert all(i.status in ("done", "flagged") for i in first)  # nothing lost, nothing half-done
    harness.store.update_job(job.id, settings={**harness.store.get_job(job.id).settings, "max_cost": 1.0})
    runner, progress = harness.run(job)
    items = list(harness.store.items(job.id))
    assert harness.store.get_job(job.id).state == "done"
    assert sorted(i.row_id for i in items) == [f"SKU-{i:05d}" for i in range(80)]
    assert harness.fake.calls == 80  # no request twice
    assert {(i.row_id, i.key) for i in first} <= {(i.row_id, i.key) for i in items}


def test_the_progress_shows_a_projected_total_after_twenty_items(harness: Harness, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 60)
    seen: list[tuple[int, float | None, float]] = []
    job = harness.job(catalog)
    harness.run(
        job, on_progress=lambda p: seen.append((p.done + p.flagged + p.failed, p.projected_cost, p.cost))
    )
    assert all(projected is None for items, projected, _ in seen if items < 20)
    late = [(projected, cost) for items, projected, cost in seen if items >= 20]
    assert late and all(projected is not None and projected >= cost for projected, cost in late)
    final_cost = seen[-1][2]
    assert late[0][0] == pytest.approx(final_cost, rel=0.2)
    assert seen[-1][1] == pytest.approx(final_cost)
