"""Cut-out quality: IoU (and MAE of alpha) of `cutout` against ground-truth masks, with and without GrabCut.

Two sets: the CCP clothing-parsing photos in $SKUFORGE_DATA/ccp-clothing-parsing (people in street scenes,
harder than packshots; masks are hard segmentations), and synthetic packshots rendered here with known masks.

    .venv/bin/python bench/eval_cutout.py [--limit N] [--synthetic N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from skuforge.eval.datasets import data_dir
from skuforge.images.cutout import cutout
from skuforge.images.opspec import CutoutOp


def synthetic(n: int, size: int = 512) -> Iterator[tuple[Image.Image, np.ndarray]]:
    """Packshots: a random product silhouette (boxes, ellipses), textured and shaded, on studio backdrops."""
    rng = np.random.default_rng(20240601)
    for _ in range(n):
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        cx, cy = rng.uniform(0.4, 0.6, 2) * size
        w, h = rng.uniform(0.2, 0.35, 2) * size
        draw.rounded_rectangle(
            (cx - w, cy - h, cx + w, cy + h), radius=int(rng.uniform(0, 0.2) * size), fill=255
        )
        for _ in range(rng.integers(0, 3)):
            ex, ey, er = cx + rng.uniform(-w, w), cy - h, rng.uniform(0.05, 0.15) * size
            draw.ellipse((ex - er, ey - er, ex + er, ey + er), fill=255)
        m = np.asarray(mask) > 127
        yy = np.linspace(0, 1, size)[:, None, None]
        top, bottom = rng.uniform(200, 255, 3), rng.uniform(180, 255, 3)
        backdrop = top * (1 - yy) + bottom * yy + rng.normal(0, 2, (size, size, 3))
        color = rng.uniform(10, 230, 3)
        shade = np.linspace(0.75, 1.15, size)[None, :, None]
        product = color * shade + rng.normal(0, 8, (size, size, 1))
        shadow = np.asarray(mask.filter(ImageFilter.GaussianBlur(size * 0.02)), dtype=np.float64)[..., None]
        backdrop = backdrop * (1 - 0.25 * np.roll(shadow, int(size * 0.02), axis=0) / 255)
        rgb = np.where(m[..., None], product, backdrop).clip(0, 255).astype(np.uint8)
        yield Image.fromarray(rgb, "RGB"), m


def ccp(limit: int) -> Iterator[tuple[Image.Image, np.ndarray]]:
    ccp = data_dir("ccp-clothing-parsing")
    for photo in sorted((ccp / "images").glob("*.jpg"))[:limit]:
        mask = np.asarray(Image.open(ccp / "masks" / f"{photo.stem}.png").convert("L")) > 127
        yield Image.open(photo).convert("RGB"), mask


def score(pairs: Iterator[tuple[Image.Image, np.ndarray]], refine: bool) -> dict[str, float]:
    ious, maes, started, n = [], [], time.perf_counter(), 0
    for image, truth in pairs:
        alpha = (
            np.asarray(cutout(image, CutoutOp(refine=refine)).image.getchannel("A")).astype(np.float64) / 255
        )
        predicted = alpha >= 0.5
        ious.append((predicted & truth).sum() / max(1, (predicted | truth).sum()))
        maes.append(np.abs(alpha - truth).mean())
        n += 1
    return {
        "n": n,
        "iou_mean": statistics.mean(ious),
        "iou_median": statistics.median(ious),
        "mae": statistics.mean(maes),
        "s_per_image": (time.perf_counter() - started) / max(1, n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=60, help="CCP photos to score")
    parser.add_argument("--synthetic", type=int, default=30, help="synthetic packshots to score")
    args = parser.parse_args()
    print(f"{'set':<22}{'grabcut':<9}{'n':>4}{'IoU mean':>10}{'IoU med':>9}{'MAE':>8}{'s/img':>8}")
    for name, make in (
        ("ccp (people)", lambda: ccp(args.limit)),
        ("synthetic packshots", lambda: synthetic(args.synthetic)),
    ):
        for refine in (False, True):
            r = score(make(), refine)
            print(
                f"{name:<22}{'yes' if refine else 'no':<9}{r['n']:>4}{r['iou_mean']:>10.3f}"
                f"{r['iou_median']:>9.3f}{r['mae']:>8.3f}{r['s_per_image']:>8.2f}"
            )


if __name__ == "__main__":
    main()
