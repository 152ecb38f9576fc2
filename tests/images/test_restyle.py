"""`restyle` through an OpenAI-compatible images endpoint (a real local server); the product is kept."""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from skuforge.errors import ConfigError, ExtraMissing, ProviderError
from skuforge.images import ImageError
from skuforge.images.opspec import RestyleOp
from skuforge.images.restyle import restyle


def _product() -> Image.Image:
    rng = np.random.default_rng(2)
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[16:48, 16:48, :3] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    rgba[16:48, 16:48, 3] = 255
    return Image.fromarray(rgba, "RGBA")


def test_endpoint_background_keeps_the_product_pixels(server, png: Callable) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, object] = {}

    async def edits(request: web.Request) -> web.Response:
        form = await request.post()
        seen.update(prompt=form["prompt"], model=form["model"], auth=request.headers.get("Authorization"))
        upload = form["image"]
        seen["upload_mode"] = Image.open(upload.file).mode  # type: ignore[union-attr]
        generated = Image.new("RGB", (128, 128), (10, 200, 30))  # another size: it must be fitted
        return web.json_response({"data": [{"b64_json": base64.b64encode(png(generated)).decode()}]})

    server.route("POST", "/v1/images/edits", edits)
    server.start()
    product = _product()
    config = RestyleOp(prompt="on a wooden table", base_url=server.url("/v1"), api_key_env="TEST_IMAGES_KEY")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEST_IMAGES_KEY", "sk-test")
        out = np.asarray(restyle(product, config).image)
    rgba = np.asarray(product)
    opaque = rgba[..., 3] == 255
    assert np.array_equal(out[opaque], rgba[..., :3][opaque])
    assert tuple(out[0, 0]) == (10, 200, 30)
    assert seen == {
        "prompt": "on a wooden table",
        "model": "gpt-image-1",
        "auth": "Bearer sk-test",
        "upload_mode": "RGBA",
    }


def test_endpoint_error_status_is_reported_with_the_url(server) -> None:  # type: ignore[no-untyped-def]
    async def edits(request: web.Request) -> web.Response:
        return web.json_response({"error": "bad model"}, status=400)

    server.route("POST", "/v1/images/edits", edits)
    server.start()
    with pytest.raises(ProviderError, match="answered HTTP 400"):
        restyle(_product(), RestyleOp(base_url=server.url("/v1")))


def test_endpoint_without_base_url_says_how_to_configure_it() -> None:
    with pytest.raises(ConfigError, match="no base_url"):
        restyle(_product(), RestyleOp())


def test_diffusers_backend_errors_clearly_when_not_configured() -> None:
    with pytest.raises((ExtraMissing, ConfigError)) as caught:
        restyle(_product(), RestyleOp(backend="diffusers"))
    message = str(caught.value)
    assert "pip install 'skuforge[restyle]'" in message or "needs local weights" in message


def test_restyle_needs_a_cutout() -> None:
    with pytest.raises(ImageError, match="needs a cut-out"):
        restyle(Image.new("RGB", (8, 8)), RestyleOp(base_url="http://127.0.0.1:9/v1"))
