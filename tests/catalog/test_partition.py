"""Partitioned Parquet copies of a catalog: the same rows back, streamed, and never half-written."""

from __future__ import annotations

import csv
import datetime as dt
import json
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from skuforge.catalog import open_catalog
from skuforge.catalog.partition import (
    MANIFEST,
    catalog_fingerprint,
    decode_row,
    encode_row,
    open_partitions,
    partition_catalog,
    rows_of,
)
from skuforge.errors import CatalogError


def read_back(uri: str) -> list[object]:
    parts = open_partitions(uri)
    assert parts is not None
    return [row for path in parts.paths() for row in rows_of(pq.read_table(path))]


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sku", "title", "price", "note"])
        for i in range(rows):
            w.writerow([f"S{i}", f"Mug {i} 不锈钢", f"{i}.50", "" if i % 3 else "=1+1"])
    return path


def test_a_csv_comes_back_row_for_row_with_index_id_and_line(tmp_path: Path) -> None:
    catalog = open_catalog(write_csv(tmp_path / "feed.csv", 2_500), id_column="sku")
    parts = partition_catalog(catalog, str(tmp_path / "parts"), rows_per_file=1_000, group_rows=300)
    assert [f.rows for f in parts.files] == [1_200, 1_200, 100]  # whole row groups per file
    assert [f.first_index for f in parts.files] == [0, 1_200, 2_400]
    assert read_back(str(tmp_path / "parts")) == list(catalog.rows())
    table = pq.read_table(parts.paths()[0])
    assert table.column_names == ["row_index", "row_id", "row_line", "row_data", "row_typed"]
    assert (
        table.column("row_id")[5].as_py() == "S5"
        and table.column("row_line")[5].as_py() == "line 7 of feed.csv"
    )


def test_spreadsheet_numbers_dates_and_nested_json_keep_their_types(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["sku", "price", "launched", "active", "title"])
    sheet.append([10023, 19.99, dt.datetime(2024, 5, 1, 8, 30), True, "Kettle"])
    sheet.append(["A-2", 5, None, False, "Lamp"])
    workbook.save(tmp_path / "feed.xlsx")
    catalog = open_catalog(tmp_path / "feed.xlsx", id_column="sku")
    partition_catalog(catalog, str(tmp_path / "x"))
    back = read_back(str(tmp_path / "x"))
    assert back == list(catalog.rows())
    assert back[0].row_id == "10023" and type(back[0].data["price"]) is float
    assert back[0].data["launched"] == dt.datetime(2024, 5, 1, 8, 30) and back[1].data["active"] is False

    jsonl = tmp_path / "feed.jsonl"
    records = [
        {"id": 1, "title": "Mug", "specs": {"ml": 350, "colours": ["red", "blue"]}},
        {"id": 2, "extra": "late"},
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    catalog = open_catalog(jsonl)
    partition_catalog(catalog, str(tmp_path / "j"))
    assert read_back(str(tmp_path / "j")) == list(open_catalog(jsonl).rows())
    assert open_partitions(str(tmp_path / "j")).columns == ["id", "title", "specs", "extra"]  # type: ignore[union-attr]


def test_every_value_type_a_reader_gives_round_trips_exactly() -> None:
    data = {
        "text": "x",
        "empty": None,
        "big": 2**70,
        "nan": float("nan"),
        "inf": float("-inf"),
        "money": Decimal("12.30"),
        "day": dt.date(2024, 1, 2),
        "at": dt.time(8, 15),
        "raw": b"\x00\xff",
        "nested": {"a": [1, 2.5, None]},
    }
    back = decode_row(*encode_row(data))
    assert list(back) == list(data)  # the column order a recipe may iterate over
    assert back["nan"] != back["nan"] and {k: v for k, v in back.items() if k != "nan"} == {
        k: v for k, v in data.items() if k != "nan"
    }
    assert type(back["big"]) is int and back["money"] == Decimal("12.30")


def test_a_parquet_catalog_with_a_value_json_cannot_carry_is_refused_by_name(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"id": ["a"], "specs": [{"made": dt.datetime(2024, 1, 1)}]}), tmp_path / "c.parquet"
    )
    with pytest.raises(CatalogError) as caught:
        partition_catalog(open_catalog(tmp_path / "c.parquet"), str(tmp_path / "p"))
    assert "Column 'specs'" in caught.value.message and "--executor local" in (caught.value.hint or "")
    assert open_partitions(str(tmp_path / "p")) is None  # no manifest: never used


def test_a_conversion_stopped_by_a_bad_row_leaves_nothing_usable(tmp_path: Path) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text("sku,title\nA,one\nB,two\nA,three\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="appears twice"):
        partition_catalog(open_catalog(path, id_column="sku"), str(tmp_path / "p"), group_rows=1)
    assert (tmp_path / "p").exists() and not (tmp_path / "p" / MANIFEST).exists()
    assert open_partitions(str(tmp_path / "p")) is None


def test_the_fingerprint_changes_with_the_file_and_with_how_it_is_read(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "feed.csv", 10)
    first = catalog_fingerprint(open_catalog(path, id_column="sku"))
    assert catalog_fingerprint(open_catalog(path, id_column="sku")) == first
    assert catalog_fingerprint(open_catalog(path)) != first
    write_csv(path, 11)
    assert catalog_fingerprint(open_catalog(path, id_column="sku")) != first


def test_conversion_memory_does_not_grow_with_the_catalog(tmp_path: Path) -> None:
    """Measured with tracemalloc (allocations, not time): ten times the rows, about the same peak. (No id
    column here: the reader's own duplicate-id check keeps ~50 bytes per id, by design.)"""
    peaks = []
    for rows in (4_000, 40_000):
        catalog = open_catalog(write_csv(tmp_path / f"c{rows}.csv", rows))
        tracemalloc.start()
        partition_catalog(catalog, str(tmp_path / f"p{rows}"), group_rows=2_000)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] * 2
