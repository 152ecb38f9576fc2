"""Writing enriched catalogs: round trips, formula safety, failures, Excel limits, atomic replace."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from skuforge.catalog import neutralise_formula, open_catalog, write_catalog
from skuforge.catalog.cells import EXCEL_CELL_LIMIT, TRUNCATION_MARKER
from skuforge.errors import CatalogError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
COLUMNS = ["sku", "title", "price", "selling_points", "attributes"]
ROWS: list[dict[str, Any]] = [
    {"sku": "A1", "title": "不锈钢保温杯 500ml", "price": "89", "selling_points": ["保温12小时", "304不锈钢"],
     "attributes": {"material": "304不锈钢", "capacity": "500ml"}},
    {"sku": "A2", "title": "Yoga bag, grey", "price": None, "selling_points": None, "attributes": None},
]  # fmt: skip
FAILURES = [
    {"row_id": "A3", "line": "row 4 of in.xlsx (sheet 'Products')", "step": "title", "reason": "timeout"}
]


def read_xlsx(path: Path, sheet: str) -> list[list[Any]]:
    workbook = load_workbook(path)
    try:
        return [[cell.value for cell in row] for row in workbook[sheet].iter_rows()]
    finally:
        workbook.close()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "xlsx", "jsonl", "parquet"])
def test_each_format_round_trips_through_the_reader(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"out.{fmt}"
    report = write_catalog(path, COLUMNS, ROWS)
    catalog = open_catalog(path, id_column="sku")
    rows = list(catalog.rows())
    assert report.rows == 2
    assert catalog.columns == COLUMNS
    assert [row.row_id for row in rows] == ["A1", "A2"]
    assert rows[0].data["title"] == "不锈钢保温杯 500ml"
    assert rows[1].data == {"sku": "A2", "title": "Yoga bag, grey", "price": None,
                            "selling_points": None, "attributes": None}  # fmt: skip
    points = rows[0].data["selling_points"]
    expected_points: Any = ["保温12小时", "304不锈钢"] if fmt == "jsonl" else "保温12小时\n304不锈钢"
    assert points == expected_points
    if fmt != "jsonl":
        assert rows[0].data["attributes"] == '{"material":"304不锈钢","capacity":"500ml"}'


def test_csv_is_written_as_utf8_with_bom_for_excel(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_catalog(path, COLUMNS, ROWS)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfsku,title")
    assert open_catalog(path).columns[0] == "sku"


def test_the_sample_catalog_converts_from_gb18030_csv_to_xlsx(tmp_path: Path) -> None:
    source = open_catalog(EXAMPLES / "catalog.csv", id_column="sku")
    write_catalog(tmp_path / "c.xlsx", source.columns, (row.data for row in source.rows()))
    back = [row.data for row in open_catalog(tmp_path / "c.xlsx").rows()]
    assert back == [row.data for row in source.rows()]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("＝1+1", "'＝1+1"),
        ("- Stainless steel", "'- Stainless steel"),
        ("-5", "-5"),
        ("+3.25", "+3.25"),
        ("-5%", "-5%"),
        ("+86 138 0013 8000", "+86 138 0013 8000"),
        ("+1 (555) 123-4567", "+1 (555) 123-4567"),
        ("-1,234.50", "-1,234.50"),
        ("-.5", "-.5"),
        ("+1e5", "+1e5"),
        ("-", "-"),
        ("\tplain", "\tplain"),
        ("a=b", "a=b"),
        ("", ""),
        (42, 42),
        (None, None),
    ],
)
def test_csv_quotes_only_what_a_spreadsheet_would_evaluate(value: Any, expected: Any) -> None:
    assert neutralise_formula(value) == expected


def test_formula_injection_is_neutralised_in_csv_and_xlsx(tmp_path: Path) -> None:
    rows = [{"sku": "=1+1", "title": "@cmd", "price": 12.5, "selling_points": ["=evil()", "fine"]}]
    columns = ["sku", "title", "price", "selling_points"]
    write_catalog(tmp_path / "o.csv", columns, rows)
    with (tmp_path / "o.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle))[1] == ["'=1+1", "'@cmd", "12.5", "'=evil()\nfine"]
    write_catalog(tmp_path / "o.xlsx", columns, rows)
    workbook = load_workbook(tmp_path / "o.xlsx")
    try:
        cells = list(workbook["Enriched"].iter_rows(min_row=2))[0]
        assert [cell.value for cell in cells] == ["=1+1", "@cmd", 12.5, "=evil()\nfine"]
        assert [cell.data_type for cell in cells] == ["s", "s", "n", "s"]
    finally:
        workbook.close()


def test_jsonl_and_parquet_keep_values_exactly(tmp_path: Path) -> None:
    rows = [{"sku": "=1+1"}]
    write_catalog(tmp_path / "o.jsonl", ["sku"], rows)
    write_catalog(tmp_path / "o.parquet", ["sku"], rows)
    assert next(open_catalog(tmp_path / "o.jsonl").rows()).data["sku"] == "=1+1"
    assert next(open_catalog(tmp_path / "o.parquet").rows()).data["sku"] == "=1+1"


def test_failures_go_to_a_sheet_in_xlsx(tmp_path: Path) -> None:
    report = write_catalog(tmp_path / "o.xlsx", COLUMNS, ROWS, sheet="Products", failures=FAILURES)
    assert report.failures == 1
    assert read_xlsx(tmp_path / "o.xlsx", "Failures") == [
        ["row_id", "line", "step", "reason"],
        ["A3", "row 4 of in.xlsx (sheet 'Products')", "title", "timeout"],
    ]
    assert read_xlsx(tmp_path / "o.xlsx", "Products")[0] == COLUMNS


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_failures_go_to_a_sibling_file_for_other_formats(tmp_path: Path, fmt: str) -> None:
    report = write_catalog(tmp_path / f"o.{fmt}", COLUMNS, ROWS, failures=iter(FAILURES))
    assert report.failures_path == tmp_path / f"o.failures.{fmt}"
    assert [row.data for row in open_catalog(report.failures_path).rows()] == FAILURES


def test_no_failures_means_no_sibling_file(tmp_path: Path) -> None:
    report = write_catalog(tmp_path / "o.csv", COLUMNS, ROWS, failures=[])
    assert report.failures_path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv"]


def test_cells_over_the_excel_limit_are_truncated_and_reported(tmp_path: Path) -> None:
    long_text = "长" * (EXCEL_CELL_LIMIT + 10)
    report = write_catalog(
        tmp_path / "o.xlsx", ["sku", "description"], [{"sku": "A1", "description": long_text}]
    )
    value = read_xlsx(tmp_path / "o.xlsx", "Enriched")[1][1]
    assert len(value) == EXCEL_CELL_LIMIT
    assert value.endswith(TRUNCATION_MARKER)
    assert report.truncated_count == 1
    assert report.truncated == ["A1, column 'description'"]


def test_control_characters_are_stripped_from_xlsx(tmp_path: Path) -> None:
    write_catalog(tmp_path / "o.xlsx", ["t"], [{"t": "bad\x00\x07 text\x1f\tkept\nlines"}])
    assert read_xlsx(tmp_path / "o.xlsx", "Enriched")[1] == ["bad text\tkept\nlines"]


def test_a_failed_write_leaves_the_previous_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    write_catalog(path, COLUMNS, ROWS)
    before = path.read_bytes()

    def exploding_rows() -> Any:
        yield ROWS[0]
        raise RuntimeError("the model server went away")

    with pytest.raises(RuntimeError):
        write_catalog(path, COLUMNS, exploding_rows())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv"]


def test_duplicate_output_columns_and_missing_folders_are_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="listed twice"):
        write_catalog(tmp_path / "o.csv", ["sku", "sku"], [])
    with pytest.raises(CatalogError, match="does not exist"):
        write_catalog(tmp_path / "nope" / "o.csv", ["sku"], [])
    with pytest.raises(CatalogError, match="Unknown catalog format"):
        write_catalog(tmp_path / "o.out", ["sku"], [], fmt="xls")


def test_explicit_format_wins_over_the_extension(tmp_path: Path) -> None:
    write_catalog(tmp_path / "o.txt", ["sku"], [{"sku": "A1"}], fmt="tsv")
    assert (tmp_path / "o.txt").read_bytes() == b"\xef\xbb\xbfsku\r\nA1\r\n"


def test_the_readme_table_of_formula_examples_is_what_the_csv_writer_does(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- formula-examples")[1].split("<!-- end formula-examples -->")[0]
    examples = re.findall(r"^\s*\| `(.+?)` \| `(.+?)` \|$", table, re.MULTILINE)
    assert len(examples) >= 10
    write_catalog(tmp_path / "x.csv", ["value"], [{"value": value} for value, _ in examples])
    with (tmp_path / "x.csv").open(encoding="utf-8-sig", newline="") as handle:
        written = [row[0] for row in list(csv.reader(handle))[1:]]
    assert written == [expected for _, expected in examples]


def test_xlsx_keeps_phones_percentages_and_formula_text_exactly(tmp_path: Path) -> None:
    values = ["+86 138 0013 8000", "-5%", "=1+1", "@SUM(A1)", "- Stainless steel"]
    write_catalog(tmp_path / "o.xlsx", ["value"], [{"value": v} for v in values])
    workbook = load_workbook(tmp_path / "o.xlsx")
    try:
        cells = [row[0] for row in workbook["Enriched"].iter_rows(min_row=2)]
        assert [(c.value, c.data_type) for c in cells] == [(v, "s") for v in values]
    finally:
        workbook.close()
