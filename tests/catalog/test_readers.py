"""Reading catalogs: formats, encodings, sheets, headers, and the errors a user can cause."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from skuforge.catalog import SUPPORTED_FORMATS, infer_format, open_catalog, output_path_for
from skuforge.errors import CatalogError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "catalog"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def test_gb18030_csv_reads_with_chinese_text_intact() -> None:
    catalog = open_catalog(FIXTURES / "shopee_titles_gb18030.csv")
    rows = list(catalog.rows())
    assert catalog.encoding == "gb18030"
    assert catalog.columns == ["row", "title_zh", "title_en"]
    assert len(rows) == 30
    assert rows[1].data["title_zh"].startswith("Hello Kitty 凱蒂貓 KITTY 涼鞋")
    assert rows[1].line == "line 3 of shopee_titles_gb18030.csv"


def test_simplified_chinese_gb18030_is_detected(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "supplier.csv", [["名称", "材质"], ["不锈钢保温杯", "304不锈钢"]], "gb18030")
    catalog = open_catalog(path)
    assert catalog.encoding == "gb18030"
    assert [row.data for row in catalog.rows()] == [{"名称": "不锈钢保温杯", "材质": "304不锈钢"}]


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "excel.csv", [["sku", "title"], ["A1", "Mug"]], "utf-8-sig")
    catalog = open_catalog(path, id_column="sku")
    assert catalog.columns[0] == "sku"
    assert next(catalog.rows()).row_id == "A1"


def test_latin1_csv_falls_back_to_a_legacy_encoding(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "fr.csv", [["nom", "couleur"], ["Café crème", "Bleu été"]], "cp1252")
    catalog = open_catalog(path)
    assert next(catalog.rows()).data == {"nom": "Café crème", "couleur": "Bleu été"}


def test_undecodable_bytes_name_the_encoding_offset_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"sku,title\nA1,plain\nA2,caf\xe9\n")
    with pytest.raises(CatalogError) as caught:
        list(open_catalog(path, encoding="utf-8").rows())
    assert "not valid utf-8 text at byte 25 (line 3" in caught.value.message
    assert "--encoding" in (caught.value.hint or "")


def test_explicit_encoding_overrides_detection(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["a"], ["é"]], "latin-1")
    assert next(open_catalog(path, encoding="latin-1").rows()).data == {"a": "é"}
    with pytest.raises(CatalogError, match="Unknown text encoding"):
        open_catalog(path, encoding="no-such-codec")


def test_semicolon_csv_and_tsv_delimiters_are_detected(tmp_path: Path) -> None:
    semi = write_csv(tmp_path / "eu.csv", [["sku", "price"], ["A1", "2,50"]], delimiter=";")
    tsv = write_csv(tmp_path / "t.tsv", [["sku", "note"], ["A1", "a, b; c"]], delimiter="\t")
    assert next(open_catalog(semi).rows()).data == {"sku": "A1", "price": "2,50"}
    assert next(open_catalog(tsv).rows()).data == {"sku": "A1", "note": "a, b; c"}


def test_empty_cells_are_none_and_other_text_is_kept_unstripped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [["a", "b", "c"], ["", "  padded ", "x"], ["1"]])
    data = [row.data for row in open_catalog(path).rows()]
    assert data == [{"a": None, "b": "  padded ", "c": "x"}, {"a": "1", "b": None, "c": None}]


def test_multiline_fields_keep_the_line_where_the_row_starts(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [["sku", "desc"], ["A1", "one\ntwo\nthree"], ["A2", "x"]])
    rows = list(open_catalog(path).rows())
    assert rows[0].data["desc"] == "one\ntwo\nthree"
    assert [row.line for row in rows] == ["line 2 of m.csv", "line 5 of m.csv"]


def test_very_long_fields_are_accepted(tmp_path: Path) -> None:
    long_text = "x" * 500_000
    path = write_csv(tmp_path / "long.csv", [["sku", "desc"], ["A1", long_text]])
    assert next(open_catalog(path).rows()).data["desc"] == long_text


def test_xlsx_sheet_by_name_or_index_and_header_row(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {
            "Notes": [["ignore me"], ["really"]],
            "Products": [["Supplier export 2024"], [], ["sku", "price", None], ["A1", 12.5], ["A2", 3]],
        },
    )
    for sheet in ("Products", 1, "2", "products"):
        catalog = open_catalog(path, sheet=sheet, header_row=3, id_column="sku")
        rows = list(catalog.rows())
        assert catalog.sheet == "Products"
        assert catalog.columns == ["sku", "price"]
        assert [(row.row_id, row.data["price"]) for row in rows] == [("A1", 12.5), ("A2", 3)]
        assert rows[1].line == "row 5 of book.xlsx (sheet 'Products')"
    assert open_catalog(path).sheet == "Notes"


def test_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "book.xlsx", {"Products": [["sku"]], "Prices": [["sku"]]})
    with pytest.raises(CatalogError) as caught:
        open_catalog(path, sheet="Produkte")
    assert "Its sheets are: 1 'Products', 2 'Prices'." in caught.value.message


@pytest.mark.parametrize(
    ("content", "hint_part"),
    [
        (bytes(range(256)) * 8, "does not look like a workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, ".xls"),
        (None, "damaged or incomplete"),
    ],
    ids=["random-bytes", "old-xls", "truncated-zip"],
)
def test_corrupt_xlsx_raises_catalog_error_with_hint(
    tmp_path: Path, content: bytes | None, hint_part: str
) -> None:
    path = tmp_path / "bad.xlsx"
    if content is None:
        good = write_xlsx(tmp_path / "good.xlsx", {"Products": [["sku"], ["A1"]] * 200})
        content = good.read_bytes()[: good.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(CatalogError) as caught:
        list(open_catalog(path).rows())
    assert "bad.xlsx" in caught.value.message
    assert hint_part in (caught.value.hint or "")


def test_xlsx_with_a_damaged_sheet_part_raises_catalog_error(tmp_path: Path) -> None:
    good = write_xlsx(tmp_path / "good.xlsx", {"Products": [["sku"], ["A1"]]})
    path = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:40] if info.filename.startswith("xl/worksheets/") else data)
    with pytest.raises(CatalogError) as caught:
        list(open_catalog(path).rows())
    assert "broken.xlsx" in caught.value.message
    assert caught.value.hint


def test_blank_and_duplicate_headers_are_renamed_and_noted(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", [["color", "", "Color", "color"], ["red", "x", "blue", "green"]])
    catalog = open_catalog(path)
    assert catalog.columns == ["color", "column_2", "Color_2", "color_3"]
    assert next(catalog.rows()).data == {
        "color": "red",
        "column_2": "x",
        "Color_2": "blue",
        "color_3": "green",
    }
    assert catalog.notes == [
        "Column 2 has no header; it is called 'column_2'.",
        "The header 'color' (column 1) is repeated 2 times: column 3 is called 'Color_2', column 4 is called "
        "'color_3'. Rename the columns in the file to choose the names yourself.",
    ]


def test_values_beyond_the_header_are_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", [["a", "b"], ["1", "2"], ["1", "2", "surprise"]])
    with pytest.raises(CatalogError, match="Line 3 of r.csv has 3 values but the header names only 2"):
        list(open_catalog(path).rows())


def test_id_column_typo_suggests_the_column() -> None:
    with pytest.raises(CatalogError) as caught:
        open_catalog(EXAMPLES / "catalog.xlsx", id_column="skus")
    assert "Did you mean 'sku'?" in caught.value.message


def test_duplicated_ids_name_both_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", [["sku"], ["A1"], ["B2"], ["C3"], ["B2"]])
    with pytest.raises(CatalogError) as caught:
        list(open_catalog(path, id_column="sku").rows())
    assert "Id 'B2'" in caught.value.message
    assert "line 3 of d.csv and line 5 of d.csv" in caught.value.message


def test_excel_integer_ids_read_as_whole_numbers(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "n.xlsx", {"S": [["id", "t"], [10023.0, "x"]]})
    assert next(open_catalog(path, id_column="id").rows()).row_id == "10023"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "does not exist"),
        ("empty.csv", b"", "is empty"),
        ("blank.csv", b"\n\n\n", "has no header row"),
        ("catalog.xls", b"x", "Cannot tell the format"),
        ("catalog.json", b"{}", "Cannot tell the format"),
    ],
)
def test_unreadable_inputs_raise_catalog_error_with_hint(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CatalogError, match=message) as caught:
        open_catalog(path)
    assert caught.value.hint


def test_a_directory_is_not_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="is a directory"):
        open_catalog(tmp_path)


def test_jsonl_reads_objects_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    records = [{"sku": "A1", "tags": ["a", "b"]}, {"sku": "A2", "price": 3.5, "title": ""}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    catalog = open_catalog(path)
    assert catalog.columns == ["sku", "tags", "price", "title"]
    assert [row.data for row in catalog.rows()] == [
        {"sku": "A1", "tags": ["a", "b"], "price": None, "title": None},
        {"sku": "A2", "tags": None, "price": 3.5, "title": None},
    ]
    path.write_text('{"sku": "A1"}\n{"sku": \n', encoding="utf-8")
    with pytest.raises(CatalogError, match="Line 2 of p.jsonl is not valid JSON"):
        list(open_catalog(path).rows())


def test_parquet_streams_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"sku": [f"S{i}" for i in range(20_000)], "price": list(range(20_000))}), path)
    catalog = open_catalog(path, id_column="sku")
    rows = list(catalog.rows())
    assert len(rows) == 20_000 == catalog.count()
    assert (rows[-1].row_id, rows[-1].data["price"], rows[-1].line) == (
        "S19999",
        19999,
        "row 20000 of p.parquet",
    )


def test_not_really_parquet_is_a_catalog_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.parquet"
    path.write_text("sku,title\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="not a readable Parquet file"):
        open_catalog(path)


def test_describe_row_names_place_and_id() -> None:
    catalog = open_catalog(EXAMPLES / "catalog.xlsx", id_column="sku")
    row = next(catalog.rows())
    assert catalog.describe_row(row) == "row 2 of catalog.xlsx (sheet 'Products'), sku 'EN-1001'"


def test_formats_and_output_paths(tmp_path: Path) -> None:
    assert infer_format("a/B.XLSX") == "xlsx"
    assert infer_format("x.ndjson") == "jsonl"
    assert set(SUPPORTED_FORMATS.values()) == {"csv", "tsv", "xlsx", "jsonl", "parquet"}
    assert output_path_for(tmp_path / "cat.csv") == tmp_path / "cat.enriched.csv"
    assert output_path_for(tmp_path / "cat.tab", tmp_path) == tmp_path / "cat.enriched.tsv"
    assert output_path_for(tmp_path / "cat.csv", tmp_path / "o.parquet") == tmp_path / "o.parquet"
    with pytest.raises(CatalogError, match="is the input catalog cat.csv itself"):
        output_path_for(tmp_path / "cat.csv", tmp_path / "cat.csv")
