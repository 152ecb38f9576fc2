"""Review decisions on one item: approve, reject, edit, and rollback of the last edit.

The web service, the CLI and the Excel import all come through `decide` and `rollback`, so every path
validates the same way and leaves the same audit trail (who, when, the previous value, per field).

Approved and edited outputs become few-shot examples for later runs when the recipe opts in (one of its
templates calls `examples(`) and the knowledge part is installed; review works the same without it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from skuforge.checks.base import Finding
from skuforge.errors import SkuforgeError, UserError
from skuforge.review import audit
from skuforge.review.audit import MISSING, REVIEW_FIELD, AuditEntry, Change, StaleItemError
from skuforge.review.context import ReviewContext
from skuforge.review.edits import check_edit, check_fields, parse_edit
from skuforge.store import ItemRecord, Store

log = logging.getLogger("skuforge.review")
ACTIONS = ("approve", "reject", "edit")
_STATE = {"approve": "approved", "reject": "rejected", "edit": "edited"}
REVIEWABLE = ("done", "flagged")


@dataclass(slots=True)
class Decision:
    """What a decision did: the item's new review state, the field changes, and any warnings."""

    job_id: str
    row_id: str
    step: str
    variant: str
    action: str
    review: str | None
    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # 'flag' findings the edit still has
    learned: bool = False
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "row_id": self.row_id,
            "step": self.step,
            "variant": self.variant,
            "action": self.action,
            "review": self.review,
            "at": self.at,
            "learned": self.learned,
            "changes": [
                {
                    "field": c.field,
                    "before": None if c.before is MISSING else c.before,
                    "after": None if c.after is MISSING else c.after,
                }
                for c in self.changes
                if c.field != REVIEW_FIELD
            ],
            "warnings": [f.reason for f in self.findings if not f.ok],
        }


def _item(
    store: Store, job_id: str, row_id: str, step: str, variant: str, expected_key: str | None
) -> ItemRecord:
    store.flush()
    item = store.get_item(job_id, row_id, step, variant)
    if expected_key is not None and item.key != expected_key:
        raise StaleItemError(
            f"Row '{row_id}', step '{step}' was regenerated since it was exported for review; its output is "
            "not the one you reviewed, so the decision was not applied.",
            "Export the review queue again and review the new output.",
        )
    if item.status not in REVIEWABLE:
        raise UserError(
            f"Row '{row_id}', step '{step}' has no output to review (its status is '{item.status}'"
            + (f": {item.error}" if item.error else "")
            + ").",
            "Fix the cause and run the job again; only done and flagged items can be reviewed.",
        )
    return item


def decide(
    store: Store,
    job_id: str,
    row_id: str,
    step: str,
    variant: str = "",
    action: str = "approve",
    *,
    edited: Any = None,
    who: str | None = None,
    comment: str | None = None,
    expected_key: str | None = None,
    context: ReviewContext | None = None,
) -> Decision:
    """Approve, reject or edit one item. `edited` is the new output (JSON text, plain text for a one-field
    output, or a dict); `expected_key` refuses the decision if the item was regenerated since it was shown."""
    action = action.strip().lower()
    if action not in ACTIONS:
        raise UserError(f"Unknown review action '{action}'.", "Use approve, reject or edit.")
    if action == "edit" and edited is None:
        raise UserError(
            f"Editing row '{row_id}', step '{step}' needs the new output.", "Give the edited text."
        )
    who = who or audit.default_reviewer()
    item = _item(store, job_id, row_id, step, variant, expected_key)
    ctx = context
    fields: dict[str, Any] = {}
    changes: list[Change] = []
    findings: list[Finding] = []
    if action == "edit":
        ctx = ctx or ReviewContext(store, job_id)
        output, status, findings = _validated_edit(ctx, item, edited)
        changes = audit.output_changes("edit", item.output, output)
        if changes:
            fields = _edit_fields(output, status, findings)
        else:
            action = "approve"  # the "edit" is the current text: the reviewer accepts it as it is
    state = _STATE[action]
    fields["review"] = state
    changes.append(Change(action, REVIEW_FIELD, item.review, state))
    at = audit.apply(store, item, fields, changes, who, comment)
    decision = Decision(
        job_id,
        row_id,
        step,
        variant,
        action,
        state,
        changes,
        [f for f in findings if not f.ok],
        at=at,
    )
    if action in ("approve", "edit"):
        decision.learned = _learn(
            store, ctx or ReviewContext(store, job_id), item, fields.get("output", item.output), who
        )
    return decision


def _edit_fields(output: Any, status: str, findings: list[Finding]) -> dict[str, Any]:
    bad = [f for f in findings if not f.ok]
    return {
        "output": output,
        "status": status,
        "findings": [f.model_dump() for f in findings] or None,
        "error": "; ".join(f.reason for f in bad) or None,
    }


