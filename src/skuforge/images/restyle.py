"""`restyle` (optional, off by default): a generated background behind the unchanged product.

Two backends:
- `endpoint`: an OpenAI-compatible `POST {base_url}/images/edits` (multipart: the cut-out PNG, whose
  transparent area is what the model may repaint, the prompt, model, size; answer `b64_json`);
- `diffusers`: a local inpainting pipeline from weights the user configured (`weights=`), on a GPU.
Whatever the backend returns, the original cut-out is pasted back over it, so the product pixels (alpha 255)
are exactly the input's. The op needs a cut-out (RGBA): run `cutout` first.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from skuforge.errors import ConfigError, ProviderError, require
from skuforge.images.background import place
from skuforge.images.errors import ImageError
from skuforge.images.opspec import OpResult, RestyleOp


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def request_edit(product: Image.Image, config: RestyleOp) -> Image.Image:
    """Ask an OpenAI-compatible images endpoint for a new background; returns the generated image."""
    import aiohttp

    if not config.base_url:
        raise ConfigError(
            "The restyle op needs an images endpoint: no base_url was given.",
            "Add it to the op, e.g. 'restyle:base_url=http://localhost:8000/v1,prompt=...'.",
        )
    url = config.base_url.rstrip("/") + "/images/edits"
    form = aiohttp.FormData()
    form.add_field("image", _png(product), filename="product.png", content_type="image/png")
    for name, value in (
        ("prompt", config.prompt),
        ("model", config.model),
        ("size", config.size),
        ("n", "1"),
        ("response_format", "b64_json"),
    ):
        form.add_field(name, value)
    headers = {}
    if key := os.environ.get(config.api_key_env):
        headers["Authorization"] = f"Bearer {key}"
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=form, headers=headers) as response,
        ):
            body = await response.read()
            if response.status >= 400:
                raise ProviderError(
                    f"The images endpoint {url} answered HTTP {response.status}: {body[:200]!r}.",
                    "Check base_url, model and the API key variable (api_key_env).",
                    status=response.status,
                )
            payload = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderError(
            f"The images endpoint {url} could not be reached: {exc}.",
            "Check that the server runs and base_url is right.",
        ) from None
    try:
        data = base64.b64decode(payload["data"][0]["b64_json"])
        return Image.open(io.BytesIO(data)).convert("RGB")
    except (KeyError, IndexError, TypeError, ValueError, OSError) as exc:
        raise ProviderError(
            f"The images endpoint {url} returned no usable image ({exc}).",
            "The answer must be JSON with data[0].b64_json holding a PNG or JPEG.",
        ) from None


def diffusers_edit(product: Image.Image, config: RestyleOp) -> Image.Image:
    """Inpaint the background with a local diffusers pipeline (needs configured weights and a GPU)."""
    diffusers = require("diffusers", "The restyle op with backend=diffusers", "restyle")
    if not config.weights or not Path(config.weights).is_dir():
        raise ConfigError(
            f"The restyle op (diffusers) needs local weights: '{config.weights or ''}' is not a folder.",
            "Download an inpainting model once, then pass its folder: "
            "'restyle:backend=diffusers,weights=/path'.",
        )
    torch = require("torch", "The restyle op with backend=diffusers", "restyle")
    pipe = diffusers.AutoPipelineForInpainting.from_pretrained(config.weights, local_files_only=True)
    pipe = pipe.to(config.device)
    mask = Image.eval(product.getchannel("A"), lambda a: 255 - a)
    with torch.inference_mode():
        out = pipe(prompt=config.prompt, image=product.convert("RGB"), mask_image=mask).images[0]
    return out.convert("RGB")


def restyle(image: Image.Image, config: RestyleOp, row: Mapping[str, Any] | None = None) -> OpResult:
    """Generate a background, then paste the original cut-out back so the product is never changed."""
    if image.mode != "RGBA":
        raise ImageError(
            "The restyle op needs a cut-out (an image with an alpha channel), got a flat image.",
            "Put 'cutout' before 'restyle', e.g. --ops cutout,restyle:prompt=...",
        )
    if config.backend == "endpoint":
        generated = asyncio.run(request_edit(image, config))
    else:
        generated = diffusers_edit(image, config)
    if generated.size != image.size:
        generated = generated.resize(image.size, Image.Resampling.LANCZOS)
    import numpy as np

    out = place(image, np.asarray(generated))
    return OpResult(
        out,
        {
            "restyle": config.backend,
            "model": config.model if config.backend == "endpoint" else config.weights,
        },
    )
