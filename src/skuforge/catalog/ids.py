"""Product ids checked for duplicates over the whole catalog, in bounded memory.

Ids key every item of a job, so two rows with one id would share (and overwrite) each other's results.
`rows()` can catch a duplicate as it streams, but only by remembering every id it has seen, which grows
with the catalog (about 70 MB for a million rows). `scan_ids` streams the catalog once and writes each id's
64-bit hash and position to one of `PARTITIONS` temporary files (by the hash's low bits); it then reads the
files one at a time, so memory holds one partition's hashes (1/64th of the catalog), and the disk about 16
bytes a row. A hash seen twice is confirmed by reading the ids at its two positions again (a duplicate is
an error, so that pass happens at most once). The engine calls it once, before the first request; rows
streamed afterwards are not checked again.

    scan = scan_ids(catalog)    # scan.rows; scan.duplicate: None, or a CatalogError naming both places
"""

from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from skuforge.catalog.reader import Catalog
from skuforge.errors import CatalogError

PARTITIONS = 64
_RECORD = struct.Struct("<qq")  # (hash of the id, position of the row)


@dataclass(slots=True)
class IdScan:
    rows: int
    duplicate: CatalogError | None


def scan_ids(catalog: Catalog) -> IdScan:
    """One pass over a catalog with an id column: how many data rows it has, and the error for the first
    duplicated id (the one whose second appearance comes first in the file), or None."""
    assert catalog.id_column, "scan_ids needs a catalog with an id column"
    with tempfile.TemporaryDirectory(prefix="skuforge-ids-") as folder:
        rows = _partition(catalog, Path(folder))
        found = (_twice(Path(folder) / f"{n}.bin") for n in range(PARTITIONS))
        candidates = sorted(pair for pair in found if pair is not None)
    for second, first in candidates:
        row_id = _id_at(catalog, first)
        if row_id == _id_at(catalog, second):
            return IdScan(rows, catalog.duplicate_error(row_id, first, second))
    return IdScan(rows, None)


def _partition(catalog: Catalog, folder: Path) -> int:
    files: list[BinaryIO] = [(folder / f"{n}.bin").open("wb") for n in range(PARTITIONS)]
    rows = 0
    try:
        for position, values in catalog._source.records():
            digest = hash(catalog._id_of(position, values))
            files[digest % PARTITIONS].write(_RECORD.pack(digest, position))
            rows += 1
    finally:
        for file in files:
            file.close()
    return rows


def _twice(path: Path) -> tuple[int, int] | None:
    """(second position, first position) of the earliest-repeated hash in one partition, or None."""
    first_seen: dict[int, int] = {}
    earliest: tuple[int, int] | None = None
    for digest, position in _RECORD.iter_unpack(path.read_bytes()):
        first = first_seen.setdefault(digest, position)
        if first != position and (earliest is None or position < earliest[0]):
            earliest = (position, first)
    return earliest


def _id_at(catalog: Catalog, wanted: int) -> str:
    for position, values in catalog._source.records():
        if position == wanted:
            return catalog._id_of(position, values)
    raise CatalogError(f"{catalog.path.name} changed while it was read.", "Run again on a file at rest.")
