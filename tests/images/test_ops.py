"""Each op on real pixels: product pixels untouched, fill and budget met, Real-ESRGAN runs on the CPU."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from skuforge.images import ImageError, parse_ops, run_pipeline
from skuforge.images.background import background
from skuforge.images.compose import compose
from skuforge.images.cutout import cutout, model_path
from skuforge.images.opspec import BackgroundOp, ComposeOp, CutoutOp, UpscaleOp
from skuforge.images.pixels import WHITE, content_bbox, flatten
from skuforge.images.upscale import esrgan_available, upscale


def _cutout_fixture(seed: int = 1) -> Image.Image:
    """An RGBA product: random opaque pixels inside a disc, a soft edge ring, transparent outside."""
    rng = np.random.default_rng(seed)
    size = 120
    yy, xx = np.mgrid[:size, :size]
    dist = np.hypot(yy - 60, xx - 60)
    alpha = np.clip((45 - dist) * 60, 0, 255).astype(np.uint8)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


@pytest.mark.parametrize(
    "config",
    [
        BackgroundOp(color="white"),
        BackgroundOp(color="#336699"),
        BackgroundOp(gradient="#ffffff-#888888", shadow=True),
    ],
)
def test_background_leaves_opaque_product_pixels_byte_identical(config: BackgroundOp) -> None:
    product = _cutout_fixture()
    out = background(product, config).image
    rgba = np.asarray(product)
    opaque = rgba[..., 3] == 255
    assert opaque.sum() > 1000
    assert np.array_equal(np.asarray(out)[opaque], rgba[..., :3][opaque])


def test_background_really_replaces_the_transparent_area() -> None:
    out = np.asarray(background(_cutout_fixture(), BackgroundOp(color="#336699")).image)
    assert tuple(out[0, 0]) == (0x33, 0x66, 0x99)


def test_background_on_a_flat_image_asks_for_a_cutout_first() -> None:
    with pytest.raises(ImageError, match="needs a cut-out"):
        background(Image.new("RGB", (10, 10)), BackgroundOp())


def test_unscaled_compose_keeps_product_pixels_byte_identical() -> None:
    product = _cutout_fixture()
    left, top, right, bottom = content_bbox(np.asarray(flatten(product, WHITE)))
    width, height = right - left, bottom - top
    config = ComposeOp(fill=0.5, size=2 * max(width, height), format="png", min_side=1)
    result = compose(product, config)
    assert result.metrics["resampler"] == "none"
    written = np.asarray(Image.open(io.BytesIO(result.encoded)).convert("RGB"))
    x0 = (written.shape[1] - width) // 2 - left
    y0 = (written.shape[0] - height) // 2 - top
    rgba = np.asarray(product)
    ys, xs = np.nonzero(rgba[..., 3] == 255)
    assert len(ys) > 1000
    assert np.array_equal(written[ys + y0, xs + x0], rgba[ys, xs, :3])


def test_compose_reaches_the_fill_that_inspect_measures(packshot: Callable) -> None:
    image, _ = packshot(300, seed=3)
    ops = parse_ops("cutout,background:white,compose:fill=0.85,size=1000,format=jpeg,inspect:amazon-main")
    result = run_pipeline(image, ops)
    metrics = result.report["metrics"]
    assert result.image.size == (1000, 1000)
    assert metrics["fill"] >= 0.85 and metrics["white_border"] == 1.0


def test_compose_lowers_jpeg_quality_until_under_budget() -> None:
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8), "RGB")
    result = compose(noisy, ComposeOp(size=1000, max_kb=300))
    assert result.metrics["quality"] < 92
    assert len(result.encoded) <= 300 * 1024
    assert result.metrics["over_budget"] is False


def test_compose_of_a_blank_image_says_no_product_was_found() -> None:
    with pytest.raises(ImageError, match="no product"):
        compose(Image.new("RGB", (50, 50), "white"), ComposeOp())


def test_real_esrgan_runs_on_the_cpu_for_a_small_image(packshot: Callable) -> None:
    assert esrgan_available() is None, esrgan_available()
    image, _ = packshot(64)
    result = upscale(image, UpscaleOp())
    assert result.metrics["upscaler"] == "esrgan:animevideov3-x2"
    assert result.image.size == (128, 128)
    # the model's output follows the input: the product stays where it was
    small = np.asarray(result.image.resize((64, 64), Image.Resampling.BOX)).astype(int)
    assert np.abs(small - np.asarray(image).astype(int)).mean() < 12


def test_upscale_keeps_alpha_and_can_use_x4plus() -> None:
    result = upscale(_cutout_fixture().resize((48, 48)), UpscaleOp(model="x4plus"))
    assert result.image.mode == "RGBA" and result.image.size == (192, 192)
    assert result.metrics["upscaler"] == "esrgan:x4plus"


def test_upscale_falls_back_to_lanczos_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from skuforge.images import upscale as module

    monkeypatch.setenv("SKUFORGE_NO_ESRGAN", "1")
    module._esrgan.cache_clear()
    module._warned.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="skuforge.images.upscale"):
            first = upscale(Image.new("RGB", (32, 32), "red"), UpscaleOp())
            upscale(Image.new("RGB", (32, 32), "red"), UpscaleOp())
    finally:
        module._esrgan.cache_clear()
    assert first.metrics["upscaler"] == "lanczos" and first.image.size == (64, 64)
    assert len([r for r in caplog.records if "Lanczos" in r.getMessage()]) == 1


def test_cutout_model_is_found_without_importing_rembg() -> None:
    import sys

    path = model_path()
    assert path.name == "u2netp.onnx" and path.stat().st_size > 4_000_000
    assert "rembg" not in sys.modules


def test_cutout_separates_a_packshot_from_its_background(packshot: Callable) -> None:
    image, mask = packshot(320, seed=5)
    result = cutout(image, CutoutOp())
    alpha = np.asarray(result.image.getchannel("A")) >= 128
    iou = (alpha & mask).sum() / (alpha | mask).sum()
    assert result.image.mode == "RGBA"
    assert iou > 0.9, iou


def test_grabcut_refinement_keeps_a_good_mask_good(packshot: Callable) -> None:
    image, mask = packshot(320, seed=6)
    alpha = np.asarray(cutout(image, CutoutOp(refine=True, matte=False)).image.getchannel("A"))
    assert set(np.unique(alpha)) <= {0, 255}
    predicted = alpha == 255
    assert (predicted & mask).sum() / (predicted | mask).sum() > 0.9
