"""Precision, recall and F1 for attribute values, the way the attribute-extraction literature counts them.

Per (product, attribute), following ExtractGPT / MAVEQA:

    gold absent,  predicted nothing  -> NN (true negative)
    gold absent,  predicted a value  -> NV (false positive)
    gold present, predicted nothing  -> VN (false negative)
    gold present, predicted right    -> VC (true positive)
    gold present, predicted wrong    -> VW (counts as a false positive and a false negative)

    precision = VC / (NV + VW + VC)      recall = VC / (VN + VW + VC)

A prediction is right when it equals any accepted gold value: exactly (trimmed), or after normalisation
(casefold, punctuation and spaces removed, numbers with units converted: `55 mm` == `5.5cm`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any

from skuforge.checks.quantities import quantities

NULLS = {"", "n/a", "na", "none", "null", "nil", "unknown", "not available", "not applicable", "-", "无"}
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


@dataclass
class Counts:
    nn: int = 0
    nv: int = 0
    vn: int = 0
    vc: int = 0
    vw: int = 0

    def add(self, other: Counts) -> None:
        for name in ("nn", "nv", "vn", "vc", "vw"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        denominator = self.nv + self.vw + self.vc
        return self.vc / denominator if denominator else 0.0

    @property
    def recall(self) -> float:
        denominator = self.vn + self.vw + self.vc
        return self.vc / denominator if denominator else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


def is_null(value: Any) -> bool:
    """A prediction that says 'no value'."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(is_null(v) for v in value)
    return str(value).strip().casefold() in NULLS


def normalise_value(value: str) -> str:
    """Casefold, strip punctuation and spaces; a value that is only quantities becomes them in base units."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    found = quantities(text)
    if found and all(q.dimension for q in found):
        rest = text
        for q in found:
            rest = rest.replace(q.text, " ", 1)
        if not _PUNCT.sub("", rest):
            return "|".join(f"{q.dimension}:{round(q.base, 4):g}" for q in found)
    return _PUNCT.sub("", text.casefold())


def _as_values(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if not is_null(v)]


def outcome(gold: list[str], predicted: Any, normalised: bool) -> str:
    """One of nn, nv, vn, vc, vw for one attribute of one product."""
    values = _as_values(predicted)
    if not gold:
        return "nv" if values else "nn"
    if not values:
        return "vn"
    if normalised:
        accepted = {normalise_value(g) for g in gold}
        hit = any(normalise_value(v) in accepted for v in values)
    else:
        hit = any(v in gold for v in values)
    return "vc" if hit else "vw"


@dataclass
class Scores:
    """Counts per attribute plus micro and macro figures, for exact or normalised matching."""

    per_attribute: dict[str, Counts] = field(default_factory=dict)

    def record(self, attribute: str, kind: str) -> None:
        counts = self.per_attribute.setdefault(attribute, Counts())
        setattr(counts, kind, getattr(counts, kind) + 1)

    def micro(self) -> Counts:
        total = Counts()
        for counts in self.per_attribute.values():
            total.add(counts)
        return total

    def macro(self) -> dict[str, float]:
        """Unweighted mean over attributes that have any gold value or prediction."""
        scored = [c for c in self.per_attribute.values() if c.vc + c.vw + c.vn + c.nv]
        if not scored:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        n = len(scored)
        return {
            "precision": sum(c.precision for c in scored) / n,
            "recall": sum(c.recall for c in scored) / n,
            "f1": sum(c.f1 for c in scored) / n,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "micro": self.micro().summary(),
            "macro": self.macro(),
            "per_attribute": {a: c.summary() for a, c in sorted(self.per_attribute.items())},
        }


def score(pairs: list[tuple[dict[str, list[str]], dict[str, Any]]]) -> dict[str, Scores]:
    """Score (gold attributes, predicted attributes) pairs; only the gold's attributes are counted."""
    result = {"exact": Scores(), "normalised": Scores()}
    for gold, predicted in pairs:
        for attribute, values in gold.items():
            guess = predicted.get(attribute)
            result["exact"].record(attribute, outcome(values, guess, normalised=False))
            result["normalised"].record(attribute, outcome(values, guess, normalised=True))
    return result
