"""What earlier runs of a job finished, looked up by product and by item key, never by row position.

An item is finished work when an earlier run stored an outcome with the same key (the hash of the rendered
request). It is found first by its product, (row id, step, variant); failing that, by its key alone, which
finds the work of a row that moved (rows inserted above it, a re-sorted feed, a catalog without an id
column) and of an identical row elsewhere in the catalog. Lookups are done per chunk of rows: one query for
the chunk's rows and one for the keys of their first step; later steps of a chained recipe are looked up one
by one, and only when the job has any history at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from skuforge.catalog import CatalogRow
from skuforge.engine.pipeline import Planned
from skuforge.store import FINISHED, ItemOutcome, ItemRecord
from skuforge.store.protocol import ItemStore


@dataclass(slots=True)
class Found:
    record: ItemRecord
    same_row: bool  # stored under this very product: nothing to write again


class Prior:
    """Earlier outcomes for one chunk of rows."""

    def __init__(self, store: ItemStore, job_id: str, *, history: bool) -> None:
        self.store, self.job_id, self.history = store, job_id, history
        self.by_row: dict[tuple[str, str, str], ItemRecord] = {}
        self.by_key: dict[str, ItemRecord] = {}

    @classmethod
    def load(
        cls,
        store: ItemStore,
        job_id: str,
        rows: Sequence[CatalogRow],
        first: Sequence[Planned] = (),
        *,
        history: bool = True,
    ) -> Prior:
        """The chunk's stored items, and finished items with the keys of its first step's planned items."""
        prior = cls(store, job_id, history=history)
        if not history:
            return prior
        prior.by_row = store.prior(job_id, [r.row_id for r in rows])
        missing = [p.key for p in first if p.key and prior._same_row(p) is None]
        if missing:
            prior.by_key.update(store.finished_by_keys(job_id, missing))
        return prior

    def find(self, planned: Planned) -> Found | None:
        """A finished outcome with this item's key: the row's own, or any row's."""
        if not planned.key or not self.history:
            return None
        own = self._same_row(planned)
        if own is not None:
            return Found(own, True)
        record = self.by_key.get(planned.key)
        if record is None:
            record = self.store.finished_by_keys(self.job_id, [planned.key]).get(planned.key)
            if record is not None:
                self.by_key[planned.key] = record
        return Found(record, False) if record is not None else None

    def _same_row(self, planned: Planned) -> ItemRecord | None:
        record = self.by_row.get((planned.row.row_id, planned.step.name, planned.label))
        if record is not None and record.key == planned.key and record.status in FINISHED:
            return record
        return None

    def unchanged(self, outcome: ItemOutcome) -> bool:
        """A decided outcome (skipped, not runnable) that the store already holds as it is."""
        record = self.by_row.get((outcome.row_id, outcome.step, outcome.variant))
        return (
            record is not None
            and record.status == outcome.status
            and record.error == outcome.error
            and record.key == outcome.key
            and record.row_index == outcome.row_index
        )
