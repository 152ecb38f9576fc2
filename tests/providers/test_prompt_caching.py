"""Prompt caching counted: cached tokens as each vendor reports them, priced at the cached rate, projected."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.calls.test_breaker_run import write_catalog

from skuforge.cli.display import cache_share, run_cost, summary_table
from skuforge.engine.progress import RunProgress
from skuforge.engine.runner import Runner
from skuforge.engine.trial import promote, run_trial, trial_spec
from skuforge.providers.base import Capabilities, Message, Request, Usage
from skuforge.providers.openai import OpenAIProvider
from skuforge.providers.prices import price_for
from skuforge.store import Store, open_store
from skuforge.testing.mock_openai import MockConfig, MockServer

SYSTEM = "You write product titles. " * 40  # a fixed prefix, as the recipes' system prompts are
REQUEST = Request(
    messages=[
        Message(role="system", content=SYSTEM),
        Message(role="user", content="brand: Acme\ntitle: kettle"),
    ]
)


def usage_twice(server: MockServer) -> tuple[Usage, Usage]:
    async def go() -> tuple[Usage, Usage]:
        caps = Capabilities(json_mode=True, temperature=False, max_tokens_field="max_completion_tokens")
        async with OpenAIProvider("gpt-5-mini", base_url=server.url, capabilities=caps) as provider:
            first = await provider.generate(REQUEST)
            second = await provider.generate(REQUEST.model_copy(update={"seed": 2}))
            return first.usage, second.usage

    return asyncio.run(go())


@pytest.mark.parametrize("flavor", ["openai", "deepseek", "qwen", "gemini"])
def test_cached_prompt_tokens_are_read_as_each_vendor_reports_them(flavor: str) -> None:
    with MockServer(MockConfig(flavor=flavor, prefix_cache=True)) as server:  # type: ignore[arg-type]
        first, second = usage_twice(server)
    assert first.cached_input_tokens == 0
    assert 0 < second.cached_input_tokens < second.input_tokens
    assert second.input_tokens == first.input_tokens


def test_a_prefix_shorter_than_the_servers_minimum_is_not_cached() -> None:
    with MockServer(MockConfig(prefix_cache=True, cache_min_tokens=1024)) as server:
        _, second = usage_twice(server)
    assert second.cached_input_tokens == 0


def test_costs_use_the_cached_rate_for_cached_tokens() -> None:
    price = price_for("deepseek:deepseek-flash")
    assert price is not None and price.cached_input is not None
    usage = Usage(input_tokens=1000, cached_input_tokens=800, output_tokens=100)
    expected = (200 * price.input + 800 * price.cached_input + 100 * price.output) / 1e6
    assert price.cost(usage) == pytest.approx(expected)


@pytest.fixture
def store(tmp_path: Path) -> Store:  # type: ignore[misc]
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


def test_a_trial_against_a_caching_server_projects_the_full_run_within_15_percent(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = write_catalog(tmp_path / "catalog.csv", 300)
    with MockServer(MockConfig(models=["gpt-5-mini"], prefix_cache=True)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        spec = trial_spec(catalog, recipe="attributes", model="openai:gpt-5-mini", sample=30)
        trial = run_trial(store, spec)
        full = promote(store, trial.job.id)
        runner = Runner(store, store.get_job(full.id))
        progress = asyncio.run(runner.run())
    store.flush()
    projection = trial.projection
    actual = progress.cost
    assert projection.cost_expected is not None and actual > 0
    assert abs(projection.cost_expected - actual) <= 0.15 * actual
    # the projection priced the hit share it measured at the cached rate, not everything at the input rate
    assert projection.cache_hit_share is not None and projection.cache_hit_share > 0.2
    assert any("prompt cache" in note for note in projection.notes)
    price = price_for("openai:gpt-5-mini")
    assert price is not None and price.cached_input is not None
    uncached = (
        projection.items_to_send
        * (projection.input_tokens.mean * price.input + projection.output_tokens.mean * price.output)
        / 1e6
    )
    assert projection.cost_expected < 0.95 * uncached


def test_the_run_summary_shows_the_hit_share_and_an_unknown_cost() -> None:
    progress = RunProgress(
        job_id="j1", input_tokens=1000, cached_input_tokens=620, cost=0.0, cost_known=False
    )
    assert cache_share(progress) == "62% of 1,000 input tokens read from the provider's cache"
    assert run_cost(progress) == "unknown (no price for the model)"
    rows = {row[0]: row[1] for row in zip(*(c._cells for c in summary_table(progress).columns), strict=True)}
    assert rows["prompt cache"].startswith("62%") and rows["cost"].startswith("unknown")
