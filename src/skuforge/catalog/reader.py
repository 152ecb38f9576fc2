"""`open_catalog` and the `Catalog` it returns: column names up front, rows as a stream.

A catalog can be millions of rows, so `Catalog.rows()` never materialises the file: each call opens it
afresh and yields one `CatalogRow` at a time (memory stays flat), which also makes a catalog safe to
iterate twice (selection samples in two passes). Header problems are repaired where the intent is
obvious (a blank header becomes `column_5`, a repeated `color` becomes `color_2`); each repair is
recorded in `Catalog.notes` and logged once as a warning, so it is never silent. Anything ambiguous is a
`CatalogError` with a hint.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skuforge.catalog.encoding import detect_encoding
from skuforge.catalog.formats import infer_format
from skuforge.catalog.sources import CsvSource, JsonlSource, ParquetSource, XlsxSource, sniff_delimiter
from skuforge.errors import CatalogError

log = logging.getLogger("skuforge.catalog")


@dataclass(slots=True)
class CatalogRow:
    """One product row. `index` is 0-based among data rows; `line` says where to find it in the file."""

    index: int
    row_id: str
    data: dict[str, Any]
    line: str


@dataclass
class Catalog:
    """An opened catalog file. Build it with `open_catalog`; iterate it with `rows()`."""

    path: Path
    format: str
    columns: list[str]
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    id_column: str | None = None
    notes: list[str] = field(default_factory=list)
    check_ids: bool = True
    """Whether `rows()` checks ids for duplicates as it streams (a set of id hashes, ~50 bytes a row). The
    engine turns it off and checks the whole file once, in bounded memory (`catalog.ids`)."""
    _source: Any = field(default=None, repr=False)
    _raw_header: list[Any] = field(default_factory=list, repr=False)

    def rows(self) -> Iterator[CatalogRow]:
        """Stream the data rows in file order. Raises CatalogError on a duplicated id (with both places)."""
        seen_ids: set[int] | None = set() if self.id_column and self.check_ids else None
        index = -1
        for position, values in self._source.records():
            index += 1
            data = self._row_data(position, values)
            row_id = self._row_id(index, position, data)
            if seen_ids is not None:
                digest = hash(row_id)
                if digest in seen_ids:
                    self._check_duplicate(row_id, position)
                seen_ids.add(digest)
            yield CatalogRow(index, row_id, data, self._source.locator(position))

    def describe_row(self, row: CatalogRow) -> str:
        """A human locator for error messages, e.g. "row 17 of catalog.xlsx (sheet 'Products'), sku 'A-1'"."""
        if self.id_column:
            return f"{row.line}, {self.id_column} '{row.row_id}'"
        return row.line

    def count(self) -> int:
        """The number of data rows (a streaming pass; Parquet reads it from the file footer)."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(self.path) as parquet:
                return int(parquet.metadata.num_rows)
        return sum(1 for _ in self._source.records())

    def _row_data(self, position: int, values: list[Any] | dict[str, Any]) -> dict[str, Any]:
        if isinstance(values, dict):
            return self._dict_data(values)
        width = len(self.columns)
        if len(values) > width and any(v not in (None, "") for v in values[width:]):
            raise CatalogError(
                f"{self._source.locator(position).capitalize()} has {len(values)} values but the header "
                f"names only {width} columns.",
                "Give every column a header, or check the delimiter and quoting of that line.",
            )
        data = {
            name: None if value == "" else value for name, value in zip(self.columns, values, strict=False)
        }
        if len(data) < width:
            data.update(dict.fromkeys(self.columns[len(data) :]))
        return data

    def _dict_data(self, record: dict[str, Any]) -> dict[str, Any]:
        """JSONL: keys map to columns; a key first seen after the header scan is appended to `columns`."""
        data = dict.fromkeys(self.columns)
        for key, value in record.items():
            name = key if key in data else self._late_column(key)
            data[name] = None if value == "" else value
        return data

    def _late_column(self, key: str) -> str:
        if key in self._raw_header:
            return self.columns[self._raw_header.index(key)]
        self._raw_header.append(key)
        self.columns.append(unique_name(key or f"column_{len(self.columns) + 1}", self.columns))
        self.notes.append(f"Column '{key}' first appears after the first 1,000 records; added at the end.")
        return self.columns[-1]

    def _row_id(self, index: int, position: int, data: dict[str, Any]) -> str:
        if not self.id_column:
            return str(index + 1)
        value = data.get(self.id_column)
        if value is None or str(value).strip() == "":
            raise CatalogError(
                f"{self._source.locator(position).capitalize()} has no value in the id column "
                f"'{self.id_column}'.",
                f"Fill in '{self.id_column}' for every row, or leave out the id column to number rows.",
            )
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # Excel stores 10023 as 10023.0
        return str(value)

    def _check_duplicate(self, row_id: str, position: int) -> None:
        """A hash seen before: find the earlier row with the same id (a second pass, error path only)."""
        first = next(
            (p for p, values in self._source.records() if p >= position or self._id_of(p, values) == row_id),
            None,
        )
        if first is None or first >= position:
            return  # two different ids with the same 64-bit hash
        raise self.duplicate_error(row_id, first, position)

    def duplicate_error(self, row_id: str, first: int, second: int) -> CatalogError:
        """The error for an id found at two positions of the file."""
        return CatalogError(
            f"Id '{row_id}' in column '{self.id_column}' appears twice in {self.path.name}: "
            f"{self._source.locator(first)} and {self._source.locator(second)}.",
            f"Make '{self.id_column}' unique (ids key the results), or choose another id column.",
        )

    def _id_of(self, position: int, values: list[Any] | dict[str, Any]) -> str:
        return self._row_id(0, position, self._row_data(position, values))


