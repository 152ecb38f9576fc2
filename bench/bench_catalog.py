"""Catalog I/O at scale: stream a large CSV through the reader, a --where filter, a sample and a writer.

    python bench/bench_catalog.py            # 1,000,000 rows
    python bench/bench_catalog.py --rows 200000 --encoding gb18030

Prints rows/s and the process's peak RSS after each phase. The file is generated row by row into a
temporary directory, so the generator itself stays small; memory must stay flat as the row count grows.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from skuforge.catalog import open_catalog, select, write_catalog

CATEGORIES = ["Shoes", "Bags", "Home & Kitchen", "Toys", "Sports", "服装", "数码"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def generate(path: Path, rows: int, encoding: str) -> None:
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "title", "category", "brand", "color", "price", "description"])
        for i in range(rows):
            category = CATEGORIES[i % len(CATEGORIES)]
            writer.writerow([
                f"SKU-{i:08d}", f"Stainless steel bottle {i} 不锈钢保温杯", category, f"Brand{i % 97}",
                "" if i % 3 else "black", f"{(i * 37) % 10000 / 100:.2f}",
                "Double-wall vacuum insulation keeps drinks cold for 24 hours. " * 2,
            ])  # fmt: skip


def phase(name: str, rows: int, work: Callable[[], int]) -> None:
    start = time.perf_counter()
    count = work()
    seconds = time.perf_counter() - start
    print(
        f"{name:<34} {count:>9,} rows out  {seconds:6.1f} s  {rows / seconds:>9,.0f} rows/s in  "
        f"peak RSS {peak_rss_mib():6.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--encoding", default="utf-8")
    parser.add_argument("--id-column", default="sku", help="'' to number rows instead of checking ids")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.csv"
        generate(path, args.rows, args.encoding)
        size = path.stat().st_size / 2**20
        print(f"{args.rows:,} rows, {size:.0f} MiB, {args.encoding}, id column {args.id_column!r}")
        print(f"{'start':<34} peak RSS {peak_rss_mib():6.0f} MiB")
        catalog = open_catalog(path, id_column=args.id_column or None)
        phase("read all rows", args.rows, lambda: sum(1 for _ in catalog.rows()))
        where = "category = 'Shoes' AND price < 20"
        phase(f"select where {where!r}", args.rows, lambda: sum(1 for _ in select(catalog, where=where)))
        phase("select sample=100 (2 passes)", args.rows, lambda: sum(1 for _ in select(catalog, sample=100)))
        out = Path(folder) / "out.csv"
        rows = (row.data for row in catalog.rows())
        phase("read + write csv", args.rows, lambda: write_catalog(out, catalog.columns, rows).rows)


if __name__ == "__main__":
    main()
