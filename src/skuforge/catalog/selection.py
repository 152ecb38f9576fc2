"""Choosing which rows of a catalog a job runs on: a filter, a reproducible sample, a limit.

Order of operations: `where` filters, then `sample` picks N of the matching rows, then `limit` keeps the
first N. Everything streams. Sampling is for trial runs, where an operator wants to see every kind of
product before paying for the full run, so when the catalog has a category column the sample is spread
across categories (round-robin over categories, a random row each turn) rather than proportional to
them. It is reproducible: a row's draw is a hash of (seed, row id), independent of file order and of the
other rows, so the same seed picks the same products again and a grown catalog keeps earlier picks.

Sampling reads the catalog twice (the first pass ranks rows by their draw and keeps at most N per
category, the second yields the chosen rows in file order), so memory is bounded by N x categories
indices and never by the catalog.
"""

from __future__ import annotations

import difflib
import hashlib
import heapq
import itertools
from collections.abc import Iterable, Iterator

from skuforge.catalog.predicate import TYPE_SAMPLE_ROWS, Predicate
from skuforge.catalog.reader import Catalog, CatalogRow
from skuforge.errors import SelectionError

CATEGORY_COLUMNS = ("category", "类目", "category_path", "categories", "category path", "品类")
"""Column names (case-insensitive) used to spread a sample when `stratify_by` is not given."""

BATCH_ROWS = 10_000


def select(
    catalog: Catalog,
    *,
    where: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    stratify_by: str | bool | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[CatalogRow]:
    """The rows of `catalog` to run on, lazily, with their original index, id and line.

    `where` is a SQL predicate over the columns (DuckDB dialect), `sample` picks N rows reproducibly
    for `seed`, spread over `stratify_by` (a column name; None or True: a category-like column if there
    is one; False: no spreading), and `limit` keeps the first N. A bad predicate raises SelectionError
    here, before any row is yielded.
    """
    for name, value in (("limit", limit), ("sample", sample)):
        if value is not None and value < 0:
            raise SelectionError(
                f"{name} must be 0 or more, got {value}.", f"Pass a whole number for {name}."
            )
    predicate = _compile(catalog, where) if where is not None else None
    strata = _stratum_column(catalog, stratify_by) if sample is not None else None
    rows = _filtered(catalog, predicate, batch_rows)
    if sample is not None:
        rows = _sampled(catalog, rows, sample, seed, strata)
    if limit is not None:
        rows = itertools.islice(rows, limit)
    return rows


def _compile(catalog: Catalog, where: str) -> Predicate:
    first_rows = list(itertools.islice(catalog.rows(), TYPE_SAMPLE_ROWS))
    return Predicate(catalog, where, first_rows)


def _filtered(catalog: Catalog, predicate: Predicate | None, batch_rows: int) -> Iterator[CatalogRow]:
    if predicate is None:
        yield from catalog.rows()
        return
    try:
        batch: list[CatalogRow] = []
        for row in catalog.rows():
            batch.append(row)
            if len(batch) >= batch_rows:
                yield from predicate.keep(batch)
                batch = []
        yield from predicate.keep(batch)
    finally:
        predicate.close()


def _stratum_column(catalog: Catalog, stratify_by: str | bool | None) -> str | None:
    if stratify_by is False:
        return None
    if stratify_by is None or stratify_by is True:
        folded = {c.casefold(): c for c in catalog.columns}
        return next((folded[name] for name in CATEGORY_COLUMNS if name in folded), None)
    if stratify_by in catalog.columns:
        return stratify_by
    close = difflib.get_close_matches(stratify_by, catalog.columns, n=1)
    guess = f" Did you mean '{close[0]}'?" if close else ""
    raise SelectionError(
        f"Cannot spread the sample by '{stratify_by}': it is not a column of {catalog.path.name}.{guess}",
        f"Columns: {', '.join(catalog.columns)}.",
    )


def draw(seed: int, row_id: str) -> int:
    """A row's random draw for `seed`: stable across runs, file order and the rest of the catalog."""
    digest = hashlib.blake2b(f"{seed}\x00{row_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _sampled(
    catalog: Catalog, rows: Iterable[CatalogRow], size: int, seed: int, column: str | None
) -> Iterator[CatalogRow]:
    chosen = choose_sample(((row, draw(seed, row.row_id)) for row in rows), size, column)
    if not chosen:
        return
    remaining = set(chosen)
    for row in catalog.rows():
        if row.index in remaining:
            remaining.discard(row.index)
            yield row
            if not remaining:
                return


def choose_sample(ranked: Iterable[tuple[CatalogRow, int]], size: int, column: str | None) -> set[int]:
    """Indices of `size` rows: round-robin over strata (in order of their best draw), lowest draws first."""
    if size == 0:
        return set()
    heaps: dict[str, list[tuple[int, int]]] = {}  # stratum -> max-heap of (-draw, index)
    keep = size
    for row, value in ranked:
        stratum = "" if column is None else str(row.data.get(column) or "")
        heap = heaps.setdefault(stratum, [])
        if len(heaps) > size and keep > 1:
            keep = 1  # more strata than picks: only each stratum's best row can be chosen
            for name, other in heaps.items():
                heaps[name] = [max(other)] if other else []
            heap = heaps[stratum]
        if len(heap) < keep:
            heapq.heappush(heap, (-value, row.index))
        elif heap and -heap[0][0] > value:
            heapq.heapreplace(heap, (-value, row.index))
    ordered = sorted(sorted((-neg, index) for neg, index in heap) for heap in heaps.values() if heap)
    picked: set[int] = set()
    for turn in itertools.count():
        if len(picked) >= size or not any(turn < len(ranks) for ranks in ordered):
            break
        for ranks in ordered:
            if turn < len(ranks) and len(picked) < size:
                picked.add(ranks[turn][1])
    return picked