def open_catalog(
    path: str | Path,
    *,
    sheet: str | int | None = None,
    header_row: int = 1,
    id_column: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> Catalog:
    """Open a catalog file and read its header; rows are read later, lazily, by `Catalog.rows()`.

    The format comes from the extension (see SUPPORTED_FORMATS). For CSV/TSV the encoding is detected
    (UTF-8, UTF-8 with BOM, GB18030, then charset-normalizer) unless given; for .csv the delimiter is
    sniffed (',' ';' tab '|') unless given. `sheet` (xlsx) is a name, a number as text counted from 1
    ("2": the second sheet, as the CLI's --sheet) or an int index counted from 0; `header_row` (xlsx, csv,
    tsv) is the 1-based row holding the column names. A header with no product rows under it is an error.
    """
    source_path = _check_path(Path(path).expanduser())
    fmt = infer_format(source_path)
    if header_row < 1:
        raise CatalogError(f"header_row must be 1 or more, got {header_row}.", "Rows are numbered from 1.")
    source = _make_source(source_path, fmt, sheet, header_row, encoding, delimiter)
    raw_header, has_rows = source.head()
    columns, notes = normalise_header(raw_header)
    if not has_rows:
        raise _no_rows_error(source_path, getattr(source, "sheet", None), columns)
    _log_notes(source_path, notes)
    catalog = Catalog(
        path=source_path,
        format=fmt,
        columns=columns,
        sheet=getattr(source, "sheet", None),
        encoding=getattr(source, "encoding", None),
        delimiter=getattr(source, "delimiter", None),
        notes=notes,
        _source=source,
        _raw_header=list(raw_header),
    )
    if id_column is not None:
        catalog.id_column = _check_id_column(catalog, id_column)
    return catalog


def _check_path(path: Path) -> Path:
    if path.is_dir():
        raise CatalogError(
            f"{path} is a directory, not a catalog file.", "Give the path of one catalog file."
        )
    if not path.exists():
        raise CatalogError(
            f"Catalog file {path} does not exist.", "Check the path and the current directory."
        )
    if path.stat().st_size == 0:
        raise CatalogError(f"{path.name} is empty.", "Export the catalog again; the file has no bytes in it.")
    return path


def _make_source(
    path: Path,
    fmt: str,
    sheet: str | int | None,
    header_row: int,
    encoding: str | None,
    delimiter: str | None,
) -> Any:
    if fmt == "xlsx":
        return XlsxSource(path, sheet, header_row)
    if fmt == "jsonl":
        return JsonlSource(path)
    if fmt == "parquet":
        return ParquetSource(path)
    chosen = encoding or detect_encoding(path)
    try:
        "".encode(chosen)
    except LookupError:
        raise CatalogError(
            f"Unknown text encoding '{encoding}'.", "Use e.g. utf-8, gb18030, latin-1."
        ) from None
    if delimiter is None:
        delimiter = "\t" if fmt == "tsv" else sniff_delimiter(path, chosen)
    return CsvSource(path, chosen, delimiter, header_row)


def unique_name(name: str, taken: list[str]) -> str:
    """`name`, or `name_2`, `name_3`... so that no two columns match case-insensitively (SQL ignores case)."""
    names = _Names()
    for existing in taken:
        names.taken.add(existing.casefold())
    return names.add(name)


class _Names:
    """Column names handed out so far, folded; `add` is O(1) however many columns repeat a name."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        self._next: dict[str, int] = {}

    def add(self, name: str) -> str:
        folded = name.casefold()
        if folded not in self.taken:
            self.taken.add(folded)
            return name
        number = self._next.get(folded, 2)
        while f"{name}_{number}".casefold() in self.taken:
            number += 1
        self._next[folded] = number + 1
        self.taken.add(f"{name}_{number}".casefold())
        return f"{name}_{number}"


def normalise_header(raw: list[Any]) -> tuple[list[str], list[str]]:
    """Column names from header cells: trimmed, blanks named `column_N`, repeats suffixed `_2`.

    Every renaming is reported in the notes (one note per repeated name, one for all blank headers), which
    the CLI and the web console show: a column silently called `color_2` is a column nobody finds.
    """
    cells = list(raw)
    while cells and (cells[-1] is None or str(cells[-1]).strip() == ""):
        cells.pop()  # spreadsheets often carry empty formatted cells to the right of the header
    if not cells:
        raise CatalogError("The header row is empty.", "Put the column names on the header row.")
    names = _Names()
    columns: list[str] = []
    blanks: list[int] = []
    repeats: dict[str, list[tuple[int, str]]] = {}
    first: dict[str, int] = {}
    for number, cell in enumerate(cells, start=1):
        text = "" if cell is None else str(cell).replace("\ufeff", "").strip()
        if not text:
            text = f"column_{number}"
            blanks.append(number)
        name = names.add(text)
        if name != text:
            repeats.setdefault(text.casefold(), []).append((number, name))
        first.setdefault(text.casefold(), number)
        columns.append(name)
    notes = [_blank_note(blanks)] if blanks else []
    notes += [_repeat_note(columns[first[k] - 1], first[k], found) for k, found in repeats.items()]
    return columns, notes


def _listed(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _blank_note(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return f"Column {numbers[0]} has no header; it is called 'column_{numbers[0]}'."
    shown = _listed([str(n) for n in numbers])
    example = f"column_{numbers[0]}"
    return f"Columns {shown} have no header; each is called column_N after its number ('{example}', ...)."


def _repeat_note(name: str, first: int, found: list[tuple[int, str]]) -> str:
    """One note for every repeat of a header: where it repeats and what each repeat is called."""
    places = _listed([f"column {number} is called '{new}'" for number, new in found])
    return (
        f"The header '{name}' (column {first}) is repeated {len(found)} time{'s' if len(found) > 1 else ''}: "
        f"{places}. Rename the columns in the file to choose the names yourself."
    )


_noted: set[tuple[str, str]] = set()


def _log_notes(path: Path, notes: list[str]) -> None:
    """Say each header repair once per process (stderr on the CLI, the log in the service)."""
    for note in notes:
        if (str(path), note) not in _noted:
            _noted.add((str(path), note))
            log.warning("%s: %s", path.name, note)


def _no_rows_error(path: Path, sheet: str | None, columns: list[str]) -> CatalogError:
    where = f"Sheet '{sheet}' of {path.name}" if sheet else path.name
    return CatalogError(
        f"{where} has a header row ({_listed(columns)}) but no product rows under it.",
        "Add the products under the header, or check that this is the file (and sheet) you meant; "
        "there is nothing to enrich.",
    )


def _check_id_column(catalog: Catalog, id_column: str) -> str:
    if id_column in catalog.columns:
        return id_column
    by_case = [c for c in catalog.columns if c.casefold() == id_column.casefold()]
    if by_case:
        return by_case[0]
    close = difflib.get_close_matches(id_column, catalog.columns, n=1)
    guess = f" Did you mean '{close[0]}'?" if close else ""
    raise CatalogError(
        f"Id column '{id_column}' is not a column of {catalog.path.name}.{guess}",
        f"Its columns are: {', '.join(catalog.columns)}.",
    )
