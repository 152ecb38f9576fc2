"""A spending cap that counts requests in flight, so a run stops before it exceeds `--max-cost`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Budget:
    limit: float | None
    spent: float = 0.0
    reserved: float = 0.0
    exhausted: bool = False

    def reserve(self, estimate: float) -> bool:
        """Claim `estimate` for a request about to be sent; False (and exhausted) when it would not fit."""
        if self.limit is None:
            return True
        if self.spent + self.reserved + estimate > self.limit:
            self.exhausted = True
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float) -> None:
        """Replace a reservation by what the request really cost."""
        if self.limit is not None:
            self.reserved = max(0.0, self.reserved - estimate)
        self.spent += actual

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.spent - self.reserved)
