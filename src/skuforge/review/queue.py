"""The review queue: which items wait for a reviewer, page by page, with counts.

Items enter the queue when the runner records them with review='pending': every flagged item, plus the
share of clean items a job's `review_sample` sends. A reviewer's decision moves them to approved, edited or
rejected; `skuforge export --approved-only` publishes only approved and edited ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from skuforge.checks.base import catalog_notes
from skuforge.errors import UserError
from skuforge.review.context import ReviewContext
from skuforge.store import ItemRecord, Store
from skuforge.store.schema import items

STATUSES = ("pending", "flagged", "approved", "rejected", "edited", "all")
REVIEW_STATES = ("pending", "approved", "rejected", "edited")


@dataclass(slots=True)
class QueueEntry:
    """One item of the queue; `source` holds the catalog row's fields when asked for."""

    item: ItemRecord
    source: dict[str, Any] | None = None

    @property
    def reasons(self) -> list[str]:
        return reasons(self.item)

    def as_dict(self) -> dict[str, Any]:
        i = self.item
        return {
            "job_id": i.job_id,
            "row_id": i.row_id,
            "row_index": i.row_index,
            "step": i.step,
            "variant": i.variant,
            "key": i.key,
            "status": i.status,
            "review": i.review,
            "output": i.output,
            "reasons": self.reasons,
            "source": self.source,
        }


@dataclass(slots=True)
class QueueCounts:
    """How many items of a job are in each review state, and how many were flagged."""

    pending: int = 0
    approved: int = 0
    rejected: int = 0
    edited: int = 0
    flagged: int = 0
    reviewable: int = 0  # items with an output (done or flagged)
    by_step: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def reasons(item: ItemRecord) -> list[str]:
    """Why the item is in the queue: the reasons of its failed checks, or that it was sampled; then what the
    catalog's filled rows changed in its answer (a value moved or dropped), which the reviewer should know."""
    found = [str(f.get("reason") or f.get("check", "")) for f in item.findings or [] if not f.get("ok", True)]
    if not found and item.review == "pending":
        found = ["sampled for review (no check flagged it)"]
    return found + [f"note: {f.get('reason', '')}" for f in catalog_notes(item.findings)] if found else []


def _filters(status: str) -> dict[str, Any]:
    if status not in STATUSES:
        raise UserError(f"Unknown review status '{status}'.", f"Use one of: {', '.join(STATUSES)}.")
    if status == "flagged":
        return {"status": "flagged"}
    if status == "all":
        return {"status": ("done", "flagged")}
    return {"review": status, "status": ("done", "flagged")}


def iter_queue(store: Store, job_id: str, status: str = "pending") -> Iterator[ItemRecord]:
    """Every item in this review status, in catalog order, streamed."""
    store.flush()
    return store.items(job_id, **_filters(status))


def matches(item: ItemRecord, status: str) -> bool:
    """Whether an item belongs to the queue for `status` (the same rule as `iter_queue`)."""
    wanted = _filters(status)
    kinds = wanted["status"]
    ok = item.status in ((kinds,) if isinstance(kinds, str) else kinds)
    return ok and ("review" not in wanted or item.review == wanted["review"])


def queue(
    store: Store,
    job_id: str,
    *,
    status: str = "pending",
    offset: int = 0,
    limit: int = 50,
    with_source: bool = False,
    context: ReviewContext | None = None,
) -> list[QueueEntry]:
    """One page of the queue; with `with_source`, each entry carries its catalog row's fields."""
    store.get_job(job_id)
    store.flush()
    page = list(store.items(job_id, offset=max(offset, 0), limit=max(limit, 0), **_filters(status)))
    if not with_source or not page:
        return [QueueEntry(item) for item in page]
    ctx = context or ReviewContext(store, job_id)
    rows = ctx.rows(i.row_id for i in page)
    return [QueueEntry(i, rows[i.row_id].data if i.row_id in rows else None) for i in page]


def queue_counts(store: Store, job_id: str) -> QueueCounts:
    """Counts per review state (and flagged items), overall and per step."""
    store.get_job(job_id)
    store.flush()
    query = (
        select(items.c.step, items.c.status, items.c.review, func.count())
        .where(items.c.job_id == job_id, items.c.status.in_(("done", "flagged")))
        .group_by(items.c.step, items.c.status, items.c.review)
    )
    counts = QueueCounts()
    with store.engine.connect() as conn:
        for step, status, review, n in conn.execute(query):
            per = counts.by_step.setdefault(step, {s: 0 for s in (*REVIEW_STATES, "flagged", "reviewable")})
            for name, hit in (
                (review, review in REVIEW_STATES),
                ("flagged", status == "flagged"),
                ("reviewable", True),
            ):
                if hit:
                    setattr(counts, name, getattr(counts, name) + n)
                    per[name] += n
    return counts


def row_items(store: Store, job_id: str, row_id: str) -> list[ItemRecord]:
    """All items of one product (every step and variant), in recipe order of storage."""
    store.get_job(job_id)
    store.flush()
    query = select(items.c.step, items.c.variant).where(items.c.job_id == job_id, items.c.row_id == row_id)
    with store.engine.connect() as conn:
        keys = conn.execute(query).all()
    return [store.get_item(job_id, row_id, step, variant) for step, variant in keys]
