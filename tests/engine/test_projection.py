"""Cost projection: a 30-product trial predicts the full run's cost within 15%, with an honest range."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skuforge.config import Limits
from skuforge.engine.projection import (
    ItemMeasure,
    Sample,
    Spread,
    interval,
    live_projection,
    project,
    wall_time,
)
from skuforge.engine.runner import Runner
from skuforge.engine.trial import promote, run_trial, trial_spec
from skuforge.providers.fake import FakeProvider
from skuforge.store import Store
from tests.engine.conftest import write_catalog


def _run_full(store: Store, job_id: str, fake: FakeProvider) -> Runner:
    runner = Runner(store, store.get_job(job_id), provider_factory=lambda _m: fake)
    asyncio.run(runner.run())
    store.flush()
    return runner


@pytest.mark.parametrize("recipe", ["attributes", "selling_points"])
def test_a_30_item_trial_projects_the_full_run_cost_within_15_percent(
    store: Store, tmp_path: Path, recipe: str
) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 300)
    fake = FakeProvider()
    trial = run_trial(
        store, trial_spec(catalog, recipe=recipe, model="fake:", sample=30), provider_factory=lambda _m: fake
    )
    projection = trial.projection
    assert projection.rows_total == 300 and projection.rows_sampled == 30
    full = promote(store, trial.job.id)
    runner = _run_full(store, full.id, fake)
    actual = runner.progress.cost
    assert actual > 0
    assert abs(projection.cost_expected - actual) <= 0.15 * actual
    assert projection.cost_low < projection.cost_expected < projection.cost_high
    assert projection.requests == pytest.approx(runner.progress.requests, rel=0.15)


def test_a_sample_drawn_from_varied_items_gives_a_range_that_widens_with_fewer_items() -> None:
    spread = Spread.of([1.0, 2.0, 3.0, 6.0])
    _, narrow = interval(1000, 400, 10_000, spread)
    _, wide = interval(1000, 10, 10_000, spread)
    assert 0 < narrow < wide


def test_the_whole_population_measured_leaves_only_the_item_spread() -> None:
    spread = Spread.of([1.0, 3.0])
    expected, half = interval(0, 2, 2, spread)
    assert expected == 0 and half == 0


def test_items_the_trial_generated_are_not_projected_again() -> None:
    sample = Sample([ItemMeasure(1000, 500) for _ in range(10)], rows=10, latency_s=2.0)
    projection = project(sample, model="openai:gpt-4o-mini", rows_total=110, limits=Limits())
    per_item = (1000 * 0.15 + 500 * 0.60) / 1_000_000
    assert projection.items_to_send == 100
    assert projection.cost_expected == pytest.approx(100 * per_item)
    assert projection.cost_full == pytest.approx(110 * per_item)
    assert projection.cost_low == projection.cost_high == pytest.approx(100 * per_item)


def test_a_model_without_a_price_projects_tokens_but_no_cost() -> None:
    sample = Sample([ItemMeasure(100, 50)], rows=1)
    projection = project(sample, model="nosuch:model", rows_total=10, limits=Limits())
    assert projection.cost_expected is None and not projection.price_known
    assert projection.tokens_total == 9 * 150
    assert any("No price" in note for note in projection.notes)


def test_wall_time_is_set_by_the_tightest_limit() -> None:
    limits = Limits(concurrency=10, rpm=60)
    seconds, bound = wall_time(600, 1000, latency_s=1.0, limits=limits)
    assert (seconds, bound) == (600.0, "rpm")
    seconds, bound = wall_time(600, 1000, latency_s=1.0, limits=Limits(concurrency=10, tpm=6000))
    assert (seconds, bound) == (6000.0, "tpm")
    seconds, bound = wall_time(600, 1000, latency_s=2.0, limits=Limits(concurrency=4))
    assert (seconds, bound) == (300.0, "concurrency")


def test_the_live_projection_waits_for_twenty_items_then_scales_the_mean() -> None:
    assert live_projection(1.0, 19, 19, 100) is None
    assert live_projection(2.0, 20, 20, 100) == pytest.approx(10.0)
    assert live_projection(2.0, 20, 20, None) is None
    # 20 items reused from an earlier run cost nothing and do not dilute the mean
    assert live_projection(2.0, 20, 40, 100) == pytest.approx(2.0 + 0.1 * 60)
