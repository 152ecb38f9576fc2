"""The Excel round trip: export the review queue as a workbook, import the reviewers' decisions.

The sheet shows, per item, the product's source fields, the output as readable text and why it is in the
queue, then empty Decision (a drop-down: approve, reject, edit), Edited output and Comment columns. Hidden
key columns (job, row id, step, variant, item key) let the import find each item however the reviewer sorts
or filters the rows, and refuse a row whose item was regenerated since the export. Every text cell is
written as a text cell: product data and model output are untrusted and must not run when the file opens,
and a text cell shows `=1+1` as written without changing the value.

The import applies each row on its own, all or nothing for that row, and reports every row it could not
apply with its row number in the sheet and the reason. It is idempotent: a row whose decision the item
already carries (approved, rejected, or edited to that very text) is skipped and reported as such, so
importing the same workbook twice changes nothing and writes no audit rows. A file that is not a readable
review workbook is one clear error, whatever is wrong with it.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skuforge.catalog.cells import cell_text, xlsx_value
from skuforge.errors import CatalogError, NotFoundError, SkuforgeError
from skuforge.review.context import ReviewContext
from skuforge.review.decisions import decide
from skuforge.review.edits import parse_edit
from skuforge.review.queue import matches, reasons
from skuforge.store import ItemRecord, Store

SHEET = "Review"
DECISION, EDITED, COMMENT = "Decision", "Edited output", "Comment"
KEYS = ("key:job", "key:row_id", "key:step", "key:variant", "key:item")
DECISION_WORDS = {
    "approve": "approve",
    "approved": "approve",
    "ok": "approve",
    "通过": "approve",
    "批准": "approve",
    "reject": "reject",
    "rejected": "reject",
    "驳回": "reject",
    "拒绝": "reject",
    "edit": "edit",
    "edited": "edit",
    "修改": "edit",
    "编辑": "edit",
}
_CHUNK = 256
_WIDTHS = {
    "Row": 14,
    "Step": 14,
    "Variant": 9,
    "Status": 10,
    "Output": 60,
    "Reasons": 40,
    DECISION: 12,
    EDITED: 50,
    COMMENT: 30,
}
_HELP = [
    "How to review",
    "",
    "1. On the Review sheet, choose a Decision for each row: approve, reject or edit.",
    "2. For edit, type the new output in 'Edited output'. For a one-field output (a title), type the text;",
    "   for a list, one item per line; otherwise a JSON object with the fields you change.",
    "3. Comment is optional and kept in the audit trail.",
    "4. Sort and filter freely, but keep the hidden key:* columns. Then run:",
    "   skuforge review import JOB this-file.xlsx",
    "Rows left without a decision are left in the queue.",
]


@dataclass(slots=True)
class XlsxExport:
    path: Path
    rows: int = 0


@dataclass(slots=True)
class RowProblem:
    """A sheet row the import could not apply (or applied with a warning), and why."""

    row: int
    row_id: str
    step: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.row_id}, {self.step}): {self.reason}"


@dataclass(slots=True)
class ImportReport:
    path: Path
    applied: dict[str, int] = field(default_factory=lambda: {"approve": 0, "reject": 0, "edit": 0})
    undecided: int = 0
    learned: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    skipped: list[RowProblem] = field(default_factory=list)  # decisions the items already carry

    @property
    def total_applied(self) -> int:
        return sum(self.applied.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "applied": self.applied,
            "undecided": self.undecided,
            "learned": self.learned,
            "problems": [_plain(p) for p in self.problems],
            "warnings": [_plain(p) for p in self.warnings],
            "skipped": [_plain(p) for p in self.skipped],
        }


def _plain(problem: RowProblem) -> dict[str, Any]:
    return {"row": problem.row, "row_id": problem.row_id, "step": problem.step, "reason": problem.reason}


def readable(output: Any) -> str | None:
    """An output as a reviewer reads it: a one-field output as its text, else one 'field: value' per line."""
    if isinstance(output, dict) and len(output) == 1:
        return cell_text(next(iter(output.values())))
    if isinstance(output, dict):
        lines = []
        for name, value in output.items():
            if isinstance(value, list):
                lines.append(f"{name}:")
                lines += [f"  - {cell_text(v)}" for v in value]
            else:
                lines.append(f"{name}: {cell_text(value) if value is not None else ''}")
        return "\n".join(lines)
    return cell_text(output)


# -- export ------------------------------------------------------------------------------------------------


def export_xlsx(store: Store, job_id: str, out: str | Path, *, status: str = "pending") -> XlsxExport:
    """Write the items in review `status` (pending, flagged, all, ...) of a job to a review workbook."""
    from openpyxl import Workbook

    ctx = ReviewContext(store, job_id)
    store.flush()
    source = ctx.source_columns()
    header = [
        "Row",
        "Step",
        "Variant",
        *source,
        "Status",
        "Output",
        "Reasons",
        DECISION,
        EDITED,
        COMMENT,
        *KEYS,
    ]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(SHEET)
    _layout(sheet, header)
    sheet.append(_header_cells(sheet, header))
    count = 0
    cells = _RowCells(sheet, wrap_from=3)
    for item, row in _queue_rows(store, ctx, status):
        values = [
            item.row_id,
            item.step,
            item.variant,
            *(row.get(c) for c in source),
            item.status,
            readable(item.output),
            "\n".join(reasons(item)),
            None,
            None,
            None,
            ctx.job.id,
            item.row_id,
            item.step,
            item.variant,
            item.key,
        ]
        sheet.append(cells(values))
        count += 1
    _decision_validation(sheet, header, count)
    help_sheet = workbook.create_sheet("How to review")
    for line in _HELP:
        help_sheet.append([line])
    return XlsxExport(_save(workbook, Path(out)), count)


def _queue_rows(store: Store, ctx: ReviewContext, status: str) -> Iterator[tuple[ItemRecord, dict[str, Any]]]:
    """Queue items joined with their catalog rows, chunk by chunk, in catalog then step order."""
    order = {s.name: i for i, s in enumerate(ctx.recipe.steps)}
    for chunk in ctx.chunks(_CHUNK):
        first, last = min(r.index for r in chunk), max(r.index for r in chunk)
        by_row: dict[str, list[ItemRecord]] = {}
        for item in store.items_in_range(ctx.job.id, first, last):
            if matches(item, status):
                by_row.setdefault(item.row_id, []).append(item)
        for row in chunk:
            for item in sorted(by_row.get(row.row_id, []), key=lambda i: (order.get(i.step, 99), i.variant)):
                yield item, row.data


def _layout(sheet: Any, header: list[str]) -> None:
    from openpyxl.utils import get_column_letter

    sheet.freeze_panes = "D2"
    for number, name in enumerate(header, start=1):
        dim = sheet.column_dimensions[get_column_letter(number)]
        dim.width = _WIDTHS.get(name, 24)
        if name in KEYS:
            dim.hidden = True


def _header_cells(sheet: Any, header: list[str]) -> list[Any]:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill

    cells = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = Font(bold=True)
        cell.fill = PatternFill(
            "solid", fgColor="FFF2CC" if name in (DECISION, EDITED, COMMENT) else "DDEBF7"
        )
        cell.alignment = Alignment(vertical="top")
        cells.append(cell)
    return cells


class _RowCells:
    """Makes a sheet row's cells, top-aligned, wrapping from column `wrap_from` on.

    Setting a style object on each cell costs openpyxl a lookup in its style table (half the export's
    time), so the two styles are registered once and their style indexes copied to each cell.
    """

    def __init__(self, sheet: Any, wrap_from: int) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Alignment

        self.sheet, self.wrap_from, self._cell = sheet, wrap_from, WriteOnlyCell
        self._styles = []
        for wrap in (False, True):
            proto = WriteOnlyCell(sheet)
            proto.alignment = Alignment(wrap_text=wrap, vertical="top")
            self._styles.append(proto._style)

    def __call__(self, values: list[Any]) -> list[Any]:
        cells = []
        for i, value in enumerate(values):
            safe, _ = xlsx_value(value)
            cell = self._cell(self.sheet, value=safe)
            if isinstance(safe, str):
                cell.data_type = "s"  # text stays text: `=1+1` from a product or the model never runs
            cell._style = copy(self._styles[i >= self.wrap_from])
            cells.append(cell)
        return cells


def _decision_validation(sheet: Any, header: list[str], count: int) -> None:
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    column = get_column_letter(header.index(DECISION) + 1)
    rule = DataValidation(
        type="list",
        formula1='"approve,reject,edit"',
        allow_blank=True,
        showDropDown=False,
        showErrorMessage=True,
        errorTitle="Decision",
        error="Choose approve, reject or edit.",
        showInputMessage=True,
        promptTitle="Decision",
        prompt="approve, reject, or edit (fill Edited output)",
    )
    rule.add(f"{column}2:{column}{max(count, 1) + 1}")
    sheet.data_validations.append(rule)


def _save(workbook: Any, target: Path) -> Path:
    """Write next to the target, then rename: a crash never leaves a half-written workbook."""
    target = target.expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".review-", suffix=".xlsx", dir=target.parent)
    os.close(handle)
    try:
        workbook.save(temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


# -- import ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _SheetRow:
    number: int
    job: str
    row_id: str
    step: str
    variant: str
    key: str
    decision: str
    edited: Any
    comment: str | None
    formula: bool


def import_xlsx(store: Store, job_id: str, path: str | Path, *, who: str | None = None) -> ImportReport:
    """Apply the decisions of a review workbook to a job; rows that cannot be applied are reported."""
    path = Path(path)
    report = ImportReport(path=path)
    ctx = ReviewContext(store, job_id)
    seen: dict[tuple[str, str, str], int] = {}
    for row in _read_rows(path):
        if not row.decision and row.edited in (None, ""):
            report.undecided += 1
            continue
        problem = _row_problem(row, ctx.job.id, seen)
        if problem is None:
            problem = _apply_row(store, ctx, row, who, report)
        if problem is not None:
            report.problems.append(RowProblem(row.number, row.row_id, row.step, problem))
    return report


def _row_problem(row: _SheetRow, job_id: str, seen: dict[tuple[str, str, str], int]) -> str | None:
    """Why a row cannot be applied before touching the store, or None."""
    if not row.row_id or not row.step or not row.key:
        return "its hidden key columns are empty; export the queue again and copy your decisions over"
    if row.job != job_id:
        return f"it was exported from job {row.job or '?'}, not {job_id}"
    word = DECISION_WORDS.get(row.decision.lower()) if row.decision else ("edit" if row.edited else None)
    if word is None:
        return f"unknown decision '{row.decision}'; use approve, reject or edit"
    if row.formula:
        return "'Edited output' is a formula; type the text itself"
    if word != "edit" and row.edited not in (None, ""):
        return f"the decision is {word} but 'Edited output' is filled; set the decision to edit, or clear it"
    first = seen.setdefault((row.row_id, row.step, row.variant), row.number)
    if first != row.number:
        return f"the same item is already decided in row {first} of this sheet"
    row.decision = word
    return None


def _already_applied(store: Store, ctx: ReviewContext, row: _SheetRow) -> str | None:
    """Why the item already carries this row's decision ("already approved"), or None.

    Only for the item the row was exported from (same key); a regenerated item is refused by `decide`.
    An edit counts as applied when the item's output is what the edit would make it, approved or edited.
    """
    store.flush()
    try:
        item = store.get_item(ctx.job.id, row.row_id, row.step, row.variant)
    except SkuforgeError:
        return None  # `decide` says what is wrong with the row
    if item.key != row.key:
        return None
    if row.decision in ("approve", "reject"):
        state = "approved" if row.decision == "approve" else "rejected"
        return f"already {state}; skipped" if item.review == state else None
    if item.review not in ("edited", "approved"):
        return None
    try:
        edited = parse_edit(ctx.step(row.step), row.row_id, item.output, row.edited)
    except SkuforgeError:
        return None
    return f"already {item.review} with this text; skipped" if edited == item.output else None


def _apply_row(
    store: Store, ctx: ReviewContext, row: _SheetRow, who: str | None, report: ImportReport
) -> str | None:
    done = _already_applied(store, ctx, row)
    if done is not None:
        report.skipped.append(RowProblem(row.number, row.row_id, row.step, done))
        return None
    try:
        decision = decide(
            store,
            ctx.job.id,
            row.row_id,
            row.step,
            row.variant,
            row.decision,
            edited=row.edited,
            who=who,
            comment=row.comment,
            expected_key=row.key,
            context=ctx,
        )
    except SkuforgeError as exc:
        return exc.message
    report.applied[decision.action] = report.applied.get(decision.action, 0) + 1
    report.learned += int(decision.learned)
    for finding in decision.findings:
        report.warnings.append(
            RowProblem(row.number, row.row_id, row.step, f"applied, but flagged: {finding.reason}")
        )
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_rows(path: Path) -> Iterator[_SheetRow]:
    """The data rows of the Review sheet, matched to columns by header name (reviewers may reorder)."""
    workbook = _open_review_workbook(path)
    try:
        sheet = workbook[SHEET] if SHEET in workbook.sheetnames else workbook.worksheets[0]
        rows = sheet.iter_rows()
        header = [_text(c.value) for c in next(rows, [])]
        columns = _columns(header, path)
        for number, cells in enumerate(rows, start=2):
            yield _sheet_row(number, cells, columns)
    except SkuforgeError:
        raise
    except Exception as exc:  # zip, XML and openpyxl errors from a damaged sheet part
        raise _unreadable(path, exc) from None
    finally:
        workbook.close()


def _open_review_workbook(path: Path) -> Any:
    from openpyxl import load_workbook

    if not path.exists():
        raise NotFoundError(
            f"Review file not found: {path}", "Give the .xlsx written by `skuforge review export`."
        )
    if path.is_dir():
        raise CatalogError(f"{path} is a folder, not a review workbook.", "Give the .xlsx file itself.")
    try:
        with path.open("rb") as handle:
            data = io.BytesIO(handle.read())
        return load_workbook(data, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises zip, XML, KeyError and its own errors for files it cannot read
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: Exception) -> CatalogError:
    """One clear error for any file that is not a readable review workbook, with what it seems to be."""
    with path.open("rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"PK"):
        seems = "Its zip container or a sheet in it is damaged (an interrupted copy?)."
    elif magic.startswith(b"\xd0\xcf\x11\xe0"):
        seems = "It looks like an old binary .xls or a password-protected workbook."
    else:
        seems = "It is not an Excel workbook at all (text or another format)."
    return CatalogError(
        f"{path.name} is not a review workbook skuforge can read ({type(exc).__name__}). {seems}",
        "Import the .xlsx written by `skuforge review export JOB --out review.xlsx`, saved from Excel, WPS "
        "or LibreOffice as .xlsx (not .csv or .xls), without a password.",
    )


def _columns(header: list[str], path: Path) -> dict[str, int]:
    columns = {name: i for i, name in enumerate(header) if name}
    missing = [n for n in (*KEYS, DECISION) if n not in columns]
    if missing:
        raise CatalogError(
            f"{path} has no column {', '.join(repr(m) for m in missing)}: it was not written by "
            "`skuforge review export`, or those columns were deleted.",
            "Export the queue again with `skuforge review export JOB --out review.xlsx`; keep the hidden "
            "key:* columns.",
        )
    return columns


def _sheet_row(number: int, cells: Any, columns: dict[str, int]) -> _SheetRow:
    def cell(name: str) -> Any:
        i = columns.get(name)
        return cells[i] if i is not None and i < len(cells) else None

    def value(name: str) -> Any:
        c = cell(name)
        return None if c is None else c.value

    edited = cell(EDITED)
    formula = edited is not None and getattr(edited, "data_type", None) == "f"
    raw = None if edited is None or edited.value is None else edited.value
    return _SheetRow(
        number=number,
        job=_text(value(KEYS[0])),
        row_id=_text(value(KEYS[1])),
        step=_text(value(KEYS[2])),
        variant=_text(value(KEYS[3])),
        key=_text(value(KEYS[4])),
        decision=_text(value(DECISION)),
        edited=_text(raw) if raw is not None else None,
        comment=_text(value(COMMENT)) or None,
        formula=formula,
    )
