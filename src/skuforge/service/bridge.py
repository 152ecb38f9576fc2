"""The one place where the service calls the trial/projection engine and the review module.

Handlers never import `skuforge.engine.trial`, `skuforge.engine.projection` or `skuforge.review`
themselves, so when those APIs change, this file is the only one to update.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from skuforge import review
from skuforge.config import Settings
from skuforge.engine import projection as proj
from skuforge.engine import trial as trials
from skuforge.engine.spec import JobSpec
from skuforge.store import Job, Store
from skuforge.store.schema import reviews

ACTIONS = review.ACTIONS
QUEUE_STATUSES = review.STATUSES


# -- trials ----------------------------------------------------------------------------------------------
def full_run_spec(trial: Job) -> JobSpec:
    """The full run a trial stands for: the same spec without the sample."""
    return trials.full_run_spec(trial)


def projection(store: Store, job: Job, settings: Settings | None = None) -> dict[str, Any]:
    """The projected cost, tokens and time of the full run, from a finished trial's measured items,
    plus the trial's check results; the keys the console shows are flattened at the top."""
    from skuforge.engine.context import JobContext

    ctx = JobContext.open(job, settings)
    spec = ctx.spec
    rows_total = proj.count_selection(ctx.catalog, spec.selection.where, spec.selection.limit)
    records = list(store.items(job.id))
    counts = store.counts(job.id)
    sample = proj.Sample(
        proj.measures_from(records), rows=counts.rows, latency_s=(job.totals or {}).get("latency_s")
    )
    projected = proj.project(sample, model=job.model, rows_total=rows_total, limits=spec.limits,
                             prices=ctx.settings.prices)  # fmt: skip
    data = projected.as_dict()
    data.update(
        full_rows=rows_total, trial_rows=counts.rows, projected_cost=projected.cost_expected,
        projected_tokens=projected.tokens_total, checks=trials.check_summary(records),
        flag_rate=(counts.flagged + counts.failed) / max(counts.finished, 1),
    )  # fmt: skip
    return data


# -- review ----------------------------------------------------------------------------------------------
def review_queue(store: Store, job_id: str, *, status: str = "pending", offset: int = 0,
                 limit: int = 50) -> list[dict[str, Any]]:  # fmt: skip
    """One page of the review queue, each entry with its catalog row under 'source'."""
    page = review.queue(store, job_id, status=status, offset=offset, limit=limit, with_source=True)
    return [entry.as_dict() | {"error": entry.item.error} for entry in page]


def decide(
    store: Store, job_id: str, row_id: str, step: str, variant: str, *, action: str, who: str,
    output: Any = None, comment: str | None = None, expected_key: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Approve, reject or edit one item; the review module validates edits and writes the audit trail."""
    decision = review.decide(
        store, job_id, row_id, step, variant, action, edited=output, who=who, comment=comment,
        expected_key=expected_key,
    )  # fmt: skip
    return decision.as_dict()


def rollback(store: Store, job_id: str, row_id: str, step: str, variant: str, *, who: str) -> dict[str, Any]:
    """Undo the latest edit of one item."""
    return review.rollback(store, job_id, row_id, step, variant, who=who).as_dict()


def history(store: Store, job_id: str, row_id: str | None = None) -> list[dict[str, Any]]:
    """The audit trail of one row, or of the whole job: who changed what, when, before and after."""
    if row_id is not None:
        rows = [row_id]
    else:
        with store.engine.connect() as conn:
            rows = list(
                conn.execute(select(reviews.c.row_id).where(reviews.c.job_id == job_id).distinct()).scalars()
            )
    entries = [e for r in rows for e in review.history(store, job_id, r)]
    return [e.as_dict() for e in sorted(entries, key=lambda e: e.id)]
