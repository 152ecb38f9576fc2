"""Bad catalogs get a clear error before anything is paid for, and never reach the model garbled."""

from __future__ import annotations

import csv
import logging
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from skuforge.catalog import open_catalog, reader
from skuforge.catalog.encoding import detect_encoding
from skuforge.errors import CatalogError

KETTLE = "304不锈钢电热水壶"
CUP = "不锈钢保温杯"


def write_bytes(path: Path, *parts: bytes) -> Path:
    path.write_bytes(b"".join(parts))
    return path


# -- encodings ------------------------------------------------------------------------------------------


def test_a_csv_mixing_utf8_then_gb18030_is_refused_at_the_first_gb18030_byte(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "mixed.csv",
        b"sku,title\n",
        f"A1,{KETTLE}\n".encode(),
        f"A2,{CUP}\n".encode("gb18030"),
    )
    with pytest.raises(CatalogError) as caught:
        open_catalog(path)
    offset = len(f"sku,title\nA1,{KETTLE}\nA2,".encode())
    assert caught.value.message.startswith(
        f"mixed.csv mixes text encodings: line 2 is UTF-8, but byte {offset} (line 3: bytes "
    )
    assert "one encoding" in (caught.value.hint or "")


def test_a_csv_mixing_gb18030_then_utf8_is_refused_too(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "mixed.csv",
        b"sku,title\n",
        f"A2,{CUP}\n".encode("gb18030"),
        f"A1,{KETTLE}\n".encode(),
    )
    with pytest.raises(CatalogError, match=r"line 3 is UTF-8, but byte 13 \(line 2: bytes b2 bb"):
        open_catalog(path)


def test_invalid_utf8_early_in_a_utf8_file_is_an_error_with_line_and_byte(tmp_path: Path) -> None:
    rows = "".join(f"A{i},{KETTLE} {i}\n" for i in range(20)).encode()
    path = write_bytes(tmp_path / "damaged.csv", b"sku,title\n", rows, b"A99,caf\xe9\n", rows)
    with pytest.raises(CatalogError) as caught:
        open_catalog(path)
    offset = len(b"sku,title\n" + rows + b"A99,caf")
    assert caught.value.message == (
        f"damaged.csv is UTF-8 text up to line 22, but byte {offset} (line 22: bytes e9 0a 41 30) is not "
        "UTF-8."
    )


def test_a_bad_byte_far_into_the_file_is_found_when_the_catalog_opens(tmp_path: Path) -> None:
    rows = "".join(f"A{i},{KETTLE}\n" for i in range(60_000)).encode()  # ~1.7 MB of good UTF-8
    path = write_bytes(tmp_path / "late.csv", b"sku,title\n", rows, b"B1,\xff\xfe\n")
    assert len(rows) > 1 << 20
    with pytest.raises(CatalogError, match=r"up to line 60002, but byte \d+ \(line 60002: bytes ff fe"):
        open_catalog(path)


def test_gb18030_whose_chinese_starts_after_the_first_megabyte_is_read_as_gb18030(tmp_path: Path) -> None:
    ascii_rows = "".join(f"A{i},plain title {i}\n" for i in range(60_000))
    path = write_bytes(tmp_path / "late.csv", f"sku,title\n{ascii_rows}B1,{CUP}\n".encode("gb18030"))
    catalog = open_catalog(path)
    assert catalog.encoding == "gb18030"
    assert list(catalog.rows())[-1].data == {"sku": "B1", "title": CUP}


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("nom,couleur\nCafé crème,Bleu été\n", "cp1252"),
        ("назва,ціна\nЦіна Рік Літо Місто,Київ\nСвітло,Зірка\n", "cp1251"),
        (f"名称,材质\n{CUP},{KETTLE}\n", "gb18030"),
        (f"名称,材质\n{CUP},{KETTLE}\n", "utf-8"),
    ],
    ids=["french-cp1252", "ukrainian-cp1251", "chinese-gb18030", "chinese-utf8"],
)
def test_files_in_one_encoding_are_read_in_it(tmp_path: Path, text: str, encoding: str) -> None:
    path = write_bytes(tmp_path / "one.csv", text.encode(encoding))
    catalog = open_catalog(path)
    assert catalog.encoding == encoding
    assert [list(row.data.values()) for row in catalog.rows()] == [
        line.split(",") for line in text.splitlines()[1:]
    ]


