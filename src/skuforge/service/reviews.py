"""Review as the service offers it beyond `bridge`: the queue filtered by check, the catalog rows of a page,
the recipe's check names, and the Excel round trip (the workbook of `skuforge review export/import`).

Like `bridge`, this is a thin layer over `skuforge.review`'s public functions: the review module validates
decisions and edits, keeps the audit trail and reads and writes the workbook; the service only pages,
filters and moves files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skuforge import review
from skuforge.store import Job, Store


def failed_checks(item: Any) -> list[str]:
    """The names of the checks that failed on an item."""
    return [str(f.get("check")) for f in item.findings or [] if not f.get("ok", True)]


def queue_by_check(store: Store, job_id: str, *, status: str, check: str, offset: int = 0,
                   limit: int = 50) -> list[dict[str, Any]]:  # fmt: skip
    """A page of the queue holding only items on which `check` failed (streams the queue to find them)."""
    from skuforge.review.queue import iter_queue

    page: list[Any] = []
    skipped = 0
    for item in iter_queue(store, job_id, status):
        if check not in failed_checks(item):
            continue
        if skipped < offset:
            skipped += 1
            continue
        page.append(item)
        if len(page) >= limit:
            break
    rows = source_rows(store, store.get_job(job_id), [i.row_id for i in page]) if page else {}
    return [review.QueueEntry(i, rows.get(i.row_id)).as_dict() | {"error": i.error} for i in page]


def source_rows(store: Store, job: Job, row_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The catalog fields of these rows of a job (one streaming pass over its selection)."""
    found = review.ReviewContext(store, job).rows(row_ids)
    return {row_id: row.data for row_id, row in found.items()}


def check_names(store: Store, job: Job) -> list[str]:
    """The checks the job's recipe runs, in recipe order (for a filter by check)."""
    ctx = review.ReviewContext(store, job)
    names = [spec.check for step in ctx.recipe.steps for spec in step.checks_for(ctx.params)]
    return list(dict.fromkeys(["schema", *names]))


def export_workbook(store: Store, job_id: str, out: Path, *, status: str = "pending") -> Any:
    """The review workbook of `skuforge review export` (same format, same columns)."""
    return review.export_xlsx(store, job_id, out, status=status)


def import_workbook(store: Store, job_id: str, path: Path, *, who: str) -> dict[str, Any]:
    """Apply a reviewed workbook as `skuforge review import` does; every row it could not apply is listed
    (the report leaves out where the server kept the file)."""
    report = review.import_xlsx(store, job_id, path, who=who).as_dict()
    report.pop("path", None)
    return report
