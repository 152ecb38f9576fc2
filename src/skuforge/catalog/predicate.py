"""A `--where` SQL predicate, evaluated by DuckDB over batches of rows from our own readers.

Why batches from our readers rather than DuckDB's own file scanners: a selected row must keep its exact
index, id and line (the line is where an operator looks when a result is wrong, and DuckDB does not know
physical lines), the text must be the text our readers produced (same encoding detection, same header
repairs), and one code path then serves CSV, TSV, XLSX, JSONL and Parquet alike. Only the columns the
predicate mentions are handed to DuckDB, so a 1M-row scan costs little more than reading the file.

Column types: catalog text is untyped, but `price > 20` must compare numbers. Each column's type is
decided once from the first rows (all numbers -> DOUBLE, all dates -> TIMESTAMP, ...) and applied with
TRY_CAST, so a stray 'N/A' further down is NULL (not matched) instead of an error, and the meaning of the
predicate never changes from one batch to the next.

The DuckDB connection has file access disabled and its configuration locked: a predicate typed in the
web console can filter rows, not read files on the server. It also runs within limits, so a predicate
cannot take the machine with it: each batch must finish within `WHERE_TIMEOUT_S` seconds (a timer
interrupts DuckDB) and within `WHERE_MEMORY_LIMIT` of memory, with no spilling to disk; a predicate that
needs more is stopped with an error that says so.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

from skuforge.catalog.cells import cell_text
from skuforge.catalog.reader import Catalog, CatalogRow
from skuforge.errors import SelectionError

TYPE_SAMPLE_ROWS = 1000
WHERE_TIMEOUT_S = 10.0
"""Longest a predicate may run on one batch of rows (10,000 by default; a plain filter takes milliseconds)."""
WHERE_MEMORY_LIMIT = "512MB"
_NUMBER_TEXT = re.compile(r"-?(0|[1-9]\d{0,14})(\.\d+)?")


class Predicate:
    """A compiled `where` clause for one catalog; `keep(rows)` returns the rows it matches."""

    def __init__(self, catalog: Catalog, where: str, sample: list[CatalogRow]) -> None:
        import duckdb

        self.catalog, self.where = catalog, where.strip()
        if not self.where:
            raise self._error("the predicate is empty")
        self.columns = _mentioned_columns(catalog.columns, self.where)
        self.types = {name: infer_type([row.data.get(name) for row in sample]) for name in self.columns}
        self._con = duckdb.connect(
            config={"enable_external_access": False, "memory_limit": WHERE_MEMORY_LIMIT, "temp_directory": ""}
        )
        self._con.execute("SET lock_configuration = true")
        self.sql = self._build_sql()
        try:
            self._check(sample)
        except BaseException:
            self._con.close()
            raise

    def _check(self, sample: list[CatalogRow]) -> None:
        """Fail now, on the first rows, rather than midway through a long scan."""
        try:
            statements = len(self._con.extract_statements(self.sql))
        except Exception as exc:  # duckdb.ParserException
            raise self._error(_first_lines(str(exc))) from None
        if statements != 1:
            raise self._error("it must be a single expression (no ';')")
        self._matches(sample)

    def keep(self, rows: list[CatalogRow]) -> Iterator[CatalogRow]:
        """The rows of this batch that match, in order."""
        if not rows:
            return iter(())
        return (rows[pos] for pos in self._matches(rows))

    def _matches(self, rows: list[CatalogRow]) -> list[int]:
        import pyarrow as pa

        arrays = {"__pos": pa.array(range(len(rows)), pa.int32())}
        for name in self.columns:
            arrays[name] = pa.array([_text(row.data.get(name)) for row in rows], pa.string())
        timer = threading.Timer(WHERE_TIMEOUT_S, self._con.interrupt)
        timer.daemon = True
        try:
            self._con.register("__batch", pa.table(arrays))
            timer.start()
            matched = self._con.execute(self.sql).fetchall()
        except Exception as exc:  # duckdb.Error subclasses: parser, binder, conversion, interrupt, memory
            raise self._explain(exc, rows) from None
        finally:
            timer.cancel()
            self._con.unregister("__batch")
        return [pos for (pos,) in matched]

    def close(self) -> None:
        self._con.close()

    def _build_sql(self) -> str:
        selected = ["__pos"]
        for name in self.columns:
            quoted = quote_identifier(name)
            kind = self.types[name]
            selected.append(quoted if kind == "VARCHAR" else f"TRY_CAST({quoted} AS {kind}) AS {quoted}")
        source = f"SELECT {', '.join(selected)} FROM __batch"
        return f"SELECT __pos FROM ({source}) AS catalog WHERE (\n{self.where}\n) ORDER BY __pos"

    def _explain(self, exc: Exception, rows: list[CatalogRow]) -> SelectionError:
        """DuckDB's message, made about the user's columns; data errors also say which rows."""
        kind = type(exc).__name__
        if kind in ("InterruptException", "OutOfMemoryException"):
            return self._over_limit(kind, rows)
        message = _first_lines(str(exc)).split(" Candidate bindings:")[0]
        missing = re.search(r'column "([^"]+)" not found', message)
        if missing:
            close = difflib.get_close_matches(missing.group(1), self.catalog.columns, n=1, cutoff=0.5)
            folded = [c for c in self.catalog.columns if c.casefold() == missing.group(1).casefold()]
            guesses = folded or close
            message += f" Did you mean {quote_identifier(guesses[0])}?" if guesses else ""
        data_error = type(exc).__name__ not in ("BinderException", "ParserException", "CatalogException")
        return self._error(message, near=rows[0].line if rows and data_error else None)

    def _over_limit(self, kind: str, rows: list[CatalogRow]) -> SelectionError:
        batch = f"{len(rows):,} row{'' if len(rows) == 1 else 's'}"
        if kind == "InterruptException":
            what = f"it ran for more than {WHERE_TIMEOUT_S:g} s on {batch} and was stopped"
        else:
            what = f"it needed more than {WHERE_MEMORY_LIMIT} of memory on {batch} and was stopped"
        return SelectionError(
            f"The filter {self.where!r} cannot be applied to {self.catalog.path.name}: {what}.",
            "A filter compares each row's own columns, e.g. \"category = 'Shoes' AND price < 20\"; "
            "subqueries over large ranges and joins make it too costly. Simplify it.",
        )

    def _error(self, reason: str, near: str | None = None) -> SelectionError:
        where = f" (at {near})" if near else ""
        types = getattr(self, "types", {})
        shown = [quote_identifier(c) if _needs_quotes(c) else c for c in self.catalog.columns]
        pairs = zip(self.catalog.columns, shown, strict=True)
        typed = ", ".join(f"{name} ({types[c]})" if c in types else name for c, name in pairs)
        return SelectionError(
            f"The filter {self.where!r} cannot be applied to {self.catalog.path.name}{where}: {reason}",
            f"Columns: {typed}. Quote names with spaces as \"col name\" and text as 'value'; "
            "use CAST(col AS DOUBLE) to compare text as numbers.",
        )


def _mentioned_columns(columns: list[str], where: str) -> list[str]:
    """Columns whose name occurs in the predicate text (a superset of those it really uses)."""
    text = where.casefold()
    if "columns(" in text or "*" in text:
        return list(columns)
    return [c for c in columns if c.casefold() in text or c.replace('"', '""').casefold() in text]


def infer_type(values: list[Any]) -> str:
    """The DuckDB type a column is compared as, from a sample of its values.

    A type wins when at least 80% of the non-empty values have it: supplier data has the odd 'N/A' or
    'TBD' in a price column, and `price > 20` should still compare prices (the odd ones are NULL).
    """
    kinds = Counter(_kind(value) for value in values if value is not None)
    if not kinds:
        return "VARCHAR"
    kind, count = kinds.most_common(1)[0]
    return kind if count >= 0.8 * sum(kinds.values()) else "VARCHAR"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "DOUBLE"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return "DOUBLE"  # leading zeros and >15 digits stay text: they are codes, not quantities
    return "VARCHAR"


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else cell_text(value)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _needs_quotes(name: str) -> bool:
    return not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)


def _first_lines(message: str) -> str:
    """DuckDB's message without the trailing caret diagram, which points into SQL the user never wrote."""
    kept = []
    for line in message.splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept)
