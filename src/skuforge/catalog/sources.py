"""One streaming reader per file format, all with the same small shape.

A source knows its raw header and yields `(position, values)` pairs, where position is the number a
person would look for in the file (the spreadsheet row for xlsx, the physical line for CSV and JSONL,
the 1-based row for Parquet) and values is a list aligned with the header (or, for JSONL, a dict).
`Catalog` (in reader.py) turns these into `CatalogRow`s; nothing here ever holds more than one batch.
"""

from __future__ import annotations

import contextlib
import csv
import html
import itertools
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from skuforge.catalog.encoding import undecodable_error
from skuforge.errors import CatalogError

FIELD_SIZE_LIMIT = 64 * 1024 * 1024
"""Largest CSV field we accept (64 MiB). Python's default, 128 KiB, rejects real long descriptions; an
unlimited one lets a single stray quote swallow the rest of a multi-GB file into memory."""
csv.field_size_limit(FIELD_SIZE_LIMIT)

_DELIMITERS = ",;\t|"
_JSONL_HEADER_SCAN = 1000
_PARQUET_BATCH = 8192

Record = tuple[int, "list[Any] | dict[str, Any]"]


class CsvSource:
    """A delimited text file, decoded as a stream; the header is on line `header_row`."""

    fmt = "csv"

    def __init__(self, path: Path, encoding: str, delimiter: str, header_row: int = 1) -> None:
        self.path, self.encoding, self.delimiter, self.header_row = path, encoding, delimiter, header_row

    def locator(self, position: int) -> str:
        return f"line {position} of {self.path.name}"

    def header(self) -> list[Any]:
        return self.head()[0]

    def head(self) -> tuple[list[Any], bool]:
        """The header row, and whether any data row follows it."""
        found = list(itertools.islice(self._rows(), 2))
        if not found:
            raise CatalogError(
                f"{self.path.name} has no header row (nothing on or after line {self.header_row}).",
                "The first line of a catalog must name its columns, e.g. sku,title,brand,color.",
            )
        return list(found[0][1]), len(found) > 1

    def records(self) -> Iterator[Record]:
        rows = self._rows()
        next(rows, None)
        yield from rows

    def _rows(self) -> Iterator[Record]:
        """Non-blank rows from `header_row` on (the header first), each with the line it starts on."""
        with self.path.open("r", encoding=self.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            try:
                line = 1
                for values in reader:
                    start, line = line, reader.line_num + 1
                    if start < self.header_row or not any(values):
                        continue
                    yield start, values
            except UnicodeDecodeError as exc:
                raise undecodable_error(self.path, self.encoding, exc) from None
            except csv.Error as exc:
                raise CatalogError(
                    f"{self.path.name} cannot be parsed as CSV near line {reader.line_num}: {exc}.",
                    "Look for an unbalanced double quote or a NUL byte there, or re-export the file.",
                ) from None


def sniff_delimiter(path: Path, encoding: str) -> str:
    """The delimiter of a .csv file: the only candidate on the header line, else csv.Sniffer, else ','."""
    with path.open("r", encoding=encoding, newline="", errors="replace") as handle:
        sample = handle.read(64 * 1024)
    first_line = sample.split("\n", 1)[0]
    present = [d for d in _DELIMITERS if d in first_line]
    if len(present) == 1:
        return present[0]
    if "\n" in sample:
        sample = sample[: sample.rfind("\n")]
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","
    return found if found in first_line else ","


class XlsxSource:
    """One sheet of a workbook, read with openpyxl in read-only mode (rows parsed as they stream)."""

    fmt = "xlsx"

    def __init__(self, path: Path, sheet: str | int | None, header_row: int = 1) -> None:
        self.path, self.header_row = path, header_row
        with reading_workbook(path) as workbook:
            self.sheet = _choose_sheet(path, workbook.sheetnames, sheet)
            part = getattr(workbook[self.sheet], "_worksheet_path", None)
        if part:
            check_formula_values(path, part, self.sheet, header_row)

    def locator(self, position: int) -> str:
        return f"row {position} of {self.path.name} (sheet '{self.sheet}')"

    def header(self) -> list[Any]:
        return self.head()[0]

    def head(self) -> tuple[list[Any], bool]:
        """The header row, and whether any data row follows it."""
        found = list(itertools.islice(self._rows(), 2))
        if not found:
            raise CatalogError(
                f"Sheet '{self.sheet}' of {self.path.name} has no header row (nothing on or after row "
                f"{self.header_row}).",
                "Put the column names on the first row, or pass the row that holds them (--header-row N).",
            )
        return list(found[0][1]), len(found) > 1

    def records(self) -> Iterator[Record]:
        rows = self._rows()
        next(rows, None)
        yield from rows

    def _rows(self) -> Iterator[Record]:
        """Non-empty rows from `header_row` on, numbered as the spreadsheet numbers them."""
        with reading_workbook(self.path) as workbook:
            try:
                worksheet = workbook[self.sheet]
                worksheet.reset_dimensions()  # stored dimensions are often wrong; read every row there is
                cells = worksheet.iter_rows(min_row=self.header_row, values_only=True)
                for number, values in enumerate(cells, start=self.header_row):
                    if any(value is not None and value != "" for value in values):
                        yield number, list(values)
            except Exception as exc:  # zip, XML parse and openpyxl errors from a damaged sheet part
                raise CatalogError(
                    f"Sheet '{self.sheet}' of {self.path.name} is damaged and cannot be read "
                    f"({type(exc).__name__}: {exc}).",
                    "Open the file in Excel or LibreOffice and save it again as .xlsx.",
                ) from None


@contextlib.contextmanager
def reading_workbook(path: Path) -> Iterator[Any]:
    """An openpyxl read-only workbook, or a CatalogError that says what the file seems to be instead.

    We open the file ourselves: openpyxl leaks its file handle when a damaged workbook fails to load.
    """
    from openpyxl import load_workbook

    with path.open("rb") as handle:
        try:
            workbook = load_workbook(handle, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises zip, XML, KeyError and its own errors for bad files
            raise CatalogError(
                f"{path.name} is not a readable .xlsx workbook ({type(exc).__name__}: {exc}).",
                _not_xlsx_hint(path),
            ) from None
        try:
            yield workbook
        finally:
            workbook.close()


def _not_xlsx_hint(path: Path) -> str:
    with path.open("rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        return "It looks like an old binary .xls or an encrypted workbook: save it as .xlsx, no password."
    if magic.startswith(b"PK"):
        return "The zip container is damaged or incomplete (an interrupted download?): get a fresh copy."
    return "It does not look like a workbook at all: if it is CSV text, rename it to .csv."


def _choose_sheet(path: Path, names: list[str], sheet: str | int | None) -> str:
    """A sheet by name; by number as a person counts (text such as "2" from a CLI flag or a web form: the
    second sheet); or by 0-based index as Python counts (an int). Default: the first sheet."""
    if not names:
        raise CatalogError(f"{path.name} has no worksheets.", "Add a sheet with the products and save again.")
    if sheet is None:
        return names[0]
    if isinstance(sheet, str) and sheet in names:
        return sheet
    if isinstance(sheet, str):
        by_case = [name for name in names if name.casefold() == sheet.strip().casefold()]
        if by_case:
            return by_case[0]
    number = sheet + 1 if isinstance(sheet, int) else int(sheet) if sheet.strip().isdigit() else None
    if number is not None and 1 <= number <= len(names):
        return names[number - 1]
    listed = ", ".join(f"{i} '{name}'" for i, name in enumerate(names, start=1))
    asked = f"sheet number {number}" if number is not None else f"sheet {sheet!r}"
    numbers = "1" if len(names) == 1 else f"a number from 1 to {len(names)}"
    hint = f"Pass a sheet name, or {numbers} (--sheet 1 is the first sheet)."
    raise CatalogError(f"{path.name} has no {asked}. Its sheets are: {listed}.", hint)


FORMULA_SCAN_CARRY = 64 * 1024
_FORMULA_HINT = re.compile(rb"<(?:\w+:)?f[\s>/]")
_FORMULA_WITHOUT_VALUE = re.compile(
    rb"<(?:\w+:)?c\b([^>]*)>\s*<(?:\w+:)?f\b[^>]*?(?:/>|>([^<]*)</(?:\w+:)?f>)\s*"
    rb"(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"
)
"""A formula cell with no value, or an empty one (openpyxl writes `<v></v>`)."""
_TEXT_TYPE = re.compile(rb'\bt="(?:str|s|inlineStr)"')
_CELL_REF = re.compile(rb'\br="([A-Z]+)([0-9]+)"')


def check_formula_values(path: Path, part: str, sheet: str, header_row: int) -> None:
    """Refuse a sheet whose formula cells (on or below the header row) have no saved value.

    skuforge reads the values a spreadsheet program saved with each formula (openpyxl cannot calculate).
    Files written by scripts and never opened in Excel have formulas without values, which would read
    as empty cells, so they are named here instead of exporting blanks.
    """
    found = list(itertools.islice(_formulas_without_value(path, part, header_row), 1000))
    if not found:
        return
    count = f"{len(found):,}" if len(found) < 1000 else "1,000 or more"
    shown = ", ".join(f"{cell} (={formula})" if formula else cell for cell, formula in found[:3])
    raise CatalogError(
        f"Sheet '{sheet}' of {path.name} has {count} formula cell{'s' if len(found) > 1 else ''} with no "
        f"saved value, e.g. {shown}. skuforge reads the values a spreadsheet saved with its formulas, so "
        "these would read as empty cells.",
        "Open the file in Excel or LibreOffice and save it (that stores the computed values), or paste "
        "the values over the formulas.",
    )


def _formulas_without_value(path: Path, part: str, header_row: int) -> Iterator[tuple[str, str]]:
    """(cell, formula) of each formula cell with no <v> element, streaming the sheet's XML part.

    The buffer keeps the last 64 KB of the previous chunk so a cell cut by a chunk boundary is seen
    whole; a match ending inside the part already searched was reported before and is skipped.
    """
    with zipfile.ZipFile(path) as archive, archive.open(part) as xml:
        buffer, base, searched = b"", 0, 0
        while chunk := xml.read(1 << 20):
            buffer += chunk
            if _FORMULA_HINT.search(buffer):
                for match in _FORMULA_WITHOUT_VALUE.finditer(buffer):
                    ref = _CELL_REF.search(match.group(1))
                    if base + match.end() <= searched or ref and int(ref.group(2)) < header_row:
                        continue
                    if _TEXT_TYPE.search(match.group(1)):
                        continue  # a text formula whose saved value is "": a real, empty result
                    cell = (ref.group(1) + ref.group(2)).decode() if ref else "?"
                    yield cell, html.unescape((match.group(2) or b"").decode("utf-8", "replace"))
            searched = base + len(buffer)
            keep = min(len(buffer), FORMULA_SCAN_CARRY)
            base, buffer = searched - keep, buffer[-keep:]


class JsonlSource:
    """One JSON object per line (UTF-8). Columns are the keys seen in the first 1,000 records."""

    fmt = "jsonl"
    encoding = "utf-8"

    def __init__(self, path: Path) -> None:
        self.path = path

    def locator(self, position: int) -> str:
        return f"line {position} of {self.path.name}"

    def header(self) -> list[Any]:
        keys: dict[str, None] = {}
        for count, (_, record) in enumerate(self.records()):
            if count >= _JSONL_HEADER_SCAN:
                break
            keys.update(dict.fromkeys(record))
        if not keys:
            raise CatalogError(
                f"{self.path.name} holds no product records.",
                'Write one JSON object per line, e.g. {"sku": "A1", "title": "..."}.',
            )
        return list(keys)

    def head(self) -> tuple[list[Any], bool]:
        """The columns (keys of the first 1,000 records); a JSONL file with columns has records."""
        return self.header(), True

    def records(self) -> Iterator[Record]:
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                text = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
                if not text.strip():
                    continue
                try:
                    record = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    raise CatalogError(
                        f"Line {number} of {self.path.name} is not valid JSON: {exc}.",
                        "Each line must be one complete JSON object in UTF-8; fix or remove that line.",
                    ) from None
                if not isinstance(record, dict):
                    raise CatalogError(
                        f"Line {number} of {self.path.name} holds a JSON {type(record).__name__}, "
                        "not an object.",
                        'Each line must be one product as a JSON object, e.g. {"sku": "A1"}.',
                    )
                yield number, record


class ParquetSource:
    """A Parquet file, read in record batches of 8,192 rows."""

    fmt = "parquet"

    def __init__(self, path: Path) -> None:
        self.path = path

    def locator(self, position: int) -> str:
        return f"row {position} of {self.path.name}"

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for anything not Parquet
            raise CatalogError(
                f"{self.path.name} is not a readable Parquet file ({exc}).",
                "Check that the file is complete and really Parquet (not CSV renamed).",
            ) from None

    def header(self) -> list[Any]:
        return self.head()[0]

    def head(self) -> tuple[list[Any], bool]:
        """The column names, and whether the file holds any row (from its footer)."""
        with self._open() as parquet:
            return list(parquet.schema_arrow.names), parquet.metadata.num_rows > 0

    def records(self) -> Iterator[Record]:
        number = 0
        with self._open() as parquet:
            for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
                columns = [column.to_pylist() for column in batch.columns]
                for values in zip(*columns, strict=True):
                    number += 1
                    yield number, list(values)
