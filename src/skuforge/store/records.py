"""The records the store hands out and takes in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JOB_STATES = ("draft", "trial", "queued", "running", "paused", "done", "failed", "cancelled")
ITEM_STATES = ("done", "flagged", "failed", "skipped")
FINISHED = ("done", "flagged", "skipped")


@dataclass(slots=True)
class ItemOutcome:
    """One product x step x variant, as soon as its outcome is known."""

    row_id: str
    row_index: int
    step: str
    key: str
    status: str
    variant: str = ""
    output: Any = None
    error: str | None = None
    findings: list[dict[str, Any]] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    attempts: int = 0
    cached: bool = False
    review: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(slots=True)
class ItemRecord(ItemOutcome):
    job_id: str = ""
    updated_at: float = 0.0


@dataclass(slots=True)
class Job:
    id: str
    kind: str
    state: str
    fingerprint: str
    catalog: str
    recipe: str
    recipe_fingerprint: str = ""
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    out: str | None = None
    parent_id: str | None = None
    error: str | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class JobCounts:
    """Item counts and spend of a job, computed from its items."""

    done: int = 0
    flagged: int = 0
    failed: int = 0
    skipped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    requests: int = 0
    rows: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.flagged + self.failed + self.skipped


@dataclass(slots=True)
class LedgerState:
    """A job's money, across every run and executor: what answers cost (`spent`), what may have been
    charged without an answer (`uncertain`: timeouts, requests in flight when a run was killed), and what
    the run in progress holds for requests in flight (`held`). Budgets count all three."""

    spent: float = 0.0
    uncertain: float = 0.0
    held: float = 0.0

    @property
    def committed(self) -> float:
        return self.spent + self.uncertain
