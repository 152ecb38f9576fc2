"""Writing an enriched catalog: original columns first, generated ones after, failures beside them.

Decisions, so that they are written down once:
- Every writer streams (xlsx through openpyxl's write-only mode, Parquet in record batches) and writes
  to a temporary file in the target directory that replaces the target only when complete, so a crash
  or kill never leaves a half-written export where the operator expects a finished one.
- CSV and TSV are written as UTF-8 *with* a BOM, whatever the input encoding was: without it Excel
  opens UTF-8 as the local code page and Chinese turns to mojibake, and every other tool skips the BOM.
- xlsx writes every text as a text cell, so a formula-looking value is stored exactly and never runs;
  CSV and TSV quote only what a spreadsheet would evaluate (see cells.py); JSONL and Parquet are data
  formats read by programs, so their values are written exactly.
- Failed rows go to a 'Failures' sheet in xlsx, and to `<stem>.failures<ext>` next to other formats
  (written only when there is at least one failure).
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from skuforge.catalog.cells import cell_text, spreadsheet_value, xlsx_cell, xlsx_value
from skuforge.catalog.formats import check_format, failures_path_for, infer_format
from skuforge.errors import CatalogError

FAILURE_COLUMNS = ["row_id", "line", "step", "reason"]
PARQUET_BATCH_ROWS = 10_000
_REPORTED_TRUNCATIONS = 100


@dataclass
class WriteReport:
    """What `write_catalog` wrote: counts, where failures went, and which cells had to be truncated."""

    path: Path
    format: str
    rows: int = 0
    failures: int = 0
    failures_path: Path | None = None
    truncated: list[str] = field(default_factory=list)
    truncated_count: int = 0

    def note_truncation(self, row: dict[str, Any], column: str, number: int) -> None:
        self.truncated_count += 1
        if len(self.truncated) < _REPORTED_TRUNCATIONS:
            who = row.get("row_id") or row.get("sku") or f"data row {number}"
            self.truncated.append(f"{who}, column '{column}'")


def write_catalog(
    path: str | Path,
    columns: list[str],
    rows: Iterable[dict[str, Any]],
    *,
    fmt: str | None = None,
    sheet: str = "Enriched",
    failures: Iterable[dict[str, Any]] | None = None,
) -> WriteReport:
    """Write `rows` (dicts; values looked up by `columns`, in that order) to `path`, atomically.

    `fmt` defaults to the format of the extension. `failures` (dicts with row_id, line, step, reason)
    go to a 'Failures' sheet (xlsx) or a sibling `<stem>.failures<ext>` file. Lists are written one
    item per line and dicts as JSON in spreadsheet formats; cells over Excel's 32,767-character limit
    are truncated with a marker and listed in the returned report.
    """
    target = Path(path).expanduser()
    name = check_format(fmt) if fmt else infer_format(target)
    _check_columns(columns, target)
    if not target.parent.is_dir():
        raise CatalogError(
            f"Cannot write {target}: the folder {target.parent} does not exist.",
            "Create the folder first, or choose another output path.",
        )
    report = WriteReport(path=target, format=name)
    if name == "xlsx":
        with _atomic(target) as temp:
            _write_xlsx(temp, columns, rows, sheet, failures, report)
        if failures is not None:
            report.failures_path = target
        return report
    with _atomic(target) as temp:
        report.rows = _WRITERS[name](temp, columns, rows, report)
    if failures is not None:
        _write_failure_file(target, name, failures, report)
    return report


def _check_columns(columns: list[str], target: Path) -> None:
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise CatalogError(
                f"Cannot write {target.name}: column '{column}' is listed twice.",
                "Give generated fields names that differ from the catalog's own columns.",
            )
        seen.add(column)


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[Path]:
    """A temporary path beside `target` that replaces it on success and is removed on failure."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def _write_delimited(
    temp: Path, columns: list[str], rows: Iterable[dict[str, Any]], report: WriteReport, delimiter: str
) -> int:
    count = 0
    with temp.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow([spreadsheet_value(column) for column in columns])
        for row in rows:
            writer.writerow([spreadsheet_value(row.get(column)) for column in columns])
            count += 1
    return count


