"""A catalog as partitioned Parquet, for executors that read it in parallel (the Ray executor).

`partition_catalog` streams any catalog skuforge reads (xlsx, csv, tsv, jsonl, parquet) once, through the
same reader the local executor uses, into Parquet files of `rows_per_file` rows, written one row group at a
time, so memory stays flat whatever the catalog's size. Each file has five columns:

| column | what |
|---|---|
| `row_index` | the row's 0-based index among data rows, as `CatalogRow.index` |
| `row_id` | the product id (the id column's value, else the row number), as `CatalogRow.row_id` |
| `row_line` | where the row is in the original file ("line 17 of feed.csv"), for error messages |
| `row_data` | the row's values as JSON text, in column order: text as text, anything else `null` here |
| `row_typed` | the non-text values (numbers, dates, nested JSON), each tagged with its type; or null |

So a row read back is exactly the row the catalog reader gave (same values, same types, same key order), and
an item rendered from it has the same key whichever executor rendered it. A `_manifest.json`, written last,
lists the files, the columns and the source file it was made from: a folder without one is an unfinished
conversion and is never read. The destination may be a local folder or any URI pyarrow can write (`s3://`,
`gs://`, `hdfs://`), so that every node of a cluster reads the same partitions.

    parts = partition_catalog(open_catalog("feed.xlsx"), "/shared/skuforge/input/feed")
    parts = open_partitions("/shared/skuforge/input/feed")        # None when absent or unfinished
    rows = rows_of(pyarrow_table)                                 # CatalogRows again
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import posixpath
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from skuforge.catalog.reader import Catalog, CatalogRow
from skuforge.errors import CatalogError

VERSION = 1
"""Changes whenever the layout changes; part of the fingerprint, so an old conversion is never reused."""
MANIFEST = "_manifest.json"
ROWS_PER_FILE = 100_000
GROUP_ROWS = 8_192
COLUMNS = ("row_index", "row_id", "row_line", "row_data", "row_typed")


@dataclass(slots=True)
class PartFile:
    name: str
    rows: int
    first_index: int


@dataclass(slots=True)
class Partitions:
    """A finished conversion: where it is, what it holds and what it was made from."""

    uri: str
    columns: list[str]
    rows: int
    files: list[PartFile]
    id_column: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    version: int = VERSION

    def paths(self) -> list[str]:
        """Every file's full path or URI, in row order."""
        return [join(self.uri, f.name) for f in self.files]

    def manifest(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


# -- values ------------------------------------------------------------------------------------------------
def encode_row(data: dict[str, Any]) -> tuple[str, str | None]:
    """A row's values as (`row_data`, `row_typed`): text values and the order of every column, then the
    values that are not text, each tagged with its type so that it reads back as the same Python value."""
    text: dict[str, Any] = {}
    typed: dict[str, Any] | None = None
    for name, value in data.items():
        if value is None or isinstance(value, str):
            text[name] = value
        else:
            text[name] = None
            typed = typed if typed is not None else {}
            typed[name] = _tag(name, value)
    return orjson.dumps(text).decode(), orjson.dumps(typed).decode() if typed is not None else None


def decode_row(row_data: str, row_typed: str | None) -> dict[str, Any]:
    """The row's values, exactly as the catalog reader gave them."""
    data: dict[str, Any] = orjson.loads(row_data)
    if row_typed:
        for name, (tag, payload) in orjson.loads(row_typed).items():
            data[name] = _untag(tag, payload)
    return data


_SIMPLE = {bool: "b", int: "i", float: "f"}


def _tag(name: str, value: Any) -> list[Any]:
    kind = _SIMPLE.get(type(value))
    if kind == "i" and not -(2**63) <= value < 2**64:
        return ["I", str(value)]
    if kind == "f" and (value != value or value in (float("inf"), float("-inf"))):
        return ["F", repr(value)]  # JSON has no NaN or infinity
    if kind is not None:
        return [kind, value]
    if isinstance(value, dt.datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, dt.date):
        return ["d", value.isoformat()]
    if isinstance(value, dt.time):
        return ["t", value.isoformat()]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    if isinstance(value, bytes):
        return ["bytes", base64.b64encode(value).decode()]
    if isinstance(value, (dict, list)):
        try:
            if orjson.loads(orjson.dumps(value)) == value:
                return ["j", value]
        except TypeError:
            pass
    raise CatalogError(
        f"Column '{name}' holds a {type(value).__name__} value ({str(value)[:60]!r}) that cannot be carried "
        "into the partitioned copy of the catalog.",
        "Convert that column to text (or plain JSON) in the source file, or run with --executor local.",
    )


def _untag(tag: str, payload: Any) -> Any:
    if tag in ("b", "i", "f", "j"):
        return payload
    if tag == "I":
        return int(payload)
    if tag == "F":
        return float(payload)
    if tag == "dt":
        return dt.datetime.fromisoformat(payload)
    if tag == "d":
        return dt.date.fromisoformat(payload)
    if tag == "t":
        return dt.time.fromisoformat(payload)
    if tag == "dec":
        return Decimal(payload)
    if tag == "bytes":
        return base64.b64decode(payload)
    raise CatalogError(f"Unknown value tag '{tag}' in a partitioned catalog.", "Convert the catalog again.")


def rows_of(table: Any) -> list[CatalogRow]:
    """The CatalogRows of a table (or record batch) read from partitions."""
    index = table.column("row_index").to_pylist()
    ids = table.column("row_id").to_pylist()
    lines = table.column("row_line").to_pylist()
    data = table.column("row_data").to_pylist()
    typed = table.column("row_typed").to_pylist()
    return [
        CatalogRow(i, row_id, decode_row(text, tags), line)
        for i, row_id, line, text, tags in zip(index, ids, lines, data, typed, strict=True)
    ]


# -- where partitions live ---------------------------------------------------------------------------------
def filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem and path for a local folder or a URI (`s3://bucket/prefix`, ...)."""
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for unknown schemes and bad URIs
        raise CatalogError(
            f"Cannot open {uri}: {exc}",
            "Use a local folder, or a URI pyarrow knows (s3://bucket/prefix, gs://..., hdfs://...).",
        ) from None


def join(uri: str, name: str) -> str:
    return posixpath.join(uri, name) if "://" in uri else str(Path(uri) / name)


def catalog_fingerprint(catalog: Catalog) -> str:
    """What a conversion of `catalog` depends on: the file (path, size, modification time) and how it is
    read (sheet, encoding, delimiter, id column), and the layout version."""
    stat = catalog.path.stat()
    body = [
        str(catalog.path.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        catalog.sheet,
        catalog.encoding,
        catalog.delimiter,
        catalog.id_column,
        catalog.columns[:1],
        VERSION,
    ]
    return hashlib.sha256(orjson.dumps(body, default=str)).hexdigest()[:20]


def open_partitions(uri: str) -> Partitions | None:
    """The conversion at `uri`, or None when there is none or it never finished (no manifest)."""
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST}") as f:
            body = orjson.loads(f.read())
    except (FileNotFoundError, OSError):
        return None
    if body.get("version") != VERSION:
        return None
    body["files"] = [PartFile(**f) for f in body["files"]]
    return Partitions(**{**body, "uri": uri})


# -- converting --------------------------------------------------------------------------------------------
def partition_catalog(
    catalog: Catalog,
    uri: str,
    *,
    rows_per_file: int = ROWS_PER_FILE,
    group_rows: int = GROUP_ROWS,
) -> Partitions:
    """Convert `catalog` into Parquet files under `uri` (see the module docstring); streaming, one row
    group in memory at a time. Catalog errors (a duplicated id, a bad line) are raised as the reader raises
    them; the folder then has no manifest and is never used."""
    import pyarrow.parquet as pq

    fs, root = filesystem(uri)
    fs.create_dir(root, recursive=True)
    files: list[PartFile] = []
    writer: Any = None
    try:
        for group in _groups(catalog.rows(), group_rows):
            if writer is None or files[-1].rows >= rows_per_file:
                if writer is not None:
                    writer.close()
                name = f"rows-{len(files):05d}.parquet"
                writer = pq.ParquetWriter(f"{root}/{name}", _schema(), filesystem=fs, compression="zstd")
                files.append(PartFile(name, 0, group[0].index))
            writer.write_table(_table(group), row_group_size=group_rows)
            files[-1].rows += len(group)
    finally:
        if writer is not None:
            writer.close()
    parts = Partitions(
        uri=uri,
        columns=list(catalog.columns),
        rows=sum(f.rows for f in files),
        files=files,
        id_column=catalog.id_column,
        source=_source(catalog),
    )
    with fs.open_output_stream(f"{root}/{MANIFEST}") as out:
        out.write(parts.manifest())
    return parts


def _groups(rows: Iterator[CatalogRow], size: int) -> Iterator[list[CatalogRow]]:
    group: list[CatalogRow] = []
    for row in rows:
        group.append(row)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("row_index", pa.int64()),
            ("row_id", pa.string()),
            ("row_line", pa.string()),
            ("row_data", pa.string()),
            ("row_typed", pa.string()),
        ]
    )


def _table(rows: list[CatalogRow]) -> Any:
    import pyarrow as pa

    encoded = [encode_row(row.data) for row in rows]
    return pa.table(
        [
            pa.array([row.index for row in rows], pa.int64()),
            pa.array([row.row_id for row in rows], pa.string()),
            pa.array([row.line for row in rows], pa.string()),
            pa.array([text for text, _ in encoded], pa.string()),
            pa.array([typed for _, typed in encoded], pa.string()),
        ],
        schema=_schema(),
    )


def _source(catalog: Catalog) -> dict[str, Any]:
    stat = catalog.path.stat()
    return {
        "path": str(catalog.path),
        "format": catalog.format,
        "sheet": catalog.sheet,
        "encoding": catalog.encoding,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "notes": list(catalog.notes),
    }
