"""A job's results as a merchandiser scans them: each output field beside the product's original value.

    page = results_page(store, job, status="flagged", check="grounding", offset=0, limit=50)

Each item becomes one entry with a cell per output field: the catalog's value of the column of the same
name (case-insensitive; empty when the catalog has no such column), the generated value (after any review
edit), whether it changed, and the failed checks on that field with their reasons. Findings that name no
field belong to the whole item. Filters: the item's status (done, flagged, failed, skipped), its review
state (pending, approved, edited, rejected) and a check that failed on it. Source rows come from one
streaming pass over the catalog per page (see `review.ReviewContext`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

from skuforge.checks.base import catalog_notes
from skuforge.service import reviews
from skuforge.store import ItemRecord, Job, Store

StatusFilter = Literal["done", "flagged", "failed", "skipped", "pending", "approved", "edited", "rejected"]
"""An item status (done ... skipped) or a review state (pending ... rejected)."""
FILTERS: tuple[str, ...] = get_args(StatusFilter)
ITEM_STATUSES, REVIEW_STATES = FILTERS[:4], FILTERS[4:]
TITLE_COLUMNS = ("title", "name", "product_name", "标题", "商品名称")


@dataclass(slots=True)
class Filter:
    status: str | None = None
    check: str | None = None

    def query(self) -> dict[str, Any]:
        """The store's filter for the status part (the check is matched item by item)."""
        if self.status in ITEM_STATUSES:
            return {"status": self.status}
        if self.status in REVIEW_STATES:
            return {"review": self.status}
        return {}

    def matches(self, item: ItemRecord) -> bool:
        return self.check is None or self.check in reviews.failed_checks(item)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value).strip()


def _lookup(source: dict[str, Any], name: str) -> Any:
    if name in source:
        return source[name]
    lowered = name.lower()
    return next((v for k, v in source.items() if str(k).lower() == lowered), None)


def cells(item: ItemRecord, source: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(one cell per output field, the item-level findings): original beside generated, flags on fields and
    notes on the values the catalog's rows moved or dropped."""
    output = item.output if isinstance(item.output, dict) else {"output": item.output}
    failed = [f for f in item.findings or [] if not f.get("ok", True)]
    noted = catalog_notes(item.findings)  # what `Step.settle` did
    on_item = [{"check": str(f.get("check")), "reason": str(f.get("reason") or "")} for f in failed
               if not f.get("field") or f.get("field") not in output]  # fmt: skip
    out = []
    for name, value in output.items():
        original = _lookup(source, name)
        flags = [{"check": str(f.get("check")), "reason": str(f.get("reason") or "")} for f in failed
                 if f.get("field") == name]  # fmt: skip
        out.append(
            {
                "field": name,
                "original": _text(original),
                "generated": _text(value),
                "changed": _text(value) != _text(original) and value not in (None, ""),
                "flags": flags,
                "notes": [str(f.get("reason") or "") for f in noted if f.get("field") == name],
            }
        )
    return out, on_item


def _matching(store: Store, job: Job, where: Filter, offset: int, limit: int) -> Iterator[ItemRecord]:
    """Items in catalog order that pass the filter, from `offset`, at most `limit` of them."""
    if where.check is None:
        yield from store.items(job.id, offset=offset, limit=limit, **where.query())
        return
    skipped = taken = 0
    for item in store.items(job.id, **where.query()):
        if not where.matches(item):
            continue
        if skipped < offset:
            skipped += 1
            continue
        yield item
        taken += 1
        if taken >= limit:
            return


def results_page(
    store: Store, job: Job, *, status: str | None = None, check: str | None = None, offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:  # fmt: skip
    """One page of results (original beside generated), with the check names a filter can pick."""
    store.flush()
    where = Filter(status or None, check or None)
    page = list(_matching(store, job, where, offset, limit + 1))
    more, page = len(page) > limit, page[:limit]
    sources = reviews.source_rows(store, job, [i.row_id for i in page]) if page else {}
    entries = []
    for item in page:
        source = sources.get(item.row_id, {})
        fields, item_flags = cells(item, source)
        entries.append(
            {
                "row_id": item.row_id,
                "row_index": item.row_index,
                "label": next((_text(source[c]) for c in TITLE_COLUMNS if source.get(c)), ""),
                "step": item.step,
                "variant": item.variant,
                "status": item.status,
                "review": item.review,
                "error": item.error,
                "cells": fields,
                "flags": item_flags,
            }
        )
    return {
        "offset": offset,
        "limit": limit,
        "status": where.status,
        "check": where.check,
        "items": entries,
        "next_offset": offset + limit if more else None,
        "checks": reviews.check_names(store, job),
    }