def _write_csv(temp: Path, columns: list[str], rows: Iterable[dict[str, Any]], report: WriteReport) -> int:
    return _write_delimited(temp, columns, rows, report, ",")


def _write_tsv(temp: Path, columns: list[str], rows: Iterable[dict[str, Any]], report: WriteReport) -> int:
    return _write_delimited(temp, columns, rows, report, "\t")


def _write_jsonl(temp: Path, columns: list[str], rows: Iterable[dict[str, Any]], report: WriteReport) -> int:
    count = 0
    options = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
    with temp.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps({c: row.get(c) for c in columns}, default=str, option=options))
            count += 1
    return count


def _write_parquet(
    temp: Path, columns: list[str], rows: Iterable[dict[str, Any]], report: WriteReport
) -> int:
    """All columns as nullable strings: catalog values are text, and one schema fits every batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(column, pa.string()) for column in columns])
    count = 0
    with pq.ParquetWriter(temp, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= PARQUET_BATCH_ROWS:
                writer.write_batch(_arrow_batch(batch, columns, schema))
                count += len(batch)
                batch = []
        if batch or count == 0:
            writer.write_batch(_arrow_batch(batch, columns, schema))
            count += len(batch)
    return count


def _arrow_batch(rows: list[dict[str, Any]], columns: list[str], schema: Any) -> Any:
    import pyarrow as pa

    arrays = [pa.array([cell_text(row.get(column)) for row in rows], pa.string()) for column in columns]
    return pa.record_batch(arrays, schema=schema)


_WRITERS = {"csv": _write_csv, "tsv": _write_tsv, "jsonl": _write_jsonl, "parquet": _write_parquet}


def _write_xlsx(
    temp: Path,
    columns: list[str],
    rows: Iterable[dict[str, Any]],
    sheet: str,
    failures: Iterable[dict[str, Any]] | None,
    report: WriteReport,
) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(_sheet_title(sheet))
    worksheet.append([xlsx_cell(worksheet, xlsx_value(column)[0]) for column in columns])
    for number, row in enumerate(rows, start=1):
        cells = []
        for column in columns:
            value, cut = xlsx_value(row.get(column))
            if cut:
                report.note_truncation(row, column, number)
            cells.append(xlsx_cell(worksheet, value))
        worksheet.append(cells)
        report.rows = number
    if failures is not None:
        failed = workbook.create_sheet("Failures")
        failed.append(FAILURE_COLUMNS)
        for failure in failures:
            failed.append([xlsx_cell(failed, xlsx_value(failure.get(c))[0]) for c in FAILURE_COLUMNS])
            report.failures += 1
    workbook.save(temp)


def _sheet_title(sheet: str) -> str:
    """Excel sheet names: at most 31 characters, none of []:*?/\\ ."""
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in sheet).strip("'")[:31]
    return cleaned or "Enriched"


def _write_failure_file(
    target: Path, fmt: str, failures: Iterable[dict[str, Any]], report: WriteReport
) -> None:
    """`<stem>.failures<ext>` beside the export, only when something failed."""
    iterator = iter(failures)
    first = next(iterator, None)
    if first is None:
        return
    path = failures_path_for(target)
    counted = _counting(itertools.chain([first], iterator), report)
    scratch = WriteReport(path=path, format=fmt)
    with _atomic(path) as temp:
        _WRITERS[fmt](temp, FAILURE_COLUMNS, counted, scratch)
    report.failures_path = path


def _counting(failures: Iterable[dict[str, Any]], report: WriteReport) -> Iterator[dict[str, Any]]:
    for failure in failures:
        report.failures += 1
        yield failure
