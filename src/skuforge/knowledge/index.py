"""A named knowledge base under `SKUFORGE_HOME/kb/NAME/`: text and keywords in SQLite, vectors in LanceDB.

Why LanceDB: it is an embedded, on-disk columnar vector store that needs no server, filters on metadata
before ranking, and builds an IVF-SQ index when a base grows past what a flat scan serves quickly, so a
base can grow well past memory. sqlite-vec was the smaller candidate (163 kB wheel vs 75 MB) but the
Python here (like several distribution builds) has no `enable_load_extension`, so it could not load at
all. Measurements: bench/bench_knowledge.py.

Ingest is incremental: each source carries a content hash, an unchanged file is skipped, a changed one
has exactly its own chunks replaced.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skuforge import config
from skuforge.errors import NotFoundError, UserError, require
from skuforge.knowledge.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS, Chunk
from skuforge.knowledge.embedders import DEFAULT_EMBEDDER, Embedder, get_embedder
from skuforge.knowledge.filters import Filters, lance_predicate
from skuforge.knowledge.sources import expand_paths, load_source
from skuforge.knowledge.store import ChunkStore

TABLE = "chunks"
INDEX_THRESHOLD = 50_000  # below this a flat scan answers in tens of milliseconds; above, build IVF-SQ
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*")


@dataclass
class IngestReport:
    """What an ingest did, source by source."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    chunks: int = 0


def kb_root() -> Path:
    return config.home() / "kb"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise UserError(
            f"'{name}' is not a valid knowledge base name.",
            "Use letters, digits, '-', '_' and '.', e.g. 'style-guide' "
            "(a '/' makes a group: '_examples/title').",
        )
    return name


