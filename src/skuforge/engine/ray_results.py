"""A Ray job's results, read where they are: its output folder, with the store's copies of reviewed items.

A Ray run of more than `SKUFORGE_RAY_STORE_ROWS` rows keeps its outcomes in the job's output folder
(`engine.ray_output`) and notes the folder in the job's totals (`totals.ray`). Export and `skuforge show`
find it there:

- `joined(store, job, ctx)` streams the selected rows in catalog order with their latest items: DuckDB
  joins the catalog's partitions with the parts (latest run wins per item) out of core, in bounded memory.
  An item the store also holds with the same key is taken from the store, so review decisions and edits
  made on it are exported.
- `counts(store, job)` counts the latest items by status (DuckDB over the parts).

For any other job both return None, and callers read the store as always.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from typing import Any

from skuforge.catalog import CatalogRow
from skuforge.catalog.partition import catalog_fingerprint, join, open_partitions, partition_catalog, rows_of
from skuforge.engine.context import JobContext
from skuforge.engine.ray_output import OUTCOME_COLUMNS, OutputFolder, output_root, records_of
from skuforge.engine.ray_plan import RowSelection
from skuforge.store import ItemRecord, Job, JobCounts, Store
from skuforge.store.protocol import ItemStore

Items = dict[tuple[str, str], ItemRecord]
_LATEST = (
    "SELECT * FROM parts QUALIFY row_number() OVER "
    "(PARTITION BY row_id, step, variant ORDER BY run DESC, seq DESC) = 1"
)


def folder_of(job: Job) -> OutputFolder | None:
    """The job's output folder when its results live there (a Ray run in "output" mode), else None."""
    noted = (job.totals or {}).get("ray") or {}
    if noted.get("results") != "output" or not noted.get("output"):
        return None
    folder = OutputFolder(noted["output"])
    return folder if folder.parts() else None


def _connect() -> Any:
    import duckdb

    return duckdb.connect(
        config={"memory_limit": "1GB", "temp_directory": tempfile.mkdtemp(prefix="skuforge-")}
    )


def counts(store: Store, job: Job) -> JobCounts:
    """The job's item counts and spend: from its output folder for a Ray job that keeps results there."""
    folder = folder_of(job)
    if folder is None:
        return store.counts(job.id)
    con = _connect()
    try:
        con.register("parts", folder.dataset())
        found = con.execute(
            f"SELECT status, count(*), sum(input_tokens), sum(output_tokens), sum(cost), sum(attempts) "
            f"FROM ({_LATEST}) GROUP BY status"
        ).fetchall()
        rows = con.execute(f"SELECT count(DISTINCT row_id) FROM ({_LATEST})").fetchone()
    finally:
        con.close()
    result = JobCounts(rows=int(rows[0]) if rows else 0)
    for status, n, tokens_in, tokens_out, cost, attempts in found:
        if status in ("done", "flagged", "failed", "skipped"):
            setattr(result, status, int(n))
        result.input_tokens += int(tokens_in or 0)
        result.output_tokens += int(tokens_out or 0)
        result.cost += float(cost or 0.0)
        result.requests += int(attempts or 0)
    return result


def has_sources(job: Job) -> bool | None:
    """Whether any item in the job's output folder quoted a knowledge source; None: not a Ray output job."""
    folder = folder_of(job)
    if folder is None:
        return None
    con = _connect()
    try:
        con.register("parts", folder.dataset())
        return (
            con.execute("""SELECT 1 FROM parts WHERE meta LIKE '%"sources"%' LIMIT 1""").fetchone()
            is not None
        )
    finally:
        con.close()


def joined(store: ItemStore, job: Job, ctx: JobContext) -> Iterator[tuple[CatalogRow, Items]] | None:
    """The job's selected rows in catalog order, each with its items (see the module docstring); None when
    the job's results are in the store."""
    folder = folder_of(job)
    if folder is None:
        return None
    return _joined(store, job, ctx, folder)