def test_utf8_text_is_never_read_as_a_single_byte_codepage(tmp_path: Path) -> None:
    """The issue's probe: a few UTF-8 characters, then one foreign byte. It used to read as cp1252."""
    for prefix in (f"A1,{KETTLE}\n", "A1,Café\n", "A1,ø\n", f"A1,{CUP} Café\n"):
        path = write_bytes(tmp_path / "x.csv", b"sku,title\n", prefix.encode(), b"A2,caf\xe9\n")
        with pytest.raises(CatalogError, match=r"line 3: bytes e9"):
            detect_encoding(path)


def test_a_forced_encoding_still_fails_at_the_first_bad_byte_with_its_line(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "x.csv", b"sku,title\nA1,ok\nA2,caf\xe9\n")
    with pytest.raises(CatalogError, match=r"not valid utf-8 text at byte 22 \(line 3: bytes e9 0a\)"):
        list(open_catalog(path, encoding="utf-8").rows())


# -- headers ------------------------------------------------------------------------------------------------


def write_wide_csv(path: Path, header: list[str], rows: int = 2) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for number in range(rows):
            writer.writerow([f"{number}-{i}" for i in range(len(header))])
    return path


def test_a_20000_column_csv_opens_and_streams(tmp_path: Path) -> None:
    path = write_wide_csv(tmp_path / "wide.csv", [f"attr_{i}" for i in range(20_000)])
    catalog = open_catalog(path)
    rows = list(catalog.rows())
    assert len(catalog.columns) == 20_000
    assert rows[1].data["attr_19999"] == "1-19999"


def _traced_lines(work: Callable[[], object]) -> int:
    """How many lines of reader.py run during `work` (a count of steps, not a measure of time)."""
    count = 0

    def local(frame: FrameType, event: str, arg: object) -> object:
        nonlocal count
        count += event == "line"
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> object:
        return local if frame.f_code.co_filename == reader.__file__ else None

    previous = sys.gettrace()
    sys.settrace(tracer)  # type: ignore[arg-type]
    try:
        work()
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize("kind", ["distinct", "repeated"])
def test_naming_columns_takes_work_in_proportion_to_the_columns(kind: str) -> None:
    """`unique_name` was O(n^2): 5,000 columns took 11 s and 20,000 hung. Doubling the header must
    double the work, not quadruple it."""

    def header(n: int) -> list[str]:
        return [f"attr_{i}" for i in range(n)] if kind == "distinct" else ["color"] * n

    small = _traced_lines(lambda: reader.normalise_header(header(1000)))
    large = _traced_lines(lambda: reader.normalise_header(header(2000)))
    assert large < 2.5 * small


def test_repeated_headers_are_reported_and_logged_not_renamed_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_wide_csv(tmp_path / "dup.csv", ["sku", "color", "Color", "size", "color"])
    with caplog.at_level(logging.WARNING, logger="skuforge.catalog"):
        catalog = open_catalog(path)
        open_catalog(path)
    note = (
        "The header 'color' (column 2) is repeated 2 times: column 3 is called 'Color_2', column 5 is called "
        "'color_3'. Rename the columns in the file to choose the names yourself."
    )
    assert catalog.columns == ["sku", "color", "Color_2", "size", "color_3"]
    assert catalog.notes == [note]
    assert [r.getMessage() for r in caplog.records] == [f"dup.csv: {note}"]  # once, however often opened


