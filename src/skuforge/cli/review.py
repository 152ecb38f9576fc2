"""`skuforge review`: the review queue from a terminal, and its Excel round trip.

skuforge review list JOB                         counts per state and the first pending items
skuforge review export JOB --out review.xlsx     the queue as a workbook with a Decision drop-down
skuforge review import JOB review.xlsx           apply approve / reject / edit from the workbook
skuforge review approve|reject JOB ROW_ID        decide one row (all its steps, or --step)
skuforge review edit JOB ROW_ID --step S TEXT    replace one output (validated and checked)
skuforge review history JOB ROW_ID               who decided what, when, and the value before
skuforge review rollback JOB ROW_ID --step S     undo the latest edit
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from skuforge.errors import UserError

review_app = typer.Typer(
    help="Review flagged and sampled items: approve, reject or edit, in the terminal or in Excel.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

JobArg = Annotated[str, typer.Argument(help="The job (see `skuforge jobs`).")]
RowArg = Annotated[str, typer.Argument(help="The product's row id (its id column value, or its line).")]
StepOpt = Annotated[str | None, typer.Option("--step", "-s", help="Only this step of the recipe.")]
VariantOpt = Annotated[str | None, typer.Option("--variant", help="Only this variant, e.g. a locale: de.")]
WhoOpt = Annotated[
    str | None, typer.Option("--who", help="Reviewer name (default: $SKUFORGE_USER or the OS user).")
]
CommentOpt = Annotated[str | None, typer.Option("--comment", "-c", help="Why; kept in the audit trail.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")


def _short(value: Any) -> str | None:
    """A value for a table cell: text as is, anything else as JSON, cut to 80 characters."""
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:79] + "…"


def _print_json(data: Any) -> None:
    out.print_json(orjson.dumps(data, default=str).decode())


def _items(store: Any, job_id: str, row_id: str, step: str | None, variant: str | None) -> list[Any]:
    """The reviewable items of one row, narrowed by --step / --variant; an error names what exists."""
    from skuforge.review import row_items
    from skuforge.review.decisions import REVIEWABLE

    found = row_items(store, job_id, row_id)
    if not found:
        raise UserError(
            f"Job {job_id} has no items for row '{row_id}'.", f"List the queue: skuforge review list {job_id}"
        )
    chosen = [
        i for i in found if (step is None or i.step == step) and (variant is None or i.variant == variant)
    ]
    if not chosen:
        have = ", ".join(sorted({i.step + (f"@{i.variant}" if i.variant else "") for i in found}))
        raise UserError(f"Row '{row_id}' has no item for that step/variant.", f"Its items: {have}.")
    return [i for i in chosen if i.status in REVIEWABLE] or chosen


@review_app.command("list")
def list_queue(
    job_id: JobArg,
    status: Annotated[
        str, typer.Option(help="pending, flagged, approved, rejected, edited or all.")
    ] = "pending",
    limit: Annotated[int, typer.Option(help="How many items to list.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many items first.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The review queue of a job: counts per state, then the items waiting."""
    from skuforge.review import queue, queue_counts, readable
    from skuforge.store import open_store

    store = open_store()
    try:
        counts = queue_counts(store, job_id)
        page = queue(store, job_id, status=status, offset=offset, limit=limit)
    finally:
        store.close()
    if as_json:
        _print_json({"counts": counts.as_dict(), "items": [e.as_dict() for e in page]})
        return
    out.print(
        f"Job [bold]{job_id}[/]: {counts.pending:,} pending, {counts.approved:,} approved, {counts.edited:,} "
        f"edited, {counts.rejected:,} rejected ({counts.flagged:,} flagged by checks, "
        f"{counts.reviewable:,} items with output)."
    )
    table = Table(
        "row",
        "step",
        "status",
        "output",
        "reasons",
        title=f"{status} (from {offset + 1})",
        title_justify="left",
    )
    for entry in page:
        item = entry.item
        table.add_row(
            item.row_id,
            item.step + (f"@{item.variant}" if item.variant else ""),
            item.status,
            (readable(item.output) or "")[:120],
            "\n".join(entry.reasons),
        )
    out.print(table)


@review_app.command("export")
def export(
    job_id: JobArg,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The workbook to write (.xlsx).")] = Path(
        "review.xlsx"
    ),
    all_items: Annotated[
        bool, typer.Option("--all", help="Every item with an output, not just the queue.")
    ] = False,
    status: Annotated[
        str, typer.Option(help="pending (the queue), flagged, approved, rejected, edited.")
    ] = "pending",
) -> None:
    """Write the review queue to an Excel workbook with a Decision drop-down; import it when done."""
    from skuforge.review import export_xlsx
    from skuforge.store import open_store

    store = open_store()
    try:
        written = export_xlsx(store, job_id, out_path, status="all" if all_items else status)
    finally:
        store.close()
    err.print(
        f"Wrote {written.rows:,} items to [bold]{written.path}[/]. Fill in Decision, then run: "
        f"skuforge review import {job_id} {written.path.name}"
    )


