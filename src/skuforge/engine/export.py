"""Export a job: the catalog's original columns, then the generated ones, in the input's format.

The catalog selection is streamed again and joined with the job's items chunk by chunk, so an export of
millions of rows holds one chunk in memory. Failed items go to a separate 'Failures' sheet or file.
When any item quoted a knowledge base (its meta has `sources`), a `skuforge_sources` column lists the
passages and examples each row's items used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skuforge.catalog import CatalogRow, infer_format, write_catalog
from skuforge.checks.base import catalog_notes
from skuforge.engine.context import JobContext, variant_label
from skuforge.engine.local import CHUNK_ROWS, chunked
from skuforge.store import ItemRecord, Job, Store

STATUS_COLUMN = "skuforge_status"
NOTES_COLUMN = "skuforge_notes"
SOURCES_COLUMN = "skuforge_sources"
_SEVERITY = {"": 0, "skipped": 0, "done": 1, "pending": 2, "flagged": 3, "failed": 4}


@dataclass(slots=True)
class ExportSummary:
    path: Path
    rows: int = 0
    failures: int = 0
    withheld: int = 0  # items left out by --approved-only
    columns: list[str] = field(default_factory=list)


def cited(meta: dict[str, Any] | None) -> list[str]:
    """The citations ('guide.md#Tone', 'copy.csv#row 3', 'example JOB/ROW/STEP') an item's meta records."""
    sources = (meta or {}).get("sources") or []
    return list(dict.fromkeys(str(s.get("citation") or s.get("source")) for s in sources))


def has_sources(store: Store, job: Job) -> bool:
    """Whether any item of the job recorded knowledge sources (one query that stops at the first)."""
    return store.has_sources(job.id)


class Exporter:
    def __init__(self, store: Store, job: Job, *, approved_only: bool = False) -> None:
        self.store, self.job, self.approved_only = store, job, approved_only
        self.ctx = JobContext.open(job)
        self.original = list(self.ctx.catalog.columns)
        self.generated = self.ctx.export_columns()
        self.with_sources = has_sources(store, job)
        self.ray: Iterator[tuple[CatalogRow, dict[tuple[str, str], ItemRecord]]] | None = None
        if (job.totals or {}).get("ray"):  # a Ray job; its results may be in its output folder
            from skuforge.engine import ray_results

            self.ray = ray_results.joined(store, job, self.ctx)
            if self.ray is not None:
                self.with_sources = bool(ray_results.has_sources(job)) or self.with_sources
        self.failures: list[dict[str, Any]] = []
        self.summary: ExportSummary | None = None

    @property
    def columns(self) -> list[str]:
        extra = [SOURCES_COLUMN] if self.with_sources else []
        return [*self.original, *self.generated, STATUS_COLUMN, NOTES_COLUMN, *extra]

    def _publishable(self, item: ItemRecord) -> bool:
        if item.status not in ("done", "flagged") or item.review == "rejected":
            return False
        if self.approved_only:
            return item.review in ("approved", "edited")
        return True

    def _row(self, row: CatalogRow, items: dict[tuple[str, str], ItemRecord]) -> dict[str, Any]:
        out: dict[str, Any] = dict(row.data)
        worst, notes, sources = "", [], []
        for step in self.ctx.steps:
            for variant in self.ctx.variants(step):
                item = items.get((step.name, variant_label(variant)))
                status = item.status if item else "pending"
                if item is not None and self._publishable(item):
                    sources += [c for c in cited(item.meta) if c not in sources]
                    notes += [f"{step.name}: {reason}" for reason in _catalog_notes(item)]
                    for name, value in step.columns(row.data, item.output, variant).items():
                        out[self.ctx.export_name(name)] = value
                elif item is not None and item.status in ("done", "flagged"):
                    self.summary.withheld += 1  # type: ignore[union-attr]
                    status = "withheld"
                if item is not None and item.status == "failed":
                    self.failures.append(
                        {
                            "row_id": row.row_id,
                            "row": row.line,
                            "step": step.name,
                            "variant": variant_label(variant),
                            "reason": item.error or "",
                        }
                    )
                if item is not None and item.error and item.status in ("flagged", "failed"):
                    notes.append(f"{step.name}: {item.error}")
                if _SEVERITY.get(status, 2) > _SEVERITY.get(worst, 0):
                    worst = status
        out[STATUS_COLUMN] = worst or "done"
        out[NOTES_COLUMN] = "\n".join(notes) or None
        if self.with_sources:
            out[SOURCES_COLUMN] = "; ".join(sources) or None
        return out

    def rows(self) -> Iterator[dict[str, Any]]:
        if self.ray is not None:
            for row, items in self.ray:
                self.summary.rows += 1  # type: ignore[union-attr]
                yield self._row(row, items)
            return
        for chunk in chunked(self.ctx.rows(), CHUNK_ROWS):
            yield from self._chunk(chunk)

    def _chunk(self, rows: list[CatalogRow]) -> Iterator[dict[str, Any]]:
        """The chunk's rows joined with their items, found by product id (never by position)."""
        by_row: dict[str, dict[tuple[str, str], ItemRecord]] = {}
        for (row_id, step, variant), item in self.store.prior(self.job.id, [r.row_id for r in rows]).items():
            by_row.setdefault(row_id, {})[(step, variant)] = item
        for row in rows:
            self.summary.rows += 1  # type: ignore[union-attr]
            yield self._row(row, by_row.get(row.row_id, {}))

    def write(self, path: str | Path, fmt: str | None = None) -> ExportSummary:
        path = Path(path)
        self.summary = ExportSummary(path=path, columns=self.columns)
        write_catalog(
            path, self.columns, self.rows(), fmt=fmt or infer_format(path), failures=self._failures()
        )
        self.summary.failures = len(self.failures)
        return self.summary

    def _failures(self) -> Iterator[dict[str, Any]]:
        # consumed by the writer after the rows, so every failure has been collected by then
        yield from self.failures


def export_job(
    store: Store,
    job: Job,
    out: str | Path,
    *,
    fmt: str | None = None,
    approved_only: bool = False,
) -> ExportSummary:
    return Exporter(store, job, approved_only=approved_only).write(out, fmt)


def _catalog_notes(item: ItemRecord) -> list[str]:
    """What the catalog's filled rows changed in the item's answer (`Step.settle`): not a flag, but the
    reason a value the model gave is missing, shorter or under another attribute."""
    return [f.get("reason", "") for f in catalog_notes(item.findings)]
