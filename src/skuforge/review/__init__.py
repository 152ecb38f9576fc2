"""Human review: a queue of flagged (and sampled) items, decisions with an audit trail, an Excel round trip.

    from skuforge import review
    page = review.queue(store, job_id, status="pending", offset=0, limit=50, with_source=True)
    review.decide(store, job_id, row_id, step, variant, "edit", edited='{"title": "..."}', who="ana")
    review.rollback(store, job_id, row_id, step, variant, who="ana")     # undo the latest edit
    review.history(store, job_id, row_id)                               # every decision, oldest first
    review.export_xlsx(store, job_id, "review.xlsx", status="pending")
    report = review.import_xlsx(store, job_id, "review.xlsx", who="ana")  # -> ImportReport

Errors: `EditRejected` (an edit breaks the schema or a 'fail' check) and `StaleItemError` (the item was
regenerated since it was shown) are UserErrors with a message and a hint.
"""

from skuforge.review.audit import AuditEntry, Change, StaleItemError, default_reviewer
from skuforge.review.context import ReviewContext
from skuforge.review.decisions import ACTIONS, Decision, decide, history, rollback
from skuforge.review.edits import EditRejected
from skuforge.review.excel import ImportReport, RowProblem, XlsxExport, export_xlsx, import_xlsx, readable
from skuforge.review.queue import STATUSES, QueueCounts, QueueEntry, queue, queue_counts, reasons, row_items

__all__ = [
    "ACTIONS",
    "STATUSES",
    "AuditEntry",
    "Change",
    "Decision",
    "EditRejected",
    "ImportReport",
    "QueueCounts",
    "QueueEntry",
    "ReviewContext",
    "RowProblem",
    "StaleItemError",
    "XlsxExport",
    "decide",
    "default_reviewer",
    "export_xlsx",
    "history",
    "import_xlsx",
    "queue",
    "queue_counts",
    "readable",
    "reasons",
    "rollback",
    "row_items",
]
