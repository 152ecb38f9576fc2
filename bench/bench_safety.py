"""Throughput of the safety gate: texts/s and MB/s over real product titles and bullets.

    .venv/bin/python bench/bench_safety.py [--repeat 3]

Reads titles from $SKUFORGE_DATA (Amazon 2020 crawl titles + bullets, Shopee Chinese titles), builds the
zh+en+pii pack set once (build time is printed separately) and scans every text, reporting the matcher
alone and the full gate (matcher + PII regexes).
"""

from __future__ import annotations

import argparse
import csv
import time

from skuforge.eval.datasets import data_dir
from skuforge.safety import load_packs, normalize


def _texts() -> dict[str, list[str]]:
    with open(data_dir("amazon-catalog-2020", "products.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(data_dir("shopee-title-translation", "test_titles_zh.csv"), encoding="utf-8", newline="") as f:
        zh = [r["text"] for r in csv.DictReader(f)]
    return {
        "en titles": [r["Product Name"] for r in rows],
        "en bullets": [r["About Product"] for r in rows if r["About Product"]],
        "zh titles": zh,
    }


def _rate(label: str, texts: list[str], fn, repeat: int) -> None:  # type: ignore[no-untyped-def]
    size = sum(len(t.encode("utf-8")) for t in texts)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for t in texts:
            fn(t)
        best = min(best, time.perf_counter() - start)
    print(
        f"  {label:<22} {len(texts) / best:>10,.0f} texts/s {size / best / 1e6:>8.2f} MB/s"
        f"  ({len(texts)} texts, {size / len(texts):.0f} B avg)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    packs = load_packs(["zh", "en", "pii"])
    matcher = packs.matcher
    print(f"build: {len(packs.terms)} terms, {matcher.size} keys in {time.perf_counter() - start:.2f} s")
    for name, texts in _texts().items():
        print(name)
        _rate("normalize only", texts, normalize, args.repeat)
        _rate("matcher (terms)", texts, matcher.scan, args.repeat)
        _rate("full gate (+PII)", texts, packs.scan, args.repeat)


if __name__ == "__main__":
    main()
