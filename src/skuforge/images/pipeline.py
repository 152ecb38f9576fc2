"""Chains of image ops: parse a spec once, run it over one image, write the produced file.

This is the API that the CLI, recipe steps (`images: {column: image, ops: [...]}`) and the batch runner
share:

    ops = parse_ops("cutout,background:white,compose:fill=0.85,size=1600")
    result = run_pipeline(image, ops, row)          # in memory
    output = process_image(ref, ops, out_dir, name)  # a path or URL in, a file out, JSON-able metrics

Each op is a function (image, config, row) -> OpResult. The last op that encoded a file (compose) decides the
format; otherwise RGBA is written as PNG and RGB as JPEG.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from skuforge.images.opspec import (
    BackgroundOp,
    ComposeOp,
    CutoutOp,
    InspectOp,
    OpBase,
    OpResult,
    RestyleOp,
    UpscaleOp,
    format_ops,
    parse_ops,
)
from skuforge.images.source import FetchPolicy, load_image

__all__ = ["PipelineResult", "format_ops", "parse_ops", "process_image", "run_op", "run_pipeline"]
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}


@dataclass
class PipelineResult:
    """The final image, its encoded file, one metrics dict per op, and the last `inspect` report."""

    image: Image.Image
    encoded: bytes
    format: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] | None = None


def run_op(
    image: Image.Image,
    op: OpBase,
    row: Mapping[str, Any],
    base_dir: Path | None,
    file_kb: float | None = None,
) -> OpResult:
    """Dispatch one op; model-backed modules are imported only when their op is used."""
    if isinstance(op, CutoutOp):
        from skuforge.images.cutout import cutout

        return cutout(image, op, row)
    if isinstance(op, UpscaleOp):
        from skuforge.images.upscale import upscale

        return upscale(image, op, row)
    if isinstance(op, BackgroundOp):
        from skuforge.images.background import background

        return background(image, op, row, base_dir)
    if isinstance(op, ComposeOp):
        from skuforge.images.compose import compose

        return compose(image, op, row)
    if isinstance(op, InspectOp):
        from skuforge.images.compliance import inspect

        return inspect(image, op, row, file_kb)
    if isinstance(op, RestyleOp):
        from skuforge.images.restyle import restyle

        return restyle(image, op, row)
    raise TypeError(f"not an image op config: {op!r}")


def default_encoding(image: Image.Image) -> tuple[bytes, str]:
    """RGBA as PNG (keeps transparency), everything else as JPEG quality 92."""
    buffer = io.BytesIO()
    if image.mode in ("RGBA", "LA", "PA"):
        image.save(buffer, "PNG", optimize=True)
        return buffer.getvalue(), "png"
    from skuforge.images.compose import save_jpeg

    return save_jpeg(image, 92), "jpeg"


def run_pipeline(
    image: Image.Image,
    ops: Sequence[OpBase] | str,
    row: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> PipelineResult:
    """Run ops in order over one image; `inspect` sees the file as it will be written."""
    chain = parse_ops(ops) if isinstance(ops, str) else list(ops)
    encoded: bytes | None = None
    fmt: str | None = None
    steps: list[dict[str, Any]] = []
    report: dict[str, Any] | None = None
    for op in chain:
        file_kb = round(len(encoded) / 1024, 1) if encoded is not None else None
        result = run_op(image, op, row or {}, base_dir, file_kb)
        if "inspect" in result.metrics:
            report = result.metrics["inspect"]
        elif result.image is not image:
            encoded, fmt = result.encoded, result.format
        image = result.image
        steps.append({"op": op.op, **result.metrics})
    if encoded is None or fmt is None:
        encoded, fmt = default_encoding(image)
    return PipelineResult(image, encoded, fmt, steps, report)


def process_image(
    ref: str,
    ops: Sequence[OpBase] | str,
    out_dir: Path,
    name: str,
    row: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    policy: FetchPolicy | None = None,
) -> dict[str, Any]:
    """Load one image (path or URL), run the pipeline, write `<out_dir>/<name>.<ext>`; JSON-able output."""
    image = load_image(ref, base_dir, policy)
    result = run_pipeline(image, ops, row, base_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.{EXTENSIONS[result.format]}"
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(result.encoded)
    tmp.replace(path)
    return {
        "path": str(path),
        "format": result.format,
        "size": list(result.image.size),
        "steps": result.steps,
        "inspect": result.report,
    }