def test_a_header_only_csv_says_it_has_no_product_rows(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "empty.csv", b"sku,title,brand\n\n\n")
    with pytest.raises(CatalogError) as caught:
        open_catalog(path)
    assert (
        caught.value.message == "empty.csv has a header row (sku, title, brand) but no product rows under it."
    )


def test_a_header_only_sheet_and_parquet_say_so_too(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.title = "Products"
    workbook.active.append(["sku", "title"])
    workbook.save(tmp_path / "book.xlsx")
    pq.write_table(pa.table({"sku": pa.array([], pa.string())}), tmp_path / "t.parquet")
    with pytest.raises(
        CatalogError, match=r"Sheet 'Products' of book.xlsx has a header row \(sku, title\) but no"
    ):
        open_catalog(tmp_path / "book.xlsx")
    with pytest.raises(CatalogError, match=r"t.parquet has a header row \(sku\) but no product rows"):
        open_catalog(tmp_path / "t.parquet")


# -- sheets and formulas ------------------------------------------------------------------------------------


def two_sheet_book(path: Path) -> Path:
    workbook = Workbook()
    workbook.active.title = "Products"
    workbook.active.append(["sku"])
    workbook.active.append(["A1"])
    notes = workbook.create_sheet("Notes")
    notes.append(["sku"])
    notes.append(["N1"])
    workbook.save(path)
    return path


def test_sheet_numbers_count_from_one_as_the_help_says(tmp_path: Path) -> None:
    path = two_sheet_book(tmp_path / "book.xlsx")
    assert open_catalog(path, sheet="2").sheet == "Notes"  # --sheet 2, as typed
    assert open_catalog(path, sheet=1).sheet == "Notes"  # the CLI's 0-based int for --sheet 2
    for asked in ("9", 8):  # --sheet 9 as typed, and as the CLI hands it on (9 - 1)
        with pytest.raises(CatalogError) as caught:
            open_catalog(path, sheet=asked)
        assert (
            caught.value.message
            == "book.xlsx has no sheet number 9. Its sheets are: 1 'Products', 2 'Notes'."
        )
        assert (
            caught.value.hint == "Pass a sheet name, or a number from 1 to 2 (--sheet 1 is the first sheet)."
        )


def _with_cached_value(path: Path, cell: str, formula: str, value: str) -> None:
    """Rewrite a workbook so that `cell`'s formula carries a saved value, as Excel saves it."""
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    sheet = "xl/worksheets/sheet1.xml"
    old = f'<c r="{cell}"><f>{formula}</f><v></v></c>'.encode()
    assert old in parts[sheet]
    parts[sheet] = parts[sheet].replace(old, f'<c r="{cell}"><f>{formula}</f><v>{value}</v></c>'.encode())
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)


def formula_book(path: Path) -> Path:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Products"
    sheet.append(["=TODAY()"])  # above the header: never read
    sheet.append(["sku", "price", "double"])
    sheet.append(["A1", 5, "=B3*2"])
    workbook.save(path)
    return path


def test_an_xlsx_formula_with_no_saved_value_is_named_instead_of_read_as_blank(tmp_path: Path) -> None:
    path = formula_book(tmp_path / "script.xlsx")
    with pytest.raises(CatalogError) as caught:
        open_catalog(path, header_row=2)
    assert caught.value.message.startswith(
        "Sheet 'Products' of script.xlsx has 1 formula cell with no saved value, e.g. C3 (=B3*2)."
    )
    assert "save it" in (caught.value.hint or "")


def test_an_xlsx_formula_with_a_saved_value_reads_that_value(tmp_path: Path) -> None:
    path = formula_book(tmp_path / "saved.xlsx")
    _with_cached_value(path, "C3", "B3*2", "10")
    row = next(open_catalog(path, header_row=2).rows())
    assert row.data == {"sku": "A1", "price": 5, "double": 10}
