"""Finished item keys of earlier Ray runs, split by hash over several actors, for the plan stage's anti-join.

A rerun must not send an item whose key (the hash of its rendered request) an earlier run finished: under
the same product (nothing to do), or under another one (a moved row, an identical product: its answer is
reused). The earlier outcomes are in the job's output folder (`engine.ray_output`). At the start of a run
the driver streams each item's latest outcome out of the folder (DuckDB, bounded memory) and sends every
finished one to the `KeyShard` that owns its key (by hash of the key), so each shard holds 1/S of the keys
and no process ever loads them all. The plan stage then asks, for each batch of rendered items, the shards
that own their keys (one call per shard per batch).

A shard keeps, per entry, 40 bytes in sorted numpy arrays: the key (128 of its 256 bits, enough to tell 10^7
keys apart with a collision chance of about 10^-25), a hash of the (row id, step, variant) it was finished
for, and where its outcome is (the part and the position in it), to read it back when it is reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SHARD_KEYS = 2_000_000
"""Keys per shard (about 80 MB of arrays); the driver starts ceil(keys / SHARD_KEYS) shards."""


def key_halves(key: str) -> tuple[int, int]:
    """The first 128 bits of a hex item key as two unsigned 64-bit integers."""
    return int(key[:16], 16), int(key[16:32], 16)


def item_hash(row_id: str, step: str, variant: str) -> int:
    """A 64-bit hash of the product and item a key was finished for."""
    digest = hashlib.blake2b(f"{row_id}\0{step}\0{variant}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(slots=True)
class Found:
    same_item: bool  # finished for this very product, step and variant
    part: int  # where an outcome with this key is (its part's number, its position)
    seq: int


class KeyShard:
    """One actor's share of the finished keys (see the module docstring)."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._chunks: list[tuple[Any, ...]] = []
        self.hi = self.lo = self.item = np.zeros(0, np.uint64)
        self.part = self.seq = np.zeros(0, np.int32)

    def add(self, hi: Any, lo: Any, item: Any, part: Any, seq: Any) -> int:
        self._chunks.append((hi, lo, item, part, seq))
        return len(hi)

    def seal(self) -> int:
        """Sort what was added; the number of entries."""
        np = self._np
        if self._chunks:
            columns = [np.concatenate([c[i] for c in self._chunks]) for i in range(5)]
            self._chunks = []
            order = np.lexsort((columns[1], columns[0]))
            self.hi, self.lo, self.item, self.part, self.seq = (c[order] for c in columns)
        return len(self.hi)

    def lookup(self, hi: Any, lo: Any, item: Any) -> list[tuple[bool, int, int] | None]:
        """For each key: None, or (finished for this item?, part, position)."""
        np = self._np
        starts = np.searchsorted(self.hi, hi, side="left")
        found: list[tuple[bool, int, int] | None] = []
        for q_hi, q_lo, q_item, start in zip(
            hi.tolist(), lo.tolist(), item.tolist(), starts.tolist(), strict=True
        ):
            hit: tuple[bool, int, int] | None = None
            at = start
            while at < len(self.hi) and int(self.hi[at]) == q_hi:
                if int(self.lo[at]) == q_lo:
                    same = int(self.item[at]) == q_item
                    if hit is None or same:
                        hit = (same, int(self.part[at]), int(self.seq[at]))
                    if same:
                        break
                at += 1
            found.append(hit)
        return found

    def size(self) -> int:
        return len(self.hi) + sum(len(c[0]) for c in self._chunks)


def shard_of(hi: int, shards: int) -> int:
    return hi % shards


def split_entries(table: Any, part_ids: dict[str, int], shards: int) -> list[tuple[Any, ...]]:
    """A table of latest outcomes (key, row_id, step, variant, part, seq) as per-shard numpy arrays."""
    import numpy as np

    keys = table.column("key").to_pylist()
    ids, steps = table.column("row_id").to_pylist(), table.column("step").to_pylist()
    variants, parts = table.column("variant").to_pylist(), table.column("part").to_pylist()
    seqs = table.column("seq").to_pylist()
    buckets: list[list[list[int]]] = [[[], [], [], [], []] for _ in range(shards)]
    for key, row_id, step, variant, part, seq in zip(keys, ids, steps, variants, parts, seqs, strict=True):
        hi, lo = key_halves(key)
        bucket = buckets[shard_of(hi, shards)]
        for column, value in zip(
            bucket, (hi, lo, item_hash(row_id, step, variant), part_ids[part], seq), strict=True
        ):
            column.append(value)
    types = (np.uint64, np.uint64, np.uint64, np.int32, np.int32)
    return [tuple(np.array(col, dtype=t) for col, t in zip(b, types, strict=True)) for b in buckets]


class KeyIndex:
    """The plan stage's view of the shards: look up a batch of keys, one call per shard."""

    def __init__(self, shards: Sequence[Any], parts: Sequence[str]) -> None:
        self.shards, self.parts = list(shards), list(parts)

    def __bool__(self) -> bool:
        return bool(self.shards)

    def lookup(self, wanted: Sequence[tuple[str, str, str, str]]) -> list[Found | None]:
        """For each (key, row_id, step, variant): where a finished outcome with that key is, if any."""
        import numpy as np
        import ray

        if not self.shards or not wanted:
            return [None] * len(wanted)
        groups: dict[int, list[int]] = {}
        halves = [key_halves(key) for key, *_ in wanted]
        for position, (first, _second) in enumerate(halves):
            groups.setdefault(shard_of(first, len(self.shards)), []).append(position)
        calls = {}
        for shard, positions in groups.items():
            hi = np.array([halves[p][0] for p in positions], np.uint64)
            lo = np.array([halves[p][1] for p in positions], np.uint64)
            item = np.array([item_hash(*wanted[p][1:]) for p in positions], np.uint64)
            calls[shard] = self.shards[shard].lookup.remote(hi, lo, item)
        answers = dict(zip(calls, ray.get(list(calls.values())), strict=True))
        found: list[Found | None] = [None] * len(wanted)
        for shard, positions in groups.items():
            for position, hit in zip(positions, answers[shard], strict=True):
                found[position] = Found(*hit) if hit is not None else None
        return found
