"""What the engine needs from a store: `ItemStore` (earlier work and new outcomes) and `LedgerStore` (the
budget ledger).

The SQLite/PostgreSQL `Store` implements both; an executor-side sink (the Ray executor's block of Parquet
parts) implements `ItemStore`. Executors and the budget depend on these protocols, not the database class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from skuforge.store.records import ItemOutcome, ItemRecord, LedgerState


class ItemStore(Protocol):
    def has_items(self, job_id: str) -> bool:
        """Whether any item of the job is stored yet."""
        ...

    def prior(self, job_id: str, row_ids: Sequence[str]) -> dict[tuple[str, str, str], ItemRecord]:
        """Items already stored for these rows, by (row_id, step, variant)."""
        ...

    def finished_by_keys(self, job_id: str, keys: Sequence[str]) -> dict[str, ItemRecord]:
        """A finished item for each of these item keys that has one, whatever row it belongs to."""
        ...

    def record(
        self,
        job_id: str,
        outcomes: Iterable[ItemOutcome],
        on_durable: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        """Store outcomes; call `on_durable(None)` once they would survive a kill -9 (or with the error
        that prevented it)."""
        ...

    def flush(self) -> None:
        """Block until everything recorded is durable."""
        ...


class LedgerStore(Protocol):
    def record_spend(self, job_id: str, figures: LedgerState) -> None:
        """Store the job's ledger totals (committed with the next outcomes)."""
        ...

    def open_ledger(self, job_id: str) -> LedgerState:
        """The job's spend at the start of a run (what a killed run held becomes `uncertain`)."""
        ...

    def hold(self, job_id: str, amount: float) -> None:
        """Durably reserve `amount` for requests about to be sent."""
        ...

    def flush(self) -> None:
        """Block until everything recorded is durable."""
        ...
