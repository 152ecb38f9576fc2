"""Turning generated values into safe spreadsheet cells, without changing what they say.

Generated text and product data go back to operators who open them in Excel or WPS, so three things matter:
- formula injection. In xlsx every text cell is written as a text cell (openpyxl's string type), which a
  spreadsheet shows as written and never runs, so values are stored exactly. CSV has no cell types: there
  a value that a spreadsheet would evaluate gets a leading `'`, the OWASP "CSV injection" advice. That
  is a value starting with `=` or `@`, or with `+`/`-` followed by something that is not a number, a
  phone number or a percentage (`-5`, `-5%`, `+86 138 0013 8000` are left alone: they cannot call
  anything, and quoting them would damage prices and phones). Full-width forms (WPS evaluates them too)
  and leading tabs or line breaks before such a start count the same;
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

_ALWAYS = frozenset("=@\uff1d\uff20")
_SIGNS = frozenset("+-\uff0b\uff0d")
_LEADING_SPACE = "\t\r\n"
_HARMLESS_AFTER_SIGN = re.compile(
    r"[+\-\s]*"  # a lone sign or a dash used as a placeholder: "-", "--"
    r"|\s*\(?\d[\d\s().,/\-]*%?"  # numbers, percentages and phones: "-5", "-5%", "+86 138 0013 8000"
    r"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+\-]?\d+)?%?"  # decimals and exponents: "-.5", "+1e5"
)
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def would_evaluate(text: str) -> bool:
    """Whether a spreadsheet opening a CSV would run `text` as a formula (see the module docstring)."""
    start = text.lstrip(_LEADING_SPACE)
    if not start:
        return False
    if start[0] in _ALWAYS:
        return True
    return start[0] in _SIGNS and not _HARMLESS_AFTER_SIGN.fullmatch(start[1:])


def neutralise_formula(value: Any) -> Any:
    """For CSV/TSV: prefix `'` to a string a spreadsheet would run as a formula; anything else as it is.

    `=1+1`, `@SUM(A1)`, `+cmd|' /C calc'!A0` and `-2+3` are quoted; `-5`, `-5%`, `+3.25` and the phone
    `+86 138 0013 8000` are not.
    """
    if isinstance(value, str) and would_evaluate(value):
        return "'" + value
    return value


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
    control characters stripped and the length capped at Excel's cell limit, and is otherwise unchanged:
    write it with `xlsx_cell`, which marks it as text so that `=1+1` is never a formula.
    """
    if isinstance(value, float) and value != value:
        return None, False  # NaN: Excel has no such number
    aware = isinstance(value, (dt.datetime, dt.time)) and value.tzinfo is not None
    if value is None or not aware and isinstance(value, (bool, int, float, dt.datetime, dt.date, dt.time)):
        return value, False
    text = _ILLEGAL_XML.sub("", cell_text(value) or "")
    if len(text) <= EXCEL_CELL_LIMIT:
        return text, False
    return text[: EXCEL_CELL_LIMIT - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER, True


def xlsx_cell(sheet: Any, value: Any) -> Any:
    """What to append to a write-only openpyxl sheet for `value` (from `xlsx_value`).

    openpyxl turns a string starting with `=` into a formula; such text goes in a cell typed as a string,
    which Excel and LibreOffice show as written and never evaluate. Other values are appended as they are
    (openpyxl already types other text as strings), which keeps writing fast.
    """
    if not (isinstance(value, str) and value.startswith("=")):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell
