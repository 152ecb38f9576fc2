"""The price table: lookups, costs, batch discount, user overrides, sources, --price and --max-cost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from skuforge.config import Settings
from skuforge.errors import ConfigError, UserError
from skuforge.providers.base import Usage
from skuforge.providers.prices import load_prices, parse_price, price_for, price_notes, require_price


def test_shipped_table_has_a_date_and_current_models_of_every_priced_vendor() -> None:
    table = load_prices()
    assert table.as_of and table.age_days() is not None
    for name in (
        "openai:gpt-5-mini",
        "openai:gpt-5.4-nano",
        "openai:gpt-4o-mini",
        "anthropic:claude-haiku-4-5",
        "anthropic:claude-sonnet-4-6",
        "anthropic:claude-opus-4-6",
        "anthropic:claude-3-5-haiku",
        "deepseek:deepseek-flash",
        "deepseek:deepseek-v4-pro",
        "qwen:qwen-plus",
        "qwen:qwen-turbo",
        "qwen:qwen-max",
    ):
        assert price_for(name) is not None, name


def test_every_shipped_entry_says_where_and_when_its_figures_were_read() -> None:
    table = load_prices()
    for name, price in table.models.items():
        assert price.source and price.read, name
        assert dt.date.fromisoformat(price.read) <= dt.date.today(), name
        if price.source.startswith("http") and not price.vendor_page:
            assert price.note, f"{name}: figures not from the vendor's page must say where they come from"


def test_a_vendor_without_a_readable_price_page_is_named_in_the_notes_not_invented() -> None:
    table = load_prices()
    assert not table.known_models("gemini")
    assert any("Gemini" in note for note in table.notes)


def test_anthropic_cache_writes_cost_more_than_input_and_reads_less() -> None:
    price = price_for("anthropic:claude-haiku-4-5")
    assert price is not None
    usage = Usage(input_tokens=3_000_000, cached_input_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert price.cost(usage) == pytest.approx(1.00 + 0.10 + 1.25)


def test_cost_counts_cached_input_at_the_cached_rate() -> None:
    price = price_for("openai:gpt-4o-mini")
    assert price is not None
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=1_000_000)
    assert price.cost(usage) == pytest.approx(0.6 * 0.15 + 0.4 * 0.075 + 0.60)


def test_batch_halves_the_cost_where_there_is_a_batch_api() -> None:
    usage = Usage(input_tokens=2000, output_tokens=500)
    gpt, deepseek = price_for("openai:gpt-5-mini"), price_for("deepseek:deepseek-flash")
    assert gpt is not None and deepseek is not None
    assert gpt.cost(usage, batch=True) == pytest.approx(gpt.cost(usage) / 2)
    assert deepseek.cost(usage, batch=True) == pytest.approx(deepseek.cost(usage))


def test_dated_names_aliases_and_wildcards_resolve() -> None:
    assert price_for("openai:gpt-4o-mini-2024-07-18") == price_for("openai:gpt-4o-mini")
    assert price_for("anthropic:claude-sonnet-4-20250514") == price_for("anthropic:claude-sonnet-4")
    assert price_for("anthropic:claude-sonnet-4-0") == price_for("anthropic:claude-sonnet-4")
    assert price_for("anthropic:claude-haiku-4-5-20251001") == price_for("anthropic:claude-haiku-4-5")
    assert price_for("deepseek:deepseek-v4-flash") == price_for("deepseek:deepseek-flash")
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


def test_price_flag_gives_input_output_and_optionally_cached_per_million() -> None:
    price = parse_price("0.25/2")
    assert (price.input, price.output, price.cached_input) == (0.25, 2.0, None)
    assert parse_price("$1/$5/0.1").cached_input == 0.1
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert price_for("openai:gpt-9", price=price) is price and price.cost(usage) == pytest.approx(2.25)


@pytest.mark.parametrize("text", ["", "0.25", "cheap/2", "1/2/3/4", "-1/2"])
def test_a_malformed_price_flag_says_the_form_it_wants(text: str) -> None:
    with pytest.raises(UserError) as info:
        parse_price(text)
    assert "IN/OUT" in info.value.message and "--price 0.25/2.00" in (info.value.hint or "")


def test_max_cost_without_a_price_names_the_exact_line_to_add(_isolated_home: Path) -> None:
    with pytest.raises(UserError) as info:
        require_price("openai:gpt-9", Settings())
    assert "--max-cost needs a price for 'openai:gpt-9'" in info.value.message
    hint = info.value.hint or ""
    assert "--price IN/OUT" in hint and str(_isolated_home / "prices.yaml") in hint
    assert '"openai:gpt-9": {input: IN, output: OUT}' in hint


def test_max_cost_accepts_a_price_from_the_flag_or_the_table() -> None:
    flag = parse_price("1/2")
    assert require_price("openai:gpt-9", Settings(), flag) is flag
    assert require_price("openai:gpt-5-mini", Settings()).input == 0.25


def test_an_unknown_model_gets_a_note_with_a_did_you_mean_never_a_refusal() -> None:
    notes = price_notes("openai:gpt-5-mnii", Settings())
    assert len(notes) == 1 and "cost will show as unknown" in notes[0]
    assert "Did you mean 'openai:gpt-5-mini'?" in notes[0]
    assert price_notes("openai:gpt-5-mini", Settings()) == []


def test_models_prices_prints_each_source_and_the_tables_age(capsys: pytest.CaptureFixture[str]) -> None:
    from skuforge.cli.main import main

    assert main(["models", "prices"]) == 0
    out = capsys.readouterr().out
    assert (
        "anthropic:claude-haiku-4-5" in out
        and "https://platform.claude.com/docs/zh-CN/about-claude/pricing" in out
    )
    assert f"Prices read on {load_prices().as_of}" in out and "Warning" not in out
    assert "Gemini" in out  # the vendor without a readable page is named


def test_models_prices_warns_when_the_table_is_older_than_90_days(
    _isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from skuforge.cli.main import main

    old = (dt.date.today() - dt.timedelta(days=120)).isoformat()
    (_isolated_home / "prices.yaml").write_text(f"as_of: '{old}'\nmodels: {{}}\n", encoding="utf-8")
    assert main(["models", "prices", "--provider", "openai"]) == 0
    out = capsys.readouterr().out
    assert "Warning: these prices were read on" in out and "120 days ago" in out
    assert "openai:gpt-5-mini" in out and "anthropic:" not in out
