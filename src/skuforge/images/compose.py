"""The marketplace main image: the product centred and scaled to a target fill on a pure white canvas.

`compose` finds the product with the same measurement `inspect` uses (`pixels.content_bbox`), so the fill it
aims at is the fill `inspect` reports. It encodes the file itself (JPEG, PNG or WebP, lowering quality
stepwise to meet a size budget) and hands on the decoded file, so later ops see exactly what is written.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from skuforge.images.errors import ImageError, OpSpecError
from skuforge.images.opspec import ComposeOp, OpResult
from skuforge.images.pixels import content_bbox, flatten, parse_color
from skuforge.images.upscale import enlarge

QUALITY_STEP = 5
ESRGAN_FROM = 1.5  # with upscaler=auto, enlargements from this factor use Real-ESRGAN


def parse_aspect(text: str) -> float:
    """'1:1', '4:5' or '0.8' -> width / height."""
    try:
        if ":" in text:
            w, h = (float(p) for p in text.split(":", 1))
            ratio = w / h
        else:
            ratio = float(text)
    except (ValueError, ZeroDivisionError):
        ratio = -1.0
    if not 0.1 <= ratio <= 10:
        raise OpSpecError(
            f"Aspect '{text}' of op 'compose' is not valid.", "Write it as '1:1', '4:5' or '0.8'."
        )
    return ratio


def frame_size(product: tuple[int, int], config: ComposeOp) -> tuple[int, int]:
    """Frame (width, height): explicit `size`, else the product's natural size within [min_side, max_side]."""
    ratio = parse_aspect(config.aspect)
    pw, ph = product
    width = max(pw / config.fill, ratio * ph / config.fill)
    long_side = config.size or min(
        config.max_side, max(config.min_side, math.ceil(max(width, width / ratio)))
    )
    if ratio >= 1:
        return long_side, max(1, round(long_side / ratio))
    return max(1, round(long_side * ratio)), long_side


def scale_product(crop: Image.Image, frame: tuple[int, int], config: ComposeOp) -> tuple[Image.Image, str]:
    """Scale the product crop so its long side reaches `fill` of the frame; no resampling at scale 1.

    Resampling softens the outermost pixels, which can then fall within the white tolerance and shrink the
    measured box by a pixel; the measured shortfall is added back once, so `inspect` sees the target fill.
    """
    scale = min(config.fill * frame[0] / crop.width, config.fill * frame[1] / crop.height)
    target = (math.ceil(crop.width * scale - 1e-6), math.ceil(crop.height * scale - 1e-6))
    size = (min(frame[0], max(1, target[0])), min(frame[1], max(1, target[1])))
    if size == crop.size:
        return crop, "none"
    product, used = _resize(crop, size, scale, config)
    canvas_color = parse_color(config.canvas, "compose canvas")
    box = content_bbox(np.asarray(product), canvas_color)
    if box is not None:
        short = max(target[0] - (box[2] - box[0]), target[1] - (box[3] - box[1]))
        if short > 0:
            grow = (size[0] + short) / size[0]
            size = (min(frame[0], math.ceil(size[0] * grow)), min(frame[1], math.ceil(size[1] * grow)))
            product, used = _resize(crop, size, scale * grow, config)
    return product, used


def _resize(
    crop: Image.Image, size: tuple[int, int], scale: float, config: ComposeOp
) -> tuple[Image.Image, str]:
    if size[0] <= crop.width and size[1] <= crop.height:
        return crop.resize(size, Image.Resampling.LANCZOS), "lanczos"
    engine = config.upscaler
    if engine == "auto":
        engine = "esrgan" if scale >= ESRGAN_FROM else "lanczos"
    return enlarge(crop, size, engine="auto" if engine == "esrgan" else "lanczos")


def save_jpeg(image: Image.Image, quality: int) -> bytes:
    """JPEG with optimised Huffman tables; 4:4:4 chroma at high quality so product edges stay crisp.

    Pillow sizes its optimise buffer at one byte per pixel, which very noisy images overflow
    ("Suspension not allowed here"): those are written without the optimisation.
    """
    options: dict[str, Any] = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    rgb = image.convert("RGB")
    for optimize in (True, False):
        buffer = io.BytesIO()
        try:
            rgb.save(buffer, "JPEG", optimize=optimize, **options)
        except OSError:
            if not optimize:
                raise
            continue
        return buffer.getvalue()
    raise AssertionError("unreachable")


def encode(image: Image.Image, config: ComposeOp) -> tuple[bytes, int]:
    """Encode in the configured format, lowering quality stepwise until under `max_kb` (or min_quality)."""
    budget = config.max_kb * 1024 if config.max_kb else None
    quality = config.quality
    while True:
        buffer = io.BytesIO()
        if config.format == "jpeg":
            buffer.write(save_jpeg(image, quality))
        elif config.format == "webp":
            image.save(buffer, "WEBP", quality=quality, method=4)
        else:
            image.save(buffer, "PNG", optimize=True)
        data = buffer.getvalue()
        lower = quality - QUALITY_STEP
        if budget is None or len(data) <= budget or config.format == "png" or lower < config.min_quality:
            return data, quality
        quality = lower


def compose(image: Image.Image, config: ComposeOp, row: Mapping[str, Any] | None = None) -> OpResult:
    """Crop to the product, scale it to the target fill, centre it on the canvas and encode the file."""
    canvas_color = parse_color(config.canvas, "compose canvas")
    flat = flatten(image, canvas_color) if image.mode in ("RGBA", "LA", "PA") else image.convert("RGB")
    bbox = content_bbox(np.asarray(flat), canvas_color)
    if bbox is None:
        raise ImageError(
            "compose found no product: the image is blank (all canvas colour).",
            "Check the source image, or run 'cutout' only on photos that show a product.",
        )
    crop = flat.crop(bbox)
    frame = frame_size(crop.size, config)
    product, resampler = scale_product(crop, frame, config)
    out = Image.new("RGB", frame, canvas_color)
    out.paste(product, ((frame[0] - product.width) // 2, (frame[1] - product.height) // 2))
    data, quality = encode(out, config)
    written = Image.open(io.BytesIO(data))
    written.load()
    metrics = {
        "size": list(frame),
        "format": config.format,
        "quality": quality if config.format != "png" else None,
        "file_kb": round(len(data) / 1024, 1),
        "over_budget": bool(config.max_kb and len(data) > config.max_kb * 1024),
        "resampler": resampler,
    }
    return OpResult(written.convert("RGB"), metrics, encoded=data, format=config.format)
