"""`python -m bench [scale|ray] [options]`: run the benchmark suites and print their tables.

The scale suite (issue 8) is the default; `python -m bench ray` runs the Ray executor beside the local one
at 1M rows, with a worker and the driver killed (issue 12); the older single-file benchmarks in this folder
(bench_catalog.py, bench_images.py, ...) run on their own with `python bench/<file>.py`.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "ray":
        from bench.scale.ray_scale import main as ray_scale

        ray_scale(argv[1:])
        return
    if argv and argv[0] == "scale":
        argv = argv[1:]
    from bench.scale.suite import main as scale

    scale(argv)


if __name__ == "__main__":
    main()
