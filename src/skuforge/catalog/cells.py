"""Turning generated values into safe spreadsheet cells.

Generated text goes back to operators who open it in Excel or WPS, so three things matter:
- formula injection: a cell starting with `=`, `+`, `-`, `@` (or tab/CR, or their full-width forms,
  which WPS and Excel with an IME also evaluate) runs as a formula when opened. We prefix a single quote,
  the OWASP "CSV injection" advice, so the text shows as written and nothing runs;
- structured values (lists of selling points, dicts of attributes) become readable text: lists one item
  per line, dicts as JSON with non-ASCII kept;
- Excel's limits: 32,767 characters per cell and no XML control characters (openpyxl raises on them).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import orjson

EXCEL_CELL_LIMIT = 32_767
TRUNCATION_MARKER = " …[truncated by skuforge]"

_FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise_formula(value: Any) -> Any:
    """Prefix `'` to a string that a spreadsheet would run as a formula; anything else is returned as is.

    A plain signed number written as text ("-5", "+3.2") is left alone: it cannot call anything, and
    quoting it would corrupt price and weight columns.
    """
    if not isinstance(value, str) or not value or value[0] not in _FORMULA_STARTS:
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def cell_text(value: Any) -> str | None:
    """A value as the text a person reads in a cell: lists one item per line, dicts as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        parts = [cell_text(item) for item in value]
        return "\n".join(part for part in parts if part is not None)
    if isinstance(value, dict):
        return orjson.dumps(value, default=str).decode("utf-8")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def spreadsheet_value(value: Any) -> Any:
    """A value for a CSV/TSV cell: numbers kept, text flattened and neutralised."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return neutralise_formula(cell_text(value))


def xlsx_value(value: Any) -> tuple[Any, bool]:
    """A value for an xlsx cell and whether it had to be truncated.

    Numbers, dates and booleans stay typed (Excel sorts and sums them); everything else becomes text with
    control characters stripped, formulas neutralised and the length capped at Excel's cell limit.
    """
    if isinstance(value, float) and value != value:
        return None, False  # NaN: Excel has no such number
    aware = isinstance(value, (dt.datetime, dt.time)) and value.tzinfo is not None
    if value is None or not aware and isinstance(value, (bool, int, float, dt.datetime, dt.date, dt.time)):
        return value, False
    text = _ILLEGAL_XML.sub("", cell_text(value) or "")
    text = neutralise_formula(text)
    if len(text) <= EXCEL_CELL_LIMIT:
        return text, False
    return text[: EXCEL_CELL_LIMIT - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER, True
