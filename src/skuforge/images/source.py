"""Reading a row's image: a path relative to the catalog's folder, or an http(s) URL fetched safely.

Decoding is guarded: Pillow's decompression-bomb limit is set for our decode path (`MAX_PIXELS`, default
80 megapixels), its warning is turned into an error, and truncated files are never "loaded anyway". Each
problem becomes an `ImageError` that names the image, so a batch records it for that row and goes on.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from skuforge.images.errors import ImageError
from skuforge.images.fetch import FetchPolicy, fetch

MAX_PIXELS = int(os.environ.get("SKUFORGE_MAX_IMAGE_PIXELS", str(80_000_000)))
_lock = threading.Lock()

__all__ = ["FetchPolicy", "MAX_PIXELS", "decode", "load_image", "read_bytes"]


@contextlib.contextmanager
def _bomb_guard() -> Iterator[None]:
    """Our pixel limit and strict decoding for the duration of one decode, restored afterwards."""
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_pixels, saved_truncated = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = MAX_PIXELS, False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved_pixels, saved_truncated


def decode(data: bytes, name: str) -> Image.Image:
    """Decode image bytes fully (so truncation shows now), upright per EXIF, as RGB or RGBA."""
    hint = "Replace the file with a complete, ordinary JPEG/PNG/WebP image."
    try:
        with _bomb_guard():
            opened = Image.open(io.BytesIO(data))
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"Image '{name}' is too large to decode safely (more than {MAX_PIXELS:,} pixels).",
            "Resize it below the limit, or raise SKUFORGE_MAX_IMAGE_PIXELS if the image is trusted.",
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"Image '{name}' is not an image file Pillow can read.", hint) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"Image '{name}' is damaged or truncated: {exc}.", hint) from None
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    return image.convert("RGBA" if has_alpha else "RGB")


def read_bytes(ref: str, base_dir: Path | None = None, policy: FetchPolicy | None = None) -> bytes:
    """The bytes of a path (relative to `base_dir`) or of an http(s) URL fetched under the policy."""
    ref = ref.strip()
    if not ref:
        raise ImageError("The image cell is empty.", "Fill in an image path or URL for this row.")
    if "://" in ref:
        return fetch(ref, policy)
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ImageError(
            f"Image file '{ref}' was not found (looked at {path}).",
            "Paths are relative to the catalog file's folder; check the image column.",
        )
    return path.read_bytes()


def load_image(ref: str, base_dir: Path | None = None, policy: FetchPolicy | None = None) -> Image.Image:
    """Read and decode one row's image; every failure is an ImageError naming the image."""
    return decode(read_bytes(ref, base_dir, policy), ref)
