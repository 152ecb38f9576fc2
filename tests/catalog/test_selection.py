"""Selecting rows: SQL filters over every format, reproducible spread samples, limits, streaming."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from skuforge.catalog import open_catalog, select
from skuforge.errors import SelectionError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catalog"

HEADER = ["sku", "category", "Unit price", "title"]
PRODUCTS = [
    ["A1", "Shoes", "25", "Runner"],
    ["A2", "Shoes", "15", "Slipper"],
    ["A3", "Bags", "120", "Tote"],
    ["A4", "Shoes", "N/A", "Boot"],
    ["A5", "Hats", "30.5", "Cap"],
]


def make(tmp_path: Path, fmt: str) -> Path:
    """The same five products in one of the supported formats."""
    path = tmp_path / f"products.{fmt}"
    if fmt in ("csv", "tsv"):
        with path.open("w", encoding="gb18030", newline="") as handle:
            csv.writer(handle, delimiter="," if fmt == "csv" else "\t").writerows([HEADER, *PRODUCTS])
    elif fmt == "xlsx":
        workbook = Workbook()
        workbook.active.append(HEADER)
        for sku, category, price, title in PRODUCTS:
            number = float(price) if price[0].isdigit() else price
            workbook.active.append([sku, category, number, title])
        workbook.save(path)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(dict(zip(HEADER, p, strict=True))) for p in PRODUCTS))
    else:
        pq.write_table(pa.table({name: [p[i] for p in PRODUCTS] for i, name in enumerate(HEADER)}), path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx", "jsonl", "parquet"])
def test_where_filters_every_format_and_keeps_row_identity(tmp_path: Path, fmt: str) -> None:
    catalog = open_catalog(make(tmp_path, fmt), id_column="sku")
    chosen = list(select(catalog, where="category = 'Shoes' AND \"Unit price\" > 20"))
    assert [row.row_id for row in chosen] == ["A1"]
    assert chosen[0].index == 0
    assert chosen[0].data["title"] == "Runner"
    first_data_row = {
        "csv": "line 2",
        "tsv": "line 2",
        "xlsx": "row 2",
        "jsonl": "line 1",
        "parquet": "row 1",
    }
    assert chosen[0].line.startswith(f"{first_data_row[fmt]} of products.{fmt}")


def test_where_compares_numbers_as_numbers_and_skips_non_numbers(tmp_path: Path) -> None:
    catalog = open_catalog(make(tmp_path, "csv"), id_column="sku")
    chosen = [row.row_id for row in select(catalog, where='"Unit price" >= 25')]
    assert chosen == ["A1", "A3", "A5"]  # '120' > 25 numerically; 'N/A' is not a number, so not matched
    assert [r.data["Unit price"] for r in select(catalog, where="sku = 'A5'")] == ["30.5"]  # text kept


def test_where_over_gb18030_chinese_values() -> None:
    catalog = open_catalog(EXAMPLES / "catalog.csv", id_column="sku")
    chosen = [row.row_id for row in select(catalog, where="title LIKE '%不锈钢%' OR color = '黑色'")]
    assert chosen == ["CN-2001", "CN-2004"]


def test_bad_predicate_names_the_predicate_the_reason_and_the_columns(tmp_path: Path) -> None:
    catalog = open_catalog(make(tmp_path, "csv"))
    with pytest.raises(SelectionError) as caught:
        select(catalog, where="catgory = 'Shoes'")
    error = caught.value
    assert "catgory = 'Shoes'" in error.message
    assert 'Did you mean "category"?' in error.message
    assert 'sku, category, "Unit price", title' in (error.hint or "")


@pytest.mark.parametrize(
    "where", ["category = ", "1=1; SELECT 42", "EXISTS (SELECT * FROM read_text('/etc/hostname'))"]
)
def test_predicates_that_are_not_one_safe_expression_are_refused(tmp_path: Path, where: str) -> None:
    catalog = open_catalog(make(tmp_path, "csv"))
    with pytest.raises(SelectionError, match="cannot be applied"):
        list(select(catalog, where=where))


def test_limit_takes_the_first_rows_after_the_filter(tmp_path: Path) -> None:
    catalog = open_catalog(make(tmp_path, "jsonl"), id_column="sku")
    assert [r.row_id for r in select(catalog, where="category <> 'Bags'", limit=2)] == ["A1", "A2"]
    assert [r.row_id for r in select(catalog, limit=0)] == []


def test_sample_is_reproducible_and_spread_over_categories() -> None:
    catalog = open_catalog(EXAMPLES / "catalog.xlsx", id_column="sku")
    first = [row.row_id for row in select(catalog, sample=6, seed=7)]
    again = [row.row_id for row in select(catalog, sample=6, seed=7)]
    other = [row.row_id for row in select(catalog, sample=6, seed=8)]
    assert first == again
    assert first != other
    rows = {row.row_id: row for row in catalog.rows()}
    categories = Counter(rows[sku].data["category"] for sku in first)
    assert len(categories) == 6  # six categories, six picks: one from each
    assert [rows[sku].index for sku in first] == sorted(rows[sku].index for sku in first)


def test_sample_respects_the_filter_and_an_explicit_stratum() -> None:
    catalog = open_catalog(EXAMPLES / "catalog.xlsx", id_column="sku")
    chosen = list(select(catalog, where="currency = 'CNY'", sample=4, seed=1, stratify_by="category"))
    assert len(chosen) == 4
    assert all(row.data["currency"] == "CNY" for row in chosen)
    assert len({row.data["category"] for row in chosen}) == 4
    with pytest.raises(SelectionError, match="Did you mean 'category'"):
        select(catalog, sample=2, stratify_by="categroy")


def test_sample_larger_than_the_catalog_returns_every_row(tmp_path: Path) -> None:
    catalog = open_catalog(make(tmp_path, "parquet"))
    assert len(list(select(catalog, sample=50, seed=3))) == len(PRODUCTS)


def test_many_categories_and_a_small_sample_still_pick_distinct_categories() -> None:
    catalog = open_catalog(FIXTURES / "amazon_sample.csv", id_column="Uniq Id")
    chosen = list(select(catalog, sample=5, seed=11))
    assert len(chosen) == 5
    assert len({row.data["Category"] for row in chosen}) == 5


def test_fifty_thousand_rows_stream_through_a_filter(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "category", "price", "title"])
        for i in range(50_000):
            writer.writerow([f"S{i:06d}", f"cat{i % 7}", f"{(i * 37) % 1000 / 10:.1f}", f"Product {i}"])
    catalog = open_catalog(path, id_column="sku")
    chosen = select(catalog, where="category = 'cat3' AND price < 50")
    expected = [i for i in range(50_000) if i % 7 == 3 and (i * 37) % 1000 / 10 < 50]
    got = [row.index for row in chosen]
    assert got == expected
    assert len(got) == len(expected) > 3000
