"""Background replacement: a cut-out (RGBA) onto a colour, a gradient or a template, with an optional shadow.

The product pixels are never altered: wherever alpha is 255 the output pixel is the input pixel, byte for
byte (a test pins this). Only partly transparent edge pixels are blended, and the shadow is drawn on the
background layer beneath the product.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from skuforge.images.errors import ImageError, OpSpecError
from skuforge.images.opspec import BackgroundOp, OpResult
from skuforge.images.pixels import parse_color


def backdrop(config: BackgroundOp, size: tuple[int, int], base_dir: Path | None = None) -> np.ndarray:
    """The background layer as an RGB uint8 array: template, gradient or plain colour."""
    w, h = size
    if config.template:
        path = Path(config.template)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise OpSpecError(
                f"Background template '{config.template}' was not found (looked at {path}).",
                "Give a path to an image file, absolute or relative to the catalog's folder.",
            )
        with Image.open(path) as template:
            return np.asarray(ImageOps.fit(template.convert("RGB"), size, Image.Resampling.LANCZOS))
    if config.gradient:
        top_text, sep, bottom_text = config.gradient.partition("-")
        if not sep:
            raise OpSpecError(
                f"Gradient '{config.gradient}' needs two colours.", "Write it as '#ffffff-#dddddd'."
            )
        top = np.array(parse_color(top_text, "background gradient"), dtype=np.float32)
        bottom = np.array(parse_color(bottom_text, "background gradient"), dtype=np.float32)
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        column = np.round(top * (1 - t) + bottom * t).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(column, (h, w, 3)))
    color = parse_color(config.color, "background")
    return np.full((h, w, 3), color, dtype=np.uint8)


def drop_shadow(layer: np.ndarray, alpha: np.ndarray, config: BackgroundOp) -> np.ndarray:
    """Darken the background under a blurred, offset copy of the product's silhouette."""
    h, w = alpha.shape
    shift = round(config.shadow_offset * h)
    moved = np.zeros_like(alpha)
    if shift >= 0:
        moved[shift:] = alpha[: h - shift]
    else:
        moved[:shift] = alpha[-shift:]
    radius = max(1.0, config.shadow_blur * max(w, h))
    soft = Image.fromarray(moved, "L").filter(ImageFilter.GaussianBlur(radius))
    strength = np.asarray(soft, dtype=np.float32)[..., None] / 255.0 * config.shadow_opacity
    return np.round(layer.astype(np.float32) * (1.0 - strength)).astype(np.uint8)


def place(product: Image.Image, layer: np.ndarray) -> Image.Image:
    """Blend RGBA over an RGB layer; pixels with alpha 255 are copied unchanged."""
    rgba = np.asarray(product.convert("RGBA"))
    rgb, alpha = rgba[..., :3], rgba[..., 3]
    a = alpha[..., None].astype(np.uint16)
    mixed = ((rgb.astype(np.uint16) * a + layer.astype(np.uint16) * (255 - a) + 127) // 255).astype(np.uint8)
    opaque = (alpha == 255)[..., None]
    return Image.fromarray(np.where(opaque, rgb, mixed), "RGB")


def background(
    image: Image.Image,
    config: BackgroundOp,
    row: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> OpResult:
    """Replace the background of a cut-out. Needs an alpha channel: run `cutout` first."""
    if image.mode not in ("RGBA", "LA", "PA"):
        raise ImageError(
            "The background op needs a cut-out (an image with an alpha channel), got a flat image.",
            "Put 'cutout' before 'background', e.g. --ops cutout,background:white,compose",
        )
    product = image.convert("RGBA")
    layer = backdrop(config, product.size, base_dir)
    if config.shadow:
        layer = drop_shadow(layer, np.asarray(product.getchannel("A")), config)
    kind = "template" if config.template else "gradient" if config.gradient else "color"
    return OpResult(place(product, layer), {"background": kind, "shadow": config.shadow})