def _validated_edit(ctx: ReviewContext, item: ItemRecord, edited: Any) -> tuple[Any, str, list[Finding]]:
    step = ctx.step(item.step)
    output = parse_edit(step, item.row_id, item.output, edited)
    check_fields(step, ctx.params, item.row_id, item.output, output)
    status, findings = check_edit(
        step,
        ctx.params,
        ctx.row(item.row_id).data,
        ctx.variant(step, item.variant),
        output,
        recipe=ctx.recipe.name,
        row_id=item.row_id,
    )
    return output, status, findings


def rollback(
    store: Store,
    job_id: str,
    row_id: str,
    step: str,
    variant: str = "",
    *,
    who: str | None = None,
    comment: str | None = None,
    context: ReviewContext | None = None,
) -> Decision:
    """Undo the latest edit not yet undone: restore the output and review state it replaced.

    The rollback is its own audit entry; rolling back twice undoes the two latest edits."""
    who = who or audit.default_reviewer()
    item = _item(store, job_id, row_id, step, variant, None)
    last = audit.last_open_edit(audit.entries(store, job_id, row_id, step, variant))
    if last is None:
        raise UserError(
            f"Row '{row_id}', step '{step}' of job {job_id} has no edit to roll back.",
            f"See its decisions with: skuforge review history {job_id} {row_id}",
        )
    restored = _restore(item, last)
    ctx = context or ReviewContext(store, job_id)
    step_obj = ctx.step(step)
    try:
        status, findings = check_edit(
            step_obj,
            ctx.params,
            ctx.row(row_id).data,
            ctx.variant(step_obj, variant),
            restored,
            recipe=ctx.recipe.name,
            row_id=row_id,
        )
    except SkuforgeError:  # the model's own output failed a check when it was made; restore it as it was
        status, findings = item.status, []
    state = last[-1].before if last[-1].before is not MISSING else None
    changes = audit.output_changes("rollback", item.output, restored)
    changes.append(Change("rollback", REVIEW_FIELD, item.review, state))
    fields = _edit_fields(restored, status, findings)
    fields["review"] = state
    at = audit.apply(store, item, fields, changes, who, comment or f"undo the edit by {last[-1].who}")
    return Decision(job_id, row_id, step, variant, "rollback", state, changes, findings, at=at)


def _restore(item: ItemRecord, group: list[AuditEntry]) -> Any:
    """The output before the edit `group`; StaleItemError if the output is no longer what it left."""
    fields = [e for e in group if e.field != REVIEW_FIELD]
    current = item.output
    for entry in fields:
        now = current if entry.field is None else (current or {}).get(entry.field, MISSING)
        if now != entry.after:
            raise StaleItemError(
                f"Row '{item.row_id}', step '{item.step}' changed after the edit of "
                f"{entry.field or 'its output'} by {entry.who} (regenerated or edited again), so that edit "
                "cannot be rolled back.",
                f"Roll back the later edits first, or edit the item directly: skuforge review history "
                f"{item.job_id} {item.row_id}",
            )
    if any(e.field is None for e in fields):
        return next(e.before for e in fields if e.field is None)
    restored = dict(current or {})
    for entry in fields:
        if entry.before is MISSING:
            restored.pop(entry.field, None)
        else:
            restored[entry.field] = entry.before
    return restored


def history(
    store: Store, job_id: str, row_id: str, step: str | None = None, variant: str | None = None
) -> list[AuditEntry]:
    """Every decision on a row (optionally one step / variant), oldest first."""
    store.get_job(job_id)
    return audit.entries(store, job_id, row_id, step, variant)


def _learn(store: Store, ctx: ReviewContext, item: ItemRecord, output: Any, who: str) -> bool:
    """Store an approved output as a few-shot example when the recipe opts in; never fails the decision."""
    try:
        if not ctx.learns_from_review:
            return False
        from skuforge.knowledge import add_approved_example
        from skuforge.knowledge.prompts import row_text
    except (ImportError, SkuforgeError) as exc:
        log.info("approved example not stored for %s/%s: %s", item.row_id, item.step, exc)
        return False
    try:
        row = ctx.row(item.row_id).data
        input_text = row_text(row)  # the form examples() queries with, so similar rows match
        source = f"{item.job_id}/{item.row_id}/{item.step}" + (f"/{item.variant}" if item.variant else "")
        add_approved_example(ctx.recipe.name, input_text, output, source)
        from skuforge.knowledge.retrieval import examples_kb

        audit.record_example(store, item, examples_kb(ctx.recipe.name), who)
    except (SkuforgeError, OSError, ValueError) as exc:
        log.warning("could not store the approved example for %s/%s: %s", item.row_id, item.step, exc)
        return False
    return True
