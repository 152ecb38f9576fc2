"""Live counters of a run, read by the CLI's progress bar, the service's event stream and the trial report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RunProgress:
    job_id: str = ""
    rows_total: int | None = None
    rows_done: int = 0
    done: int = 0
    flagged: int = 0
    failed: int = 0
    skipped: int = 0
    reused: int = 0  # finished in an earlier run of this job: no request
    requests: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # of input_tokens, read from the provider's prompt cache
    cost: float = 0.0
    cost_known: bool = True  # False when a model of the run has no price: `cost` then counts only the others
    projected_cost: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    state: str = "running"
    message: str = ""
    all_started: bool = False  # every row has been started: what is left of the run is in flight

    def count(self, outcome: Any, requests: int = 0) -> None:
        """Add one recorded item outcome (an `ItemOutcome`) and the requests it took."""
        setattr(self, outcome.status, getattr(self, outcome.status) + 1)
        self.requests += requests
        self.cache_hits += int(outcome.cached and outcome.attempts > 0)
        self.input_tokens += outcome.input_tokens
        self.output_tokens += outcome.output_tokens
        self.cached_input_tokens += outcome.cached_tokens
        self.cost += outcome.cost

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def rows_per_s(self) -> float:
        return self.rows_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.rows_total or not self.rows_done:
            return None
        return (self.rows_total - self.rows_done) / max(self.rows_per_s, 1e-9)

    def as_dict(self) -> dict[str, object]:
        names = [
            "job_id",
            "rows_total",
            "rows_done",
            "done",
            "flagged",
            "failed",
            "skipped",
            "reused",
            "requests",
            "cache_hits",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cost",
            "cost_known",
            "projected_cost",
            "state",
            "message",
        ]
        data: dict[str, object] = {n: getattr(self, n) for n in names}
        data.update(elapsed_s=round(self.elapsed, 3), rows_per_s=round(self.rows_per_s, 3), eta_s=self.eta_s)
        return data


ProgressCallback = Callable[[RunProgress], None]