class KnowledgeBase:
    """One knowledge base. Open it with `open_kb(name)`, which caches it for the process."""

    def __init__(self, name: str, path: Path, embedder_name: str) -> None:
        self.name = name
        self.path = path
        self.store = ChunkStore(path / "kb.sqlite")
        self.embedder_name = self.store.get_meta("embedder") or embedder_name
        self.store.set_meta("embedder", self.embedder_name)
        self._write_lock = threading.Lock()
        self._table: Any = None
        self._indexed = bool(self.store.get_meta("indexed_rows"))  # read once: searches skip the SQLite lock

    # -- the vector half -------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        return get_embedder(self.embedder_name)

    def _db(self) -> Any:
        from datetime import timedelta

        lancedb = require("lancedb", "Knowledge bases", "knowledge")
        # Another process (the CLI, a review in the service) may add chunks while this one holds the base
        # open; re-check for new table versions at most every 2 s rather than never.
        return lancedb.connect(str(self.path / "vectors"), read_consistency_interval=timedelta(seconds=2))

    def table(self, create_dim: int | None = None) -> Any:
        """The LanceDB table, opened once; created on first write with the embedder's dimension."""
        if self._table is None:
            db = self._db()
            if (self.path / "vectors" / f"{TABLE}.lance").exists():
                self._table = db.open_table(TABLE)
            elif create_dim is not None:
                import pyarrow as pa

                schema = pa.schema(
                    [
                        ("chunk_id", pa.int64()),
                        ("source", pa.string()),
                        ("category", pa.string()),
                        ("locale", pa.string()),
                        ("kind", pa.string()),
                        ("vector", pa.list_(pa.float32(), create_dim)),
                    ]
                )
                self._table = db.create_table(TABLE, schema=schema)
        return self._table

    def _vector_rows(
        self, ids: list[int], chunks: Sequence[Chunk], kind: str, source: str, vectors: np.ndarray
    ):
        import pyarrow as pa

        dim = vectors.shape[1]
        return pa.table(
            {
                "chunk_id": pa.array(ids, pa.int64()),
                "source": pa.array([source] * len(ids), pa.string()),
                "category": pa.array([c.meta.get("category", "") for c in chunks], pa.string()),
                "locale": pa.array([c.meta.get("locale", "") for c in chunks], pa.string()),
                "kind": pa.array([kind] * len(ids), pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(vectors.astype(np.float32).ravel()), dim
                ),
            }
        )

    # -- ingest ------------------------------------------------------------------------------------------
    def add_paths(
        self,
        paths: Iterable[str | Path],
        *,
        category: str | None = None,
        locale: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
        progress: Callable[[str, str], None] | None = None,
    ) -> IngestReport:
        """Ingest files and directories; unchanged files are skipped, changed ones replaced."""
        report = IngestReport()
        for path in expand_paths(paths):
            content = load_source(
                path, category=category, locale=locale, max_tokens=max_tokens, overlap_tokens=overlap_tokens
            )
            outcome = self.add_chunks(content.source, content.kind, content.content_hash, content.chunks)
            getattr(report, outcome).append(content.source)
            report.chunks += len(content.chunks) if outcome != "unchanged" else 0
            if progress:
                progress(content.source, outcome)
        return report

    def add_chunks(self, source: str, kind: str, digest: str, chunks: Sequence[Chunk]) -> str:
        """Put a source's chunks in the base, replacing its old ones: 'added', 'replaced' or 'unchanged'."""
        with self._write_lock:
            previous = self.store.source_hash(source)
            if previous == digest:
                return "unchanged"
            texts = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks]
            vectors = self.embedder.passages(texts) if texts else None
            with self.store.replacing(source, kind, digest, chunks) as ids:
                table = self.table(create_dim=vectors.shape[1] if vectors is not None else None)
                if table is not None:
                    first = ids[0] if ids else self.store.max_committed_id() + 1
                    table.delete(f"source = {_quote(source)} OR chunk_id >= {int(first)}")
                    if vectors is not None:
                        table.add(self._vector_rows(ids, chunks, kind, source, vectors))
            self._maybe_index()
            return "added" if previous is None else "replaced"

    def _maybe_index(self) -> None:
        """Build an IVF-SQ index once the base is big enough that a flat scan starts to cost."""
        table = self.table()
        if table is None:
            return
        rows = table.count_rows()
        indexed = int(self.store.get_meta("indexed_rows") or 0)
        if rows >= INDEX_THRESHOLD and rows >= 2 * indexed:  # first build, then rebuild when doubled
            self.build_index()

    def build_index(self) -> None:
        """(Re)build the IVF-SQ vector index over all rows; later rows are scanned flat until the next build.

        IVF-SQ, not IVF-PQ: at 100k x 384-d it built in 6.5 s vs 185 s (PQ codebook training) with the same
        recall@5 (0.988 vs 0.992 against a flat scan) and query time (~6 ms p50), on 2 loaded cores.
        """
        from lancedb.index import IvfSq

        table = self.table()
        rows = table.count_rows()
        partitions = max(8, min(1024, rows // 1500))  # ~1.5k vectors a partition; 100k rows -> 66
        table.create_index("vector", config=IvfSq(distance_type="cosine", num_partitions=partitions))
        table.create_scalar_index("chunk_id", replace=True)  # fast lookups of keyword-only hits' vectors
        self.store.set_meta("indexed_rows", str(rows))
        self._indexed = True

    def remove_source(self, source: str) -> int:
        """Remove one source (a path as given, or as stored); returns how many chunks went."""
        stored = {s["source"] for s in self.store.sources()}
        resolved = str(Path(source).expanduser().resolve())
        key = source if source in stored else resolved
        if key not in stored:
            raise NotFoundError(
                f"Knowledge base '{self.name}' has no source {source}.",
                f"See its sources with: skuforge kb info {self.name}",
            )
        with self._write_lock:
            table = self.table()
            if table is not None:
                table.delete(f"source = {_quote(key)}")
            return self.store.remove_source(key)

    def info(self) -> dict[str, Any]:
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        table = self.table()
        return {
            "name": self.name,
            "path": str(self.path),
            "embedder": self.embedder_name,
            "vectors": table.count_rows() if table is not None else 0,
            "vector_index": "IVF-SQ" if self.store.get_meta("indexed_rows") else "flat",
            "bytes": size,
            **self.store.stats(),
        }

    # -- vector search ---------------------------------------------------------------------------------
    def vector_search(self, vector: np.ndarray, limit: int, filters: Filters) -> list[tuple[int, float]]:
        """Chunk ids ranked by cosine similarity (raw, -1..1), best first."""
        table = self.table()
        if table is None:
            return []
        query = table.search(vector.astype(np.float32)).distance_type("cosine").limit(limit)
        if self._indexed:
            query = query.nprobes(20).refine_factor(10)
        predicate = lance_predicate(filters)
        if predicate:
            query = query.where(predicate, prefilter=True)
        result = query.select(["chunk_id", "_distance"]).to_arrow()
        ids = result["chunk_id"].to_pylist()
        return [(int(i), 1.0 - float(d)) for i, d in zip(ids, result["_distance"].to_pylist(), strict=True)]

    def similarities(self, vector: np.ndarray, ids: Sequence[int]) -> dict[int, float]:
        """Cosine similarity of the query to given chunks (for hits that came from keywords only)."""
        table = self.table()
        if table is None or not ids:
            return {}
        predicate = f"chunk_id IN ({', '.join(str(int(i)) for i in ids)})"
        rows = table.search().where(predicate).select(["chunk_id", "vector"]).limit(len(ids)).to_arrow()
        matrix = np.asarray(rows["vector"].to_pylist(), dtype=np.float32).reshape(len(rows), -1)
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(vector) or 1.0)
        sims = matrix @ vector.astype(np.float32) / np.where(norms == 0, 1, norms)
        return {int(i): float(s) for i, s in zip(rows["chunk_id"].to_pylist(), sims, strict=True)}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_OPEN: dict[tuple[str, str], KnowledgeBase] = {}
_OPEN_LOCK = threading.Lock()


def open_kb(name: str, *, create: bool = False, embedder: str | None = None) -> KnowledgeBase:
    """Open a knowledge base (cached per process and SKUFORGE_HOME); `create=True` makes it if missing."""
    check_name(name)
    path = kb_root() / name
    key = (str(path), name)
    with _OPEN_LOCK:
        if key in _OPEN and (path / "kb.sqlite").exists():
            return _check_embedder(_OPEN[key], embedder)
        if not (path / "kb.sqlite").exists():
            if not create:
                raise NotFoundError(
                    f"No knowledge base named '{name}'.",
                    f"Create it with: skuforge kb add {name} PATH...  (see them all with: skuforge kb list)",
                )
            path.mkdir(parents=True, exist_ok=True)
        if embedder is not None:
            get_embedder(embedder)  # fail early on an unknown name, before anything is written
        kb = KnowledgeBase(name, path, embedder or DEFAULT_EMBEDDER)
        _OPEN[key] = kb
        return _check_embedder(kb, embedder)


def _check_embedder(kb: KnowledgeBase, embedder: str | None) -> KnowledgeBase:
    if embedder is not None and kb.embedder_name != embedder:
        raise UserError(
            f"Knowledge base '{kb.name}' was built with embedder '{kb.embedder_name}', not '{embedder}'.",
            f"Leave out --embedder, or remove it first: skuforge kb remove {kb.name}",
        )
    return kb


def list_kbs() -> list[str]:
    root = kb_root()
    if not root.exists():
        return []
    return sorted(str(p.parent.relative_to(root)) for p in root.rglob("kb.sqlite"))


def remove_kb(name: str) -> None:
    """Delete a whole knowledge base from disk and from the process cache."""
    kb = open_kb(name)
    with _OPEN_LOCK:
        _OPEN.pop((str(kb.path), name), None)
    kb.store.close()
    shutil.rmtree(kb.path)
