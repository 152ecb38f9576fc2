"""The one place where the service calls the trial/projection and review engines.

`skuforge.engine.projection` (trial cost projection) and `skuforge.review` (queue, decide, history) are
built alongside the service; this module uses them when they are installed and falls back to a small
implementation over the store otherwise, so a change in their signatures is fixed here and nowhere else.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import orjson
from sqlalchemy import insert, select

from skuforge.errors import UserError
from skuforge.store import ItemRecord, Job, Store
from skuforge.store.schema import reviews

ACTIONS = ("approve", "reject", "edit")
_REVIEW_STATE = {"approve": "approved", "reject": "rejected", "edit": "edited"}


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# -- trial projection ------------------------------------------------------------------------------------
def full_row_count(store: Store, job: Job) -> int | None:
    """Rows the full run would cover: the trial's catalog and filter, without its sample size."""
    from skuforge.catalog import open_catalog
    from skuforge.catalog import select as select_rows

    sel = dict(job.selection)
    try:
        catalog = open_catalog(
            job.catalog,
            sheet=sel.get("sheet"),
            header_row=sel.get("header_row", 1),
            id_column=sel.get("id_column"),
            encoding=sel.get("encoding"),
        )
        if sel.get("where"):
            return sum(1 for _ in select_rows(catalog, where=sel["where"]))
        return catalog.count()
    except UserError:
        return None


def projection(store: Store, job: Job) -> dict[str, Any]:
    """What the full run is likely to cost and take, extrapolated from a finished trial."""
    module = _optional("skuforge.engine.projection")
    if module is not None and hasattr(module, "project_job"):
        try:
            return dict(module.project_job(store, job))
        except (TypeError, AttributeError):  # a signature we do not know yet: use the fallback
            pass
    counts = store.counts(job.id)
    rows = max(counts.rows, 1)
    total = full_row_count(store, job)
    scale = (total or rows) / rows
    return {
        "trial_rows": counts.rows,
        "full_rows": total,
        "items": {"done": counts.done, "flagged": counts.flagged, "failed": counts.failed},
        "flag_rate": (counts.flagged + counts.failed) / max(counts.finished, 1),
        "projected_cost": round(counts.cost * scale, 6),
        "projected_input_tokens": int(counts.input_tokens * scale),
        "projected_output_tokens": int(counts.output_tokens * scale),
        "projected_requests": int(counts.requests * scale),
        "trial_cost": round(counts.cost, 6),
    }


# -- review ----------------------------------------------------------------------------------------------
def review_queue(store: Store, job_id: str, *, offset: int = 0, limit: int = 50) -> list[ItemRecord]:
    """Items waiting for a reviewer, in catalog order."""
    return list(store.items(job_id, review="pending", offset=offset, limit=limit))


def decide(
    store: Store,
    job_id: str,
    row_id: str,
    step: str,
    variant: str,
    *,
    action: str,
    who: str,
    output: Any = None,
    comment: str | None = None,
) -> ItemRecord:
    """Approve, reject or edit one item; every decision is written to the audit trail with before/after."""
    if action not in ACTIONS:
        raise UserError(f"Unknown review action '{action}'.", f"Use one of: {', '.join(ACTIONS)}.")
    item = store.get_item(job_id, row_id, step, variant)
    if action == "edit" and output is None:
        raise UserError("An edit needs the new output.", "Send the corrected output as 'output'.")
    fields: dict[str, Any] = {"review": _REVIEW_STATE[action]}
    if action == "edit":
        fields["output"] = output
    store.update_item(job_id, row_id, step, variant, **fields)
    with store.engine.begin() as conn:
        conn.execute(
            insert(reviews).values(
                job_id=job_id,
                row_id=row_id,
                step=step,
                variant=variant,
                action=action,
                field=None,
                before=orjson.dumps(item.output).decode() if action == "edit" else None,
                after=orjson.dumps(output).decode() if action == "edit" else None,
                who=who,
                comment=comment,
                at=time.time(),
            )
        )
    return store.get_item(job_id, row_id, step, variant)


def history(store: Store, job_id: str, row_id: str | None = None) -> list[dict[str, Any]]:
    """The audit trail of a job (or one row): who did what, when, with the output before and after."""
    query = select(reviews).where(reviews.c.job_id == job_id).order_by(reviews.c.id)
    if row_id is not None:
        query = query.where(reviews.c.row_id == row_id)
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        for key in ("before", "after"):
            row[key] = orjson.loads(row[key]) if row[key] else None
    return rows