def _joined(
    store: ItemStore, job: Job, ctx: JobContext, folder: OutputFolder
) -> Iterator[tuple[CatalogRow, Items]]:
    catalog = ctx.catalog
    uri = join(join(output_root(), "input"), catalog_fingerprint(catalog))
    partitions = open_partitions(uri) or partition_catalog(catalog, uri)
    selection = _selection(job, ctx)
    predicate = selection.predicate(catalog) if selection.where is not None else None
    limit = ctx.spec.selection.limit
    left = limit if limit is not None and selection.below_index is None else None
    outcome = ", ".join(f'l."{c}" AS "o_{c}"' for c in OUTCOME_COLUMNS)
    con = _connect()
    try:
        import pyarrow.dataset as pads

        from skuforge.catalog.partition import filesystem

        fs, _ = filesystem(partitions.uri)
        paths = [filesystem(p)[1] for p in partitions.paths()]
        con.register("catalog_rows", pads.dataset(paths, filesystem=fs, format="parquet"))
        con.register("parts", folder.dataset())
        reader = con.sql(
            f"SELECT r.*, {outcome} FROM catalog_rows r LEFT JOIN ({_LATEST}) l ON l.row_id = r.row_id "
            "ORDER BY r.row_index, l.step, l.variant"
        ).to_arrow_reader(4096)
        for table in _whole_rows(reader):
            kept = selection.keep(table, predicate)
            chosen = set(kept.column("row_index").to_pylist())
            for row, items in _rows_with_items(store, job, table, chosen):
                if left is not None:
                    if left <= 0:
                        return
                    left -= 1
                yield row, items
    finally:
        con.close()


def _selection(job: Job, ctx: JobContext) -> RowSelection:
    sel = ctx.spec.selection
    noted = ((job.totals or {}).get("ray") or {}).get("selection") or {}
    chosen = RowSelection(where=sel.where, seed=sel.seed, sample_below=noted.get("sample_below"))
    chosen.below_index = noted.get("below_index")
    if sel.where is not None:
        from skuforge.catalog.predicate import TYPE_SAMPLE_ROWS

        chosen.where_rows = list(itertools.islice(ctx.catalog.rows(), TYPE_SAMPLE_ROWS))
    return chosen


def _whole_rows(reader: Any) -> Iterator[Any]:
    """Tables of joined rows that never split one catalog row's items over two tables."""
    import pyarrow as pa

    carry: Any = None
    for batch in reader:
        table = pa.Table.from_batches([batch])
        if carry is not None:
            table = pa.concat_tables([carry, table])
        if table.num_rows == 0:
            continue
        index = table.column("row_index")
        last = index[table.num_rows - 1].as_py()
        cut = table.num_rows
        while cut > 0 and index[cut - 1].as_py() == last:
            cut -= 1
        carry = table.slice(cut)
        if cut:
            yield table.slice(0, cut)
    if carry is not None and carry.num_rows:
        yield carry


def _rows_with_items(
    store: ItemStore, job: Job, table: Any, chosen: set[int]
) -> Iterator[tuple[CatalogRow, Items]]:
    indices = table.column("row_index").to_pylist()
    firsts = [i for i, index in enumerate(indices) if index in chosen and (i == 0 or indices[i - 1] != index)]
    rows = rows_of(table.take(firsts))
    latest: dict[str, Items] = {row.row_id: {} for row in rows}
    has_item = [
        i for i, index in enumerate(indices) if index in chosen and table.column("o_step")[i].is_valid
    ]
    outcomes = table.take(has_item).select([f"o_{c}" for c in OUTCOME_COLUMNS])
    outcomes = outcomes.rename_columns(list(OUTCOME_COLUMNS))
    for record in records_of(outcomes):
        latest[record.row_id][(record.step, record.variant)] = record
    reviewed = store.prior(job.id, [row.row_id for row in rows])
    for (row_id, step, variant), record in reviewed.items():
        mine = latest.get(row_id)
        if mine is not None:
            current = mine.get((step, variant))
            if current is None or current.key == record.key:
                mine[(step, variant)] = record  # the store's copy carries review decisions and edits
    for row in rows:
        yield row, latest[row.row_id]
