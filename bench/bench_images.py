"""Throughput of each image op (images/s, one process) at 512 px and 1500 px on this machine.

    .venv/bin/python bench/bench_images.py [--repeat N] [--sizes 512,1500] [--ops cutout,upscale,...]

The input is a real sample photo (examples/images) resized to the given long side. `upscale` runs
Real-ESRGAN animevideov3-x2 on the CPU (ncnn, gpuid=-1) and is by far the slowest op.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from PIL import Image

from skuforge.images.opspec import parse_ops
from skuforge.images.pipeline import run_op

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "images" / "B0799CK52K.jpg"
OPS = {
    "cutout": "cutout",
    "cutout+grabcut": "cutout:refine=true",
    "background": "background:white,shadow=true",
    "compose": "compose:format=jpeg,max_kb=500",
    "inspect": "inspect:amazon-main",
    "upscale-lanczos": "upscale:engine=lanczos",
    "upscale-esrgan": "upscale",
}


def bench(name: str, image: Image.Image, repeat: int) -> float:
    (op,) = parse_ops(OPS[name])
    if name in ("background", "compose"):
        from skuforge.images.cutout import cutout
        from skuforge.images.opspec import CutoutOp

        image = cutout(image, CutoutOp()).image
    run_op(image, op, {}, None)  # warm-up: model load, caches
    started = time.perf_counter()
    for _ in range(repeat):
        run_op(image, op, {}, None)
    return repeat / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="512,1500")
    parser.add_argument("--ops", default=",".join(OPS))
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}  sample: {SAMPLE.name}  repeat: {args.repeat}")
    print(f"{'op':<18}" + "".join(f"{s + ' px':>14}" for s in args.sizes.split(",")))
    for name in args.ops.split(","):
        cells = []
        for size in (int(s) for s in args.sizes.split(",")):
            image = Image.open(SAMPLE).convert("RGB")
            image.thumbnail((size, size), Image.Resampling.LANCZOS) if size < max(image.size) else None
            if size > max(image.size):
                scale = size / max(image.size)
                image = image.resize((round(image.width * scale), round(image.height * scale)))
            repeat = 1 if name == "upscale-esrgan" and size > 1000 else args.repeat
            cells.append(f"{bench(name, image, repeat):>10.2f} i/s")
        print(f"{name:<18}" + "".join(f"{c:>14}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
