"""Where a Ray run's item outcomes go: Parquet parts in a job folder on a shared URI.

The folder is `<root>/<job id>/`, where the root is `SKUFORGE_RAY_OUTPUT` (a local folder, an NFS mount, or
any URI pyarrow can write: `s3://bucket/skuforge`) or `SKUFORGE_HOME/ray`. Every block of rows a worker runs
becomes one part, written whole or not at all (a temporary name, then a rename), under a name fixed by the
run and the block's rows:

    part-<run>-<first row index>-<last row index>.parquet   e.g. part-0003-000000004096-000000004607.parquet

A task that Ray retries (its worker died) writes the same name again, so a retry replaces its own part and
never adds a second one; a later run writes under its own run number. Reading deduplicates by item: for each
(row id, step, variant) the outcome of the latest run wins. So reruns and retried tasks are idempotent, and
the folder alone says what a job has done: `skuforge export` and `skuforge show` read it directly.

While a block runs, its outcomes are also written as they come, in pieces of a few dozen (`Journal` in
`engine.ray_workers`), so a killed worker or driver loses the answers of at most one piece per running
block, not whole blocks:

    part-<run>-<first>-<last>.piece-<n>.parquet   e.g. part-0003-000000004096-000000004607.piece-0002.parquet

A piece is a part like any other for reading (a rerun finds its items by key, export shows them). When the
block ends, its part holds everything the pieces held and the pieces are deleted; a retried block (its worker
died) first reads what the earlier attempt wrote under its name, part or pieces, and does not ask it again.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from skuforge.catalog.partition import filesystem, join
from skuforge.store import ItemOutcome, ItemRecord

OUTCOME_COLUMNS = tuple(f.name for f in fields(ItemOutcome))
JSON_COLUMNS = ("output", "findings", "meta")
_INT_COLUMNS = ("row_index", "input_tokens", "output_tokens", "cached_tokens", "attempts")
_PART = re.compile(r"part-(\d{4})-(\d{12})-(\d{12})(?:\.piece-(\d{4}))?\.parquet$")


def output_root() -> str:
    """Where job folders go: `SKUFORGE_RAY_OUTPUT`, else `SKUFORGE_HOME/ray`."""
    from skuforge.config import home

    return os.environ.get("SKUFORGE_RAY_OUTPUT") or str(home() / "ray")


@dataclass(frozen=True, slots=True)
class Part:
    path: str
    run: int
    first: int
    last: int
    piece: int | None = None


def part_name(run: int, first: int, last: int) -> str:
    return f"part-{run:04d}-{first:012d}-{last:012d}.parquet"


def piece_name(part: str, number: int) -> str:
    """The name of the `number`th piece of the block whose part is `part`."""
    return f"{part.removesuffix('.parquet')}.piece-{number:04d}.parquet"


class OutputFolder:
    """One job's folder of parts (a local path or a URI)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.path = filesystem(uri)

    def ensure(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def parts(self) -> list[Part]:
        """Every finished part, in (run, first row) order; temporary files are not parts."""
        from pyarrow import fs

        try:
            infos = self.fs.get_file_info(fs.FileSelector(self.path, allow_not_found=True))
        except FileNotFoundError:
            return []
        found = []
        for info in infos:
            match = _PART.search(info.path)
            if match and info.type == fs.FileType.File:
                run, first, last, piece = match.groups()
                found.append(Part(info.path, int(run), int(first), int(last), _int(piece)))
        return sorted(found, key=lambda p: (p.run, p.first, p.last, -1 if p.piece is None else p.piece))

    def block(self, part: str) -> list[Part]:
        """What an earlier attempt of a block wrote under its part's name: the part, or its pieces. Costs one
        look-up per block; the folder is listed only when something is there."""
        from pyarrow import fs

        own = f"{self.path}/{part}"
        probes = self.fs.get_file_info([own, f"{self.path}/{piece_name(part, 0)}"])
        if all(info.type == fs.FileType.NotFound for info in probes):
            return []
        stem = part.removesuffix(".parquet")
        return [p for p in self.parts() if p.path.rsplit("/", 1)[-1].startswith(stem)]

    def runs(self) -> int:
        """The highest run number written so far (0 when none)."""
        return max((p.run for p in self.parts()), default=0)

    def clean(self) -> None:
        """Remove temporary files a killed worker left (never a finished part)."""
        from pyarrow import fs

        for info in self.fs.get_file_info(fs.FileSelector(self.path, allow_not_found=True)):
            if ".tmp-" in info.base_name:
                self.fs.delete_file(info.path)

    # -- writing -----------------------------------------------------------------------------------------
    def write(self, name: str, outcomes: list[ItemOutcome], run: int) -> str:
        """Write one part atomically (a temporary name, then a rename); its full path."""
        import pyarrow.parquet as pq

        final = f"{self.path}/{name}"
        temporary = f"{final}.tmp-{uuid.uuid4().hex[:8]}"
        pq.write_table(to_table(outcomes, run, name), temporary, filesystem=self.fs, compression="zstd")
        self.fs.move(temporary, final)
        return final

    def delete(self, *paths: str) -> None:
        for path in paths:
            self.fs.delete_file(path)

    # -- reading -----------------------------------------------------------------------------------------
    def read(self, path: str, columns: list[str] | None = None, where: Any = None) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(path, filesystem=self.fs, columns=columns, filters=where)

    def records(self, path: str, statuses: Iterable[str] | None = None) -> list[ItemRecord]:
        """The outcomes of one part (optionally only those with these statuses)."""
        import pyarrow.compute as pc

        table = self.read(path)
        if statuses is not None:
            table = table.filter(pc.is_in(table.column("status"), value_set=_strings(list(statuses))))
        return records_of(table)

    def dataset(self) -> Any:
        """Every part as one pyarrow dataset (lazy; DuckDB and Ray scan it with projection)."""
        import pyarrow.dataset as pads

        return pads.dataset([p.path for p in self.parts()], filesystem=self.fs, format="parquet")


def _int(text: str | None) -> int | None:
    return None if text is None else int(text)


def to_table(outcomes: Iterable[ItemOutcome], run: int, part: str = "") -> Any:
    """Outcomes as an Arrow table; JSON values as text, as in the store; `run`, `part` and `seq` say which
    run wrote each one, in which part and where in it."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {name: [] for name in OUTCOME_COLUMNS}
    count = 0
    for outcome in outcomes:
        count += 1
        for name in OUTCOME_COLUMNS:
            value = getattr(outcome, name)
            if name in JSON_COLUMNS and value is not None:
                value = orjson.dumps(value).decode()
            columns[name].append(value)
    arrays = {name: pa.array(values, type=_type(name)) for name, values in columns.items()}
    arrays["run"] = pa.array([run] * count, pa.int32())
    arrays["part"] = pa.array([part] * count, pa.string())
    arrays["seq"] = pa.array(range(count), pa.int32())
    return pa.table(arrays)


def _type(name: str) -> Any:
    import pyarrow as pa

    if name in _INT_COLUMNS:
        return pa.int64()
    return {"cost": pa.float64(), "cached": pa.bool_()}.get(name, pa.string())


def _strings(values: list[str]) -> Any:
    import pyarrow as pa

    return pa.array(values, pa.string())


def records_of(table: Any) -> list[ItemRecord]:
    """ItemRecords from a table of outcomes (JSON columns decoded)."""
    names = [n for n in OUTCOME_COLUMNS if n in table.column_names]
    data = {name: table.column(name).to_pylist() for name in names}
    records = []
    for i in range(table.num_rows):
        row = {name: data[name][i] for name in names}
        for name in JSON_COLUMNS:
            if row.get(name) is not None:
                row[name] = orjson.loads(row[name])
        records.append(ItemRecord(**row))
    return records


def latest(folder: OutputFolder, *, columns: list[str] | None = None) -> Iterator[Any]:
    """Every item's latest outcome (the highest run wins), as Arrow record batches, via DuckDB."""
    import duckdb

    if not folder.parts():
        return
    wanted = ", ".join(_quote(c) for c in (columns or [*OUTCOME_COLUMNS, "run"]))
    con = duckdb.connect(config={"memory_limit": "1GB"})
    try:
        con.register("parts", folder.dataset())
        query = (
            f"SELECT {wanted} FROM parts QUALIFY row_number() OVER "
            "(PARTITION BY row_id, step, variant "
            "ORDER BY run DESC, part NOT LIKE '%.piece-%' DESC, part DESC, seq DESC) = 1"
        )
        reader: Any = con.sql(query).to_arrow_reader(8192)
        yield from reader
    finally:
        con.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def default_folder(job_id: str, parts_dir: str | None = None) -> str:
    """The job's folder: `parts_dir` when given, else `<output_root()>/<job id>`."""
    if parts_dir:
        return parts_dir if "://" in parts_dir else str(Path(parts_dir).expanduser().resolve())
    return join(output_root(), job_id)
