"""The gold loaders read each benchmark's own layout into GoldItems."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.errors import CatalogError
from skuforge.eval.loaders import attributes_by_category, fill_absent, load_gold

FIXTURES = Path(__file__).parents[1] / "fixtures" / "eval"


def test_oa_mine_title_becomes_the_row_and_values_the_gold() -> None:
    items = load_gold(FIXTURES / "oa-mine.jsonl")
    assert len(items) == 6
    first = items[0]
    assert first.category == "Coffee"
    assert first.row["title"].startswith("The Original Donut Shop Coconut Mocha")
    assert first.attributes["Brand"] == ["The Original Donut Shop"]
    assert first.attributes["Net content"] == ["24 Count"]


def test_ae_110k_n_a_gold_means_the_attribute_is_absent() -> None:
    items = load_gold(FIXTURES / "ae-110k.jsonl", "ae-110k")
    wlure = items[3]
    assert wlure.attributes["Length"] == []
    assert wlure.attributes["Brand Name"] == ["wLure"]


def test_wdc_pave_reads_title_description_and_every_listed_attribute() -> None:
    items = load_gold(FIXTURES / "wdc-pave.jsonl")
    canon = items[0]
    assert canon.id == "11618863"
    assert canon.row["description"].startswith("Pg-210Xl/Cl-211Xl")
    assert canon.attributes["Pack Quantity"] == ["50"]
    assert canon.attributes["Color(s)"] == []
    assert canon.attributes["Product Type"] == ["Printing, Copying, Laminating", "Paper Products"]


def test_fill_absent_gives_every_item_its_category_schema() -> None:
    items = fill_absent(load_gold(FIXTURES / "oa-mine.jsonl"))
    schema = attributes_by_category(items)
    for item in items:
        assert list(item.attributes) == schema[item.category]
    assert any(values == [] for item in items for values in item.attributes.values())


def test_limit_reads_only_the_first_items() -> None:
    assert [i.id for i in load_gold(FIXTURES / "ae-110k.jsonl", limit=2)] == ["1", "2"]


def test_a_file_in_another_layout_names_the_formats(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"sku": 1, "name": "x"}\n', encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_gold(path)
    assert "--format" in (err.value.hint or "")


def test_a_broken_line_is_named_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(
        (FIXTURES / "oa-mine.jsonl").read_text(encoding="utf-8") + "{not json\n", encoding="utf-8"
    )
    with pytest.raises(CatalogError, match="Line 7"):
        load_gold(path)