@review_app.command("import")
def import_(
    job_id: JobArg,
    path: Annotated[Path, typer.Argument(help="The workbook written by `review export`, with decisions.")],
    who: WhoOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply the decisions in a review workbook; rows that cannot be applied are listed with the reason."""
    from skuforge.review import import_xlsx
    from skuforge.store import open_store

    store = open_store()
    try:
        report = import_xlsx(store, job_id, path, who=who)
    finally:
        store.close()
    if as_json:
        _print_json(report.as_dict())
    else:
        a = report.applied
        err.print(
            f"Applied {report.total_applied:,} decisions from {path.name}: {a['approve']:,} approved, "
            f"{a['edit']:,} edited, {a['reject']:,} rejected; {report.undecided:,} rows left undecided."
        )
        if report.skipped:
            err.print(
                f"Skipped {len(report.skipped):,} rows whose decision was already applied "
                "(importing a workbook again changes nothing)."
            )
        for warning in report.warnings:
            err.print(f"[yellow]{warning}[/]", highlight=False)
        if report.problems:
            err.print(f"[red]{len(report.problems)} rows not applied[/] (nothing was changed for them):")
            for problem in report.problems:
                err.print(f"  {problem}", highlight=False, markup=False)
    if report.problems:
        raise UserError(
            f"{len(report.problems)} of the decisions in {path.name} were not applied (listed above).",
            "Fix those rows in the workbook and import it again; rows already applied are not changed twice.",
        )


def _decide_all(
    job_id: str,
    row_id: str,
    action: str,
    step: str | None,
    variant: str | None,
    edited: str | None,
    who: str | None,
    comment: str | None,
) -> None:
    from skuforge.review import decide
    from skuforge.review.context import ReviewContext
    from skuforge.store import open_store

    store = open_store()
    try:
        targets = _items(store, job_id, row_id, step, variant)
        if action == "edit" and len(targets) > 1:
            have = ", ".join(i.step + (f"@{i.variant}" if i.variant else "") for i in targets)
            raise UserError(
                f"Row '{row_id}' has several outputs ({have}).", "Say which with --step (and --variant)."
            )
        ctx = ReviewContext(store, job_id)
        for item in targets:
            d = decide(
                store,
                job_id,
                row_id,
                item.step,
                item.variant,
                action,
                edited=edited,
                who=who,
                comment=comment,
                context=ctx,
            )
            label = item.step + (f"@{item.variant}" if item.variant else "")
            err.print(f"{row_id} {label}: {d.review}" + (" (stored as an example)" if d.learned else ""))
            for finding in d.findings:
                err.print(f"[yellow]  still flagged: {finding.reason}[/]", highlight=False)
    finally:
        store.close()


@review_app.command("approve")
def approve(
    job_id: JobArg,
    row_id: RowArg,
    step: StepOpt = None,
    variant: VariantOpt = None,
    who: WhoOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Approve a row's outputs (all its steps, or --step): they are published by --approved-only exports."""
    _decide_all(job_id, row_id, "approve", step, variant, None, who, comment)


@review_app.command("reject")
def reject(
    job_id: JobArg,
    row_id: RowArg,
    step: StepOpt = None,
    variant: VariantOpt = None,
    who: WhoOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Reject a row's outputs (all its steps, or --step): --approved-only exports leave them out."""
    _decide_all(job_id, row_id, "reject", step, variant, None, who, comment)


@review_app.command("edit")
def edit(
    job_id: JobArg,
    row_id: RowArg,
    text: Annotated[str, typer.Argument(help="The new output: text for a one-field output, else JSON.")],
    step: StepOpt = None,
    variant: VariantOpt = None,
    who: WhoOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Replace one output; it is validated against the recipe's schema and checked like a model answer."""
    _decide_all(job_id, row_id, "edit", step, variant, text, who, comment)


@review_app.command("history")
def history(
    job_id: JobArg, row_id: RowArg, step: StepOpt = None, variant: VariantOpt = None, as_json: JsonOpt = False
) -> None:
    """Every decision on a row: who, when, what changed and the value before."""
    import time

    from skuforge.review import history as trail
    from skuforge.store import open_store

    store = open_store()
    try:
        found = trail(store, job_id, row_id, step, variant)
    finally:
        store.close()
    if as_json:
        _print_json([e.as_dict() for e in found])
        return
    if not found:
        err.print(f"No decisions yet on row '{row_id}' of job {job_id}.")
        return
    table = Table("when", "who", "step", "action", "field", "before", "after", "comment")
    for e in found:
        values = e.as_dict()
        shown = [_short(values["before"]), _short(values["after"])]
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at)),
            e.who,
            e.step + (f"@{e.variant}" if e.variant else ""),
            e.action,
            e.field or "(output)",
            shown[0] or "-",
            shown[1] or "-",
            e.comment or "",
        )
    out.print(table)


@review_app.command("rollback")
def rollback(
    job_id: JobArg,
    row_id: RowArg,
    step: StepOpt = None,
    variant: VariantOpt = None,
    who: WhoOpt = None,
    comment: CommentOpt = None,
) -> None:
    """Undo the latest edit of a row's output: the previous value comes back, and the undo is audited."""
    from skuforge.review import history as trail
    from skuforge.review import rollback as undo
    from skuforge.review.audit import last_open_edit
    from skuforge.store import open_store

    store = open_store()
    try:
        targets = _items(store, job_id, row_id, step, variant)
        edited = [i for i in targets if last_open_edit(trail(store, job_id, row_id, i.step, i.variant))]
        if not edited:
            raise UserError(
                f"Row '{row_id}' of job {job_id} has no edit to roll back.",
                f"See its decisions with: skuforge review history {job_id} {row_id}",
            )
        if len(edited) > 1:
            have = ", ".join(i.step + (f"@{i.variant}" if i.variant else "") for i in edited)
            raise UserError(
                f"Row '{row_id}' has edits on several outputs ({have}).", "Say which with --step."
            )
        item = edited[0]
        d = undo(store, job_id, row_id, item.step, item.variant, who=who, comment=comment)
    finally:
        store.close()
    err.print(f"{row_id} {item.step}: the edit was undone; review state is now {d.review or 'none'}.")
