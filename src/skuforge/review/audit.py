"""The audit trail of review decisions: who changed what, when, and what it was before.

Every decision writes its rows to the `reviews` table in the same transaction as the item change, so the
trail and the item never disagree. A decision is a group of rows: one per changed output field (for a dict
output; one row for the whole output otherwise), then exactly one `review` row recording the review state
before and after. That closing row is what lets `rollback` find the edit it undoes without a group column.

Values in `before` / `after` are JSON text; SQL NULL means "the field was absent" (so a field an edit added
is removed again by a rollback), the JSON `null` means the field held null.
"""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, select, update

from skuforge.errors import UserError
from skuforge.store import ItemRecord, Store
from skuforge.store.schema import items, reviews

REVIEW_FIELD = "review"  # the `field` of the row that closes a decision group
EXAMPLE_ACTION = "example"  # a standalone row: the decision was stored as a few-shot example


class _Missing:
    """The value of a field that did not exist (an edit added it, or removed it)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class StaleItemError(UserError):
    """The item changed (regenerated, or decided elsewhere) since the reviewer saw it."""


@dataclass(slots=True)
class AuditEntry:
    """One row of the trail, values decoded (MISSING where the field was absent)."""

    id: int
    job_id: str
    row_id: str
    step: str
    variant: str
    action: str
    field: str | None
    before: Any
    after: Any
    who: str
    comment: str | None
    at: float

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__slots__}
        for name in ("before", "after"):
            data[name] = None if data[name] is MISSING else data[name]
        return data


@dataclass(slots=True)
class Change:
    """One row to write: the field (None for a whole non-dict output) and its values."""

    action: str
    field: str | None
    before: Any
    after: Any


def default_reviewer() -> str:
    """Who is deciding: $SKUFORGE_USER, else the OS user, else 'unknown'."""
    who = os.environ.get("SKUFORGE_USER", "").strip()
    if who:
        return who
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def _encode(value: Any) -> str | None:
    return None if value is MISSING else orjson.dumps(value).decode()


def _decode(text: str | None) -> Any:
    return MISSING if text is None else orjson.loads(text)


def output_changes(action: str, before: Any, after: Any) -> list[Change]:
    """The per-field changes from `before` to `after`: one per changed key of a dict, else one in all."""
    if isinstance(before, dict) and isinstance(after, dict):
        names = list(before) + [k for k in after if k not in before]
        return [
            Change(action, name, before.get(name, MISSING), after.get(name, MISSING))
            for name in names
            if before.get(name, MISSING) != after.get(name, MISSING)
        ]
    return [] if before == after else [Change(action, None, before, after)]


def apply(
    store: Store,
    item: ItemRecord,
    fields: dict[str, Any],
    changes: list[Change],
    who: str,
    comment: str | None,
) -> float:
    """Update the item and write its audit rows in one transaction; refuse if the item was regenerated.

    The update is guarded by the item key the caller saw, so a row regenerated in between (new key) is
    never overwritten with a decision about its old text.
    """
    store.flush()
    now = time.time()
    values = dict(fields, updated_at=now)
    for name in ("output", "findings"):
        if name in values:
            values[name] = None if values[name] is None else orjson.dumps(values[name]).decode()
    where = and_(
        items.c.job_id == item.job_id,
        items.c.row_id == item.row_id,
        items.c.step == item.step,
        items.c.variant == item.variant,
        items.c.key == item.key,
    )
    rows = [
        {
            "job_id": item.job_id,
            "row_id": item.row_id,
            "step": item.step,
            "variant": item.variant,
            "action": c.action,
            "field": c.field,
            "before": _encode(c.before),
            "after": _encode(c.after),
            "who": who,
            "comment": comment,
            "at": now,
        }
        for c in changes
    ]
    with store.engine.begin() as conn:
        if values.keys() - {"updated_at"}:
            result = conn.execute(update(items).where(where).values(**values))
            if result.rowcount == 0:
                raise StaleItemError(
                    f"Row '{item.row_id}', step '{item.step}' of job {item.job_id} was regenerated since it "
                    "was shown for review; the decision was not applied.",
                    "Review the new output: export the queue again with `skuforge review export`.",
                )
        if rows:
            conn.execute(reviews.insert(), rows)
    return now


def entries(
    store: Store, job_id: str, row_id: str, step: str | None = None, variant: str | None = None
) -> list[AuditEntry]:
    """The trail of one row (optionally one step and variant), oldest first."""
    query = select(reviews).where(reviews.c.job_id == job_id, reviews.c.row_id == row_id)
    if step is not None:
        query = query.where(reviews.c.step == step)
    if variant is not None:
        query = query.where(reviews.c.variant == variant)
    with store.engine.connect() as conn:
        found = conn.execute(query.order_by(reviews.c.id)).all()
    out = []
    for row in found:
        data = dict(row._mapping)
        data["before"], data["after"] = _decode(data["before"]), _decode(data["after"])
        out.append(AuditEntry(**data))
    return out


def decision_groups(trail: list[AuditEntry]) -> list[list[AuditEntry]]:
    """The trail of one item cut into decisions: each group ends with its `review` row."""
    groups: list[list[AuditEntry]] = []
    current: list[AuditEntry] = []
    for entry in trail:
        if entry.action == EXAMPLE_ACTION:
            continue
        current.append(entry)
        if entry.field == REVIEW_FIELD:
            groups.append(current)
            current = []
    return groups


def last_open_edit(trail: list[AuditEntry]) -> list[AuditEntry] | None:
    """The latest edit not yet rolled back (each rollback undoes the edit on top of the stack)."""
    stack: list[list[AuditEntry]] = []
    for group in decision_groups(trail):
        action = group[-1].action
        if action == "edit":
            stack.append(group)
        elif action == "rollback" and stack:
            stack.pop()
    return stack[-1] if stack else None


def record_example(store: Store, item: ItemRecord, kb: str, who: str) -> None:
    """Note in the trail that this item's output became a few-shot example in knowledge base `kb`."""
    with store.engine.begin() as conn:
        conn.execute(
            reviews.insert().values(
                job_id=item.job_id,
                row_id=item.row_id,
                step=item.step,
                variant=item.variant,
                action=EXAMPLE_ACTION,
                field=None,
                before=None,
                after=_encode(kb),
                who=who,
                comment="stored as an approved example for later runs of the recipe",
                at=time.time(),
            )
        )
