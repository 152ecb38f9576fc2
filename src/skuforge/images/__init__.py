"""The image engine: ops (upscale, cutout, background, compose, inspect, restyle) chained into pipelines.

    from skuforge.images import parse_ops, run_pipeline, inspect_image
    ops = parse_ops("cutout,background:white,compose:fill=0.85,size=1600,format=jpeg,max_kb=500")
    result = run_pipeline(image, ops)                  # .image, .encoded, .format, .steps, .report
    report = inspect_image(image, "amazon-main")       # {'passed', 'failures', 'metrics', ...}

Model-backed ops import their runtimes only when used. Catalog batches: `skuforge.images.batch`.
"""

from skuforge.images.compliance import inspect_image, load_rules, shipped_rule_sets
from skuforge.images.errors import FetchRefused, ImageError, OpSpecError
from skuforge.images.fetch import FetchPolicy
from skuforge.images.opspec import OpBase, OpResult, format_ops, parse_ops
from skuforge.images.pipeline import PipelineResult, process_image, run_pipeline
from skuforge.images.source import load_image

__all__ = [
    "FetchPolicy",
    "FetchRefused",
    "ImageError",
    "OpBase",
    "OpResult",
    "OpSpecError",
    "PipelineResult",
    "format_ops",
    "inspect_image",
    "load_image",
    "load_rules",
    "parse_ops",
    "process_image",
    "run_pipeline",
    "shipped_rule_sets",
]
