"""The price table: lookups, costs, batch discount, user overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.errors import ConfigError
from skuforge.providers.base import Usage
from skuforge.providers.prices import load_prices, price_for


def test_shipped_table_has_a_date_and_the_listed_models() -> None:
    table = load_prices()
    assert table.as_of and table.source
    for name in (
        "openai:gpt-4o",
        "openai:gpt-4o-mini",
        "openai:gpt-4.1",
        "openai:gpt-4.1-mini",
        "openai:gpt-4.1-nano",
        "anthropic:claude-3-5-haiku",
        "anthropic:claude-sonnet-4",
        "deepseek:deepseek-chat",
        "qwen:qwen-plus",
        "qwen:qwen-turbo",
        "qwen:qwen-max",
    ):
        assert price_for(name) is not None, name


def test_cost_counts_cached_input_at_the_cached_rate() -> None:
    price = price_for("openai:gpt-4o-mini")
    assert price is not None
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=1_000_000)
    assert price.cost(usage) == pytest.approx(0.6 * 0.15 + 0.4 * 0.075 + 0.60)


def test_batch_halves_the_cost_where_there_is_a_batch_api() -> None:
    usage = Usage(input_tokens=2000, output_tokens=500)
    gpt, deepseek = price_for("openai:gpt-4o"), price_for("deepseek:deepseek-chat")
    assert gpt is not None and deepseek is not None
    assert gpt.cost(usage, batch=True) == pytest.approx(gpt.cost(usage) / 2)
    assert deepseek.cost(usage, batch=True) == pytest.approx(deepseek.cost(usage))


def test_dated_names_aliases_and_wildcards_resolve() -> None:
    assert price_for("openai:gpt-4o-mini-2024-07-18") == price_for("openai:gpt-4o-mini")
    assert price_for("anthropic:claude-sonnet-4-20250514") == price_for("anthropic:claude-sonnet-4")
    assert price_for("anthropic:claude-sonnet-4-0") == price_for("anthropic:claude-sonnet-4")
    local = price_for("local:qwen2.5-0.5b")
    assert local is not None and local.cost(Usage(input_tokens=10**6, output_tokens=10**6)) == 0


def test_fake_has_a_nominal_non_zero_price() -> None:
    fake = price_for("fake:")
    assert fake is not None
    assert fake.cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == pytest.approx(3.0)


def test_unknown_model_has_no_price() -> None:
    assert price_for("openai:no-such-model") is None


def test_override_file_merges_field_by_field_and_adds_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "as_of: '2030-01-01'\nmodels:\n"
        "  openai:gpt-4o-mini: {output: 9.0}\n  acme:m1: {input: 1, output: 1}\n",
        encoding="utf-8",
    )
    price = price_for("openai:gpt-4o-mini", path)
    assert price is not None and price.output == 9.0 and price.input == 0.15
    assert price_for("acme:m1", path) is not None
    assert load_prices(path).as_of == "2030-01-01"


def test_home_prices_file_is_read_when_present(_isolated_home: Path) -> None:
    (_isolated_home / "prices.yaml").write_text("models:\n  openai:gpt-4o: {input: 99, output: 1}\n")
    price = price_for("openai:gpt-4o")
    assert price is not None and price.input == 99


def test_a_bad_override_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("models:\n  x:y: {input: free}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="prices.yaml"):
        price_for("x:y", path)


def test_a_missing_override_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        price_for("openai:gpt-4o", tmp_path / "nope.yaml")
