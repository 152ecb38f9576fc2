"""The job store: jobs, items, reviews and schedules in SQLite (default) or PostgreSQL."""

from skuforge.store.database import Store, new_job_id, open_store
from skuforge.store.records import (
    FINISHED,
    ITEM_STATES,
    JOB_STATES,
    ItemOutcome,
    ItemRecord,
    Job,
    JobCounts,
    LedgerState,
)

__all__ = [
    "FINISHED",
    "ITEM_STATES",
    "JOB_STATES",
    "ItemOutcome",
    "ItemRecord",
    "Job",
    "JobCounts",
    "LedgerState",
    "Store",
    "new_job_id",
    "open_store",
]
