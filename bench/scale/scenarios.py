"""The scenarios of the scale suite (issue 8): mock server settings, client settings and the lower bound."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

LATENCY = {"latency_ms": 200, "per_token_ms": 1, "output_tokens": 100}
REQUEST_S = 0.3  # 200 ms + 100 tokens x 1 ms


@dataclass(slots=True)
class Scenario:
    name: str
    title: str
    rows: int
    mock: dict[str, Any]
    concurrency: int = 128
    timeout_s: float = 10.0
    rpm: float | None = None
    kill_half: bool = False
    reference_rows: int | None = None  # None: same as rows; 0: no reference run
    verify_every: int = 1
    recipe: str = "one-field"  # or "realistic": 12 fields in, a title and a list of selling points out
    notes: list[str] = field(default_factory=list)

    def minimum_s(self) -> float:
        """Theoretical minimum: ceil(N / capacity) x latency, or the RPM bound when that is tighter."""
        latency = (
            self.mock.get("latency_ms", 0)
            + self.mock.get("per_token_ms", 0) * self.mock.get("output_tokens", 0)
        ) / 1000
        bound = math.ceil(self.rows / self.mock.get("capacity", self.concurrency)) * latency
        if rpm := self.mock.get("rpm"):
            burst = rpm * self.mock.get("rate_burst_s", 60) / 60
            bound = max(bound, max(0.0, self.rows - burst) / (rpm / 60) + latency)
        return bound


def scenarios() -> dict[str, Scenario]:
    """S1-S5 with the one-field recipe, S1r-S5r the same with the realistic one, and S5m (1M rows)."""
    base = _base()
    realistic = [replace(s, name=f"{s.name}r", recipe="realistic") for s in base if s.name != "S5m"]
    return {s.name: s for s in [*base, *realistic]}


def _base() -> list[Scenario]:
    clean = {**LATENCY, "capacity": 128}
    return list(
        [
            Scenario("S1", "clean, capacity 128", 2000, clean),
            Scenario(
                "S2", "RPM 3,000 (1 s burst)", 2000, {**clean, "rpm": 3000, "rate_burst_s": 1.0}, rpm=3000
            ),
            Scenario(
                "S3", "3% 500, 1% drop, 1% hang", 2000, {**clean, "p500": 0.03, "pdrop": 0.01, "phang": 0.01}
            ),
            Scenario("S4", "kill -9 at half, resume", 2000, clean, kill_half=True),
            Scenario(
                "S5",
                "100k rows, 0 latency",
                100_000,
                {"capacity": 512, "output_tokens": 100},
                concurrency=512,
                reference_rows=10_000,
                verify_every=50,
            ),
            Scenario(
                "S5m",
                "1M rows, memory",
                1_000_000,
                {"capacity": 512, "output_tokens": 100},
                concurrency=512,
                reference_rows=0,
                verify_every=500,
            ),
        ]
    )
