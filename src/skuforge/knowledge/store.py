"""The SQLite half of a knowledge base: sources with their content hashes, chunk text and metadata, and an
FTS5 keyword index over our own CJK-aware tokens.

SQLite is the source of truth: a chunk exists when its row here is committed. The vector half (LanceDB)
is written inside the same SQLite transaction, just before the commit, and any vector whose id SQLite never
committed is swept on the next write, so a crash mid-ingest leaves nothing visible that should not be.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from skuforge.knowledge.chunking import Chunk
from skuforge.knowledge.filters import Filters, fts_document, fts_query, sql_predicate

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    source TEXT PRIMARY KEY, kind TEXT NOT NULL, content_hash TEXT NOT NULL, chunks INTEGER NOT NULL,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY, source TEXT NOT NULL, position INTEGER NOT NULL, heading TEXT NOT NULL,
    text TEXT NOT NULL, category TEXT NOT NULL, locale TEXT NOT NULL, kind TEXT NOT NULL, row_id TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts
    USING fts5(body, tokenize='porter unicode61 remove_diacritics 2');
"""


@dataclass
class StoredChunk:
    chunk_id: int
    source: str
    position: int
    heading: str
    text: str
    category: str
    locale: str
    kind: str
    row_id: str | None
    data: str | None


class ChunkStore:
    """Chunk rows, source hashes and the keyword index of one knowledge base, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._con.executescript(SCHEMA)
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            self._con.close()

    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self._con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def source_hash(self, source: str) -> str | None:
        with self.lock:
            row = self._con.execute("SELECT content_hash FROM sources WHERE source = ?", (source,)).fetchone()
        return row[0] if row else None

    @contextmanager
    def replacing(self, source: str, kind: str, digest: str, chunks: Sequence[Chunk]) -> Iterator[list[int]]:
        """Replace a source's chunks in one transaction; yields the new chunk ids before committing.

        The caller writes the vectors for those ids inside the block; if it raises, nothing changes here.
        """
        with self.lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                ids = self._replace(source, kind, digest, chunks)
                yield ids
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _replace(self, source: str, kind: str, digest: str, chunks: Sequence[Chunk]) -> list[int]:
        con = self._con
        con.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT chunk_id FROM chunks WHERE source = ?)", (source,)
        )
        con.execute("DELETE FROM chunks WHERE source = ?", (source,))
        start = (con.execute("SELECT MAX(chunk_id) FROM chunks").fetchone()[0] or 0) + 1
        start = max(start, int(self.get_meta("next_id") or 1))
        ids = list(range(start, start + len(chunks)))
        con.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    source,
                    c.position,
                    c.heading,
                    c.text,
                    c.meta.get("category", ""),
                    c.meta.get("locale", ""),
                    kind,
                    c.meta.get("row_id"),
                    c.meta.get("data"),
                )
                for i, c in zip(ids, chunks, strict=True)
            ],
        )
        con.executemany(
            "INSERT INTO chunks_fts(rowid, body) VALUES (?, ?)",
            [(i, fts_document(f"{c.heading}\n{c.text}")) for i, c in zip(ids, chunks, strict=True)],
        )
        con.execute(
            "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?)",
            (source, kind, digest, len(chunks), time.time()),
        )
        self.set_meta("next_id", str(start + len(chunks)))
        return ids

    def remove_source(self, source: str) -> int:
        """Delete one source's chunks; returns how many there were."""
        with self.lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                n = self._con.execute("SELECT COUNT(*) FROM chunks WHERE source = ?", (source,)).fetchone()[0]
                self._con.execute(
                    "DELETE FROM chunks_fts WHERE rowid IN (SELECT chunk_id FROM chunks WHERE source = ?)",
                    (source,),
                )
                self._con.execute("DELETE FROM chunks WHERE source = ?", (source,))
                self._con.execute("DELETE FROM sources WHERE source = ?", (source,))
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        return int(n)

    def sources(self) -> list[dict[str, object]]:
        with self.lock:
            rows = self._con.execute(
                "SELECT source, kind, content_hash, chunks, added_at FROM sources ORDER BY source"
            ).fetchall()
        return [
            dict(zip(("source", "kind", "content_hash", "chunks", "added_at"), r, strict=True)) for r in rows
        ]

    def stats(self) -> dict[str, object]:
        with self.lock:
            con = self._con
            chunks = con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            cats = con.execute(
                "SELECT category, COUNT(*) FROM chunks GROUP BY category ORDER BY 2 DESC"
            ).fetchall()
            locs = con.execute(
                "SELECT locale, COUNT(*) FROM chunks GROUP BY locale ORDER BY 2 DESC"
            ).fetchall()
            sources = con.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
        return {"sources": sources, "chunks": chunks, "categories": dict(cats), "locales": dict(locs)}

    def get(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        with self.lock:
            rows = self._con.execute(
                f"SELECT * FROM chunks WHERE chunk_id IN ({marks})", list(ids)
            ).fetchall()
        return {r[0]: StoredChunk(*r) for r in rows}

    def max_committed_id(self) -> int:
        with self.lock:
            return int(self._con.execute("SELECT COALESCE(MAX(chunk_id), 0) FROM chunks").fetchone()[0])

    def keyword_search(self, query: str, limit: int, filters: Filters) -> list[tuple[int, float]]:
        """Chunk ids ranked by BM25 over our tokens, best first, with a positive score (higher is better)."""
        match = fts_query(query)
        if match is None:
            return []
        where, params = sql_predicate(filters, "c")
        sql = (
            "SELECT c.chunk_id, -bm25(chunks_fts) AS score FROM chunks_fts JOIN chunks c "
            "ON c.chunk_id = chunks_fts.rowid WHERE chunks_fts MATCH ?"
            + (f" AND {where}" if where else "")
            + " ORDER BY score DESC LIMIT ?"
        )
        with self.lock:
            rows = self._con.execute(sql, [match, *params, limit]).fetchall()
        return [(int(i), float(s)) for i, s in rows]
