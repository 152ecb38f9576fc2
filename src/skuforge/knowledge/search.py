"""Search a knowledge base by meaning, by keyword, or both fused.

Vector search finds paraphrases ("how do I wash these" -> "Care: machine wash cold"); keyword search
finds exact strings vectors blur (model numbers such as WH-1000XM4, brand names). Hybrid mode runs both
and fuses them by reciprocal rank fusion (RRF, k=60): a chunk's score is the sum of 1/(60 + rank) over
the lists it appears in, so a chunk near the top of either list surfaces, without having to reconcile
BM25 and cosine scales.

Scores on a Hit: `score` ranks within one search (hybrid: RRF scaled so that first in both lists = 1.0;
vector: calibrated relevance; keyword: BM25). `similarity` is the raw cosine and `relevance` its
calibrated 0..1 form (see embedders), filled for every hit so callers can apply one threshold.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from skuforge.errors import UserError
from skuforge.knowledge.filters import parse_where
from skuforge.knowledge.index import KnowledgeBase, open_kb

Mode = Literal["hybrid", "vector", "keyword"]
MODES = ("hybrid", "vector", "keyword")
RRF_K = 60
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="kb-keyword")


@dataclass
class Hit:
    """One retrieved chunk with its scores and metadata."""

    kb: str
    chunk_id: int
    source: str
    heading: str
    text: str
    category: str
    locale: str
    kind: str
    row_id: str | None
    data: str | None
    score: float
    similarity: float | None = None
    relevance: float | None = None
    keyword_score: float | None = None

    @property
    def citation(self) -> str:
        """`file.md#Heading` for documents, `file.csv#row 17` for table rows."""
        name = self.source.rsplit("/", 1)[-1]
        anchor = self.heading.rsplit(" > ", 1)[-1] if self.kind == "document" else f"row {self.row_id}"
        return f"{name}#{anchor}" if anchor else name


def rrf(*rankings: list[int], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion of ranked id lists."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return fused


def search(
    kb: str | KnowledgeBase,
    query: str,
    *,
    k: int = 5,
    where: dict[str, Any] | str | None = None,
    mode: Mode = "hybrid",
) -> list[Hit]:
    """Best k chunks for a query; `where` filters on category, locale, source or kind before ranking."""
    if mode not in MODES:
        raise UserError(f"Unknown search mode '{mode}'.", f"Use one of: {', '.join(MODES)}.")
    base = open_kb(kb) if isinstance(kb, str) else kb
    filters = parse_where(where)
    pool = max(k * 4, 20)
    vector: np.ndarray | None = None
    by_vector: list[tuple[int, float]] = []
    by_keyword: list[tuple[int, float]] = []
    keyword_job = None
    if mode in ("hybrid", "keyword"):  # SQLite releases the GIL: run it while the query is embedded
        keyword_job = _POOL.submit(base.store.keyword_search, query, pool if mode == "hybrid" else k, filters)
    if mode in ("hybrid", "vector") and query.strip():
        vector = base.embedder.queries([query])[0]
        by_vector = base.vector_search(vector, pool if mode == "hybrid" else k, filters)
    if keyword_job is not None:
        by_keyword = keyword_job.result()
    sims = dict(by_vector)
    keyword_scores = dict(by_keyword)
    if mode == "hybrid":
        fused = rrf([i for i, _ in by_vector], [i for i, _ in by_keyword])
        order = sorted(fused, key=lambda i: -fused[i])[:k]
        scores = {i: fused[i] * (RRF_K + 1) / 2 for i in order}
    elif mode == "vector":
        order = [i for i, _ in by_vector]
        scores = dict(
            zip(order, base.embedder.relevance(np.array([s for _, s in by_vector])).tolist(), strict=True)
        )
    else:
        order = [i for i, _ in by_keyword]
        scores = keyword_scores
    missing = [i for i in order if i not in sims]
    if missing and mode != "keyword":
        sims.update(
            base.similarities(vector if vector is not None else base.embedder.queries([query])[0], missing)
        )
    return _hits(base, order, scores, sims, keyword_scores)


def _hits(
    base: KnowledgeBase,
    order: list[int],
    scores: dict[int, float],
    sims: dict[int, float],
    keyword_scores: dict[int, float],
) -> list[Hit]:
    rows = base.store.get(order)
    hits = []
    for chunk_id in order:
        row = rows.get(chunk_id)
        if row is None:  # a vector whose chunk was never committed; swept on the next write
            continue
        sim = sims.get(chunk_id)
        hits.append(
            Hit(
                kb=base.name,
                chunk_id=chunk_id,
                source=row.source,
                heading=row.heading,
                text=row.text,
                category=row.category,
                locale=row.locale,
                kind=row.kind,
                row_id=row.row_id,
                data=row.data,
                score=float(scores[chunk_id]),
                similarity=sim,
                relevance=float(base.embedder.relevance(np.array([sim]))[0]) if sim is not None else None,
                keyword_score=keyword_scores.get(chunk_id),
            )
        )
    return hits
