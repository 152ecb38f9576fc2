"""The `duplicate` check: outputs that are near-copies of another product's output in the same run.

Copy that is the same for two different products ("the same selling points for a kettle and a toaster") is
the mark of a model that ignored the row. The check keeps, for each earlier item, a MinHash signature in LSH
buckets (so 100k items cost 100k bucket look-ups, not 5 billion comparisons) and the item's shingle hashes for
an exact Jaccard on the few candidates. Shingles: character 3-grams for CJK text, word 2-grams otherwise.
Params: `threshold` (Jaccard, default 0.9), `fields`.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from typing import Any

import numpy as np

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, is_cjk, passed, problem, strings

PERMUTATIONS = 128
_PRIME = (1 << 61) - 1
_rng = np.random.default_rng(20240601)
_A = _rng.integers(1, 1 << 31, PERMUTATIONS, dtype=np.uint64)
_B = _rng.integers(0, 1 << 31, PERMUTATIONS, dtype=np.uint64)
_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str) -> np.ndarray:
    """Sorted unique 32-bit hashes of the text's shingles (char 3-grams for CJK, word 2-grams otherwise)."""
    text = text.casefold()
    if is_cjk(text):
        chars = "".join(_WORD.findall(text))
        grams = {chars[i : i + 3] for i in range(max(len(chars) - 2, 0))}
    else:
        words = _WORD.findall(text)
        grams = {f"{a} {b}" for a, b in zip(words, words[1:], strict=False)} or set(words)
    return np.unique(np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams)))


def signature(hashes: np.ndarray) -> np.ndarray:
    """MinHash over PERMUTATIONS random hash functions ((a*x+b) wrapping in 64 bits, then mod 2^61-1)."""
    values = (hashes[None, :] * _A[:, None] + _B[:, None]) % np.uint64(_PRIME)
    return values.min(axis=1)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - inter
    return inter / union if union else 0.0


def bands_for(threshold: float) -> int:
    """Rows per LSH band: the most selective split finding a pair at `threshold` 99.5% of the time."""
    for rows in (32, 16, 8, 4, 2, 1):
        bands = PERMUTATIONS // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.995:
            return rows
    return 1


@register("duplicate")
class DuplicateCheck:
    """Stateful: built once per run, it remembers every item it has seen."""

    name = "duplicate"
    min_shingles = 4

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.threshold = float(spec.params.get("threshold", 0.9))
        self.fields = as_fields(spec.params.get("fields", spec.params.get("field")))
        self.rows = bands_for(self.threshold)
        self.buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        self.seen: list[tuple[str, np.ndarray]] = []

    def text(self, output: Any) -> str:
        return "\n".join(text for _, text in strings(output, self.fields))

    def __call__(self, item: CheckItem) -> list[Finding]:
        hashes = shingles(self.text(item.output))
        if hashes.size < self.min_shingles:
            return passed(self.name, self.spec)
        sig = signature(hashes)
        keys = [
            (b, sig[b * self.rows : (b + 1) * self.rows].tobytes()) for b in range(PERMUTATIONS // self.rows)
        ]
        best: tuple[float, str] | None = None
        checked: set[int] = set()
        for key in keys:
            for index in self.buckets.get(key, ()):
                other_id, other = self.seen[index]
                if index in checked or other_id == item.row_id:
                    continue
                checked.add(index)
                score = jaccard(hashes, other)
                if score >= self.threshold and (best is None or score > best[0]):
                    best = (score, other_id)
        index = len(self.seen)
        self.seen.append((item.row_id, hashes))
        for key in keys:
            self.buckets[key].append(index)
        if best is None:
            return passed(self.name, self.spec)
        score, other_id = best
        reason = (
            f"This output is {score:.0%} the same as the output for row '{other_id}'; "
            "a different product should get its own copy."
        )
        return [
            problem(self.name, self.spec, reason, None, other_row_id=other_id, similarity=round(score, 3))
        ]
