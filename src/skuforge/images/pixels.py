"""Pixel measurements shared by the ops and `inspect`, so that what `compose` aims at is what `inspect` sees.

`content_bbox` decides where the product is; `compose` scales that box to the target fill and `inspect`
measures the fill from the same box. Colours are parsed here once for every op.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageColor

from skuforge.images.errors import OpSpecError

WHITE = (255, 255, 255)
CONTENT_TOLERANCE = 6  # a pixel further than this from the canvas colour (any channel) is content
MIN_CONTENT_SHARE = 0.002  # rows/columns with fewer content pixels than this are noise


def parse_color(value: str, where: str) -> tuple[int, int, int]:
    """'white', '#f0f0f0', 'rgb(240,240,240)' -> an RGB tuple; a bad value names where it came from."""
    try:
        rgb = ImageColor.getrgb(value.strip())
    except ValueError:
        raise OpSpecError(
            f"Colour '{value}' in {where} is not a colour.",
            "Use a name ('white'), a hex code ('#f0f0f0') or 'rgb(240,240,240)'.",
        ) from None
    return (rgb[0], rgb[1], rgb[2])


def as_array(image: Image.Image) -> np.ndarray:
    """RGB uint8 array of an image; RGBA is flattened onto white first (how a viewer shows it)."""
    if image.mode == "RGBA":
        return np.asarray(flatten(image, WHITE))
    return np.asarray(image.convert("RGB"))


def flatten(image: Image.Image, color: tuple[int, int, int]) -> Image.Image:
    """Composite an RGBA image onto a colour. Pixels with alpha 255 keep their exact values."""
    rgba = np.asarray(image.convert("RGBA"))
    alpha = rgba[..., 3:4].astype(np.uint16)
    base = np.array(color, dtype=np.uint16)
    mixed = (rgba[..., :3].astype(np.uint16) * alpha + base * (255 - alpha) + 127) // 255
    return Image.fromarray(mixed.astype(np.uint8), "RGB")


def content_mask(rgb: np.ndarray, canvas: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Pixels that differ from the canvas colour by more than the tolerance in any channel."""
    diff = np.abs(rgb.astype(np.int16) - np.array(canvas, dtype=np.int16))
    return diff.max(axis=2) > CONTENT_TOLERANCE


def content_bbox(rgb: np.ndarray, canvas: tuple[int, int, int] = WHITE) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the non-canvas content, ignoring sparse noise; None for a blank image."""
    mask = content_mask(rgb, canvas)
    return _mask_bbox(mask)


def alpha_bbox(alpha: np.ndarray, threshold: int = 1) -> tuple[int, int, int, int] | None:
    """Bounding box of the pixels at or above an alpha threshold, ignoring sparse noise."""
    return _mask_bbox(alpha >= threshold)


def _mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    h, w = mask.shape
    cols = np.flatnonzero(mask.sum(axis=0) > max(0, MIN_CONTENT_SHARE * h))
    rows = np.flatnonzero(mask.sum(axis=1) > max(0, MIN_CONTENT_SHARE * w))
    if cols.size == 0 or rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def border_pixels(rgb: np.ndarray, band: int | None = None) -> np.ndarray:
    """The pixels of the outer band of the frame (1% of the short side, at least 1 px), as an (N, 3) array."""
    h, w = rgb.shape[:2]
    band = band or max(1, round(0.01 * min(h, w)))
    parts = [rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3)]
    parts += [rgb[band:-band, :band].reshape(-1, 3), rgb[band:-band, -band:].reshape(-1, 3)]
    return np.concatenate(parts)


def white_border_share(rgb: np.ndarray) -> float:
    """Share of border pixels that are exactly RGB (255, 255, 255)."""
    border = border_pixels(rgb)
    return float((border == 255).all(axis=1).mean()) if len(border) else 0.0


def blur_variance(rgb: np.ndarray, bbox: tuple[int, int, int, int] | None = None) -> float:
    """Variance of the Laplacian over the product box at a fixed scale (long side 512): low means blurry."""
    import cv2

    if bbox is not None:
        left, top, right, bottom = bbox
        rgb = rgb[top:bottom, left:right]
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    scale = 512 / max(gray.shape)
    if scale < 1:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
