"""`inspect`: a compliance report per image against a marketplace rule set, each failure with a human reason.

Rule sets are YAML data: the shipped ones live in `images/rules/` (`amazon-main`, `white-background`), and a
user may pass the path of their own file with the same keys. The measurements come from `pixels`, the same
functions `compose` aims with. The NSFW score comes from `skuforge.safety.nsfw` when that part is installed.
The NSFW gate fails closed: when a rule set asks for a score and none could be computed (the part is missing,
or the model failed on this image), the image fails with the reason, never passes unchecked.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skuforge import yamlfile
from skuforge.images.errors import OpSpecError
from skuforge.images.opspec import InspectOp, OpResult
from skuforge.images.pixels import as_array, blur_variance, content_bbox, white_border_share

log = logging.getLogger(__name__)


class Rules(BaseModel):
    """The thresholds of a rule set; a missing key is a rule that is not checked."""

    model_config = ConfigDict(extra="forbid")
    min_long_side: int | None = Field(None, ge=1)
    max_long_side: int | None = Field(None, ge=1)
    min_aspect: float | None = Field(None, gt=0, description="width / height")
    max_aspect: float | None = Field(None, gt=0)
    min_white_border: float | None = Field(None, ge=0, le=1, description="share of border pixels at RGB 255")
    min_fill: float | None = Field(None, ge=0, le=1, description="product bbox long side / frame side")
    max_fill: float | None = Field(None, ge=0, le=1)
    min_sharpness: float | None = Field(None, ge=0, description="variance of the Laplacian")
    max_nsfw: float | None = Field(None, ge=0, le=1)
    max_file_kb: float | None = Field(None, gt=0)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    rules: Rules


def shipped_rule_sets() -> list[str]:
    """Names of the rule sets that ship with skuforge."""
    folder = resources.files("skuforge.images") / "rules"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@functools.lru_cache(maxsize=32)
def load_rules(name: str) -> RuleSet:
    """A shipped rule set by name, or a YAML file by path; mistakes name the file and the key."""
    path = Path(name)
    if name.endswith((".yaml", ".yml")) and path.is_file():
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files("skuforge.images") / "rules" / f"{name}.yaml"
        if not resource.is_file():
            raise OpSpecError(
                f"Unknown image rule set '{name}'.",
                f"Use one of: {', '.join(shipped_rule_sets())}, or the path of a YAML rule file.",
            )
        text, source = resource.read_text(encoding="utf-8"), f"rule set '{name}'"
    try:
        return RuleSet.model_validate(yamlfile.load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise OpSpecError(
            f"Image rule set {source} is not valid: {exc}",
            f"Valid rule keys: {', '.join(Rules.model_fields)}.",
        ) from None


def nsfw(image: Image.Image) -> float | str:
    """The NSFW score from the safety part, or 'unavailable' (never a made-up number)."""
    try:
        from skuforge.safety.nsfw import nsfw_score
    except ImportError:
        return "unavailable"
    try:
        return round(float(nsfw_score(image)), 4)
    except Exception as exc:  # a missing extra or a model failure must not fail the inspection
        log.warning("NSFW scoring unavailable: %s", exc)
        return "unavailable"


def measure(image: Image.Image, file_kb: float | None = None) -> dict[str, Any]:
    """Resolution, aspect, white border share, fill, sharpness and NSFW score of one image."""
    rgb = as_array(image)
    h, w = rgb.shape[:2]
    bbox = content_bbox(rgb)
    fill = max((bbox[2] - bbox[0]) / w, (bbox[3] - bbox[1]) / h) if bbox else 0.0
    area = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) / (w * h) if bbox else 0.0
    return {
        "width": w,
        "height": h,
        "aspect": round(w / h, 4),
        "white_border": round(white_border_share(rgb), 4),
        "fill": round(fill, 4),
        "fill_area": round(area, 4),
        "sharpness": round(blur_variance(rgb, bbox), 1),
        "nsfw": nsfw(image),
        "file_kb": file_kb,
    }


def judge(m: Mapping[str, Any], rules: Rules) -> list[str]:
    """Human reasons for every rule the measurements break (empty: the image passes)."""
    reasons: list[str] = []
    long_side = max(m["width"], m["height"])
    size = f"{m['width']}x{m['height']}"
    if rules.min_long_side and long_side < rules.min_long_side:
        reasons.append(f"too small: long side is {long_side} px ({size}), need >= {rules.min_long_side} px")
    if rules.max_long_side and long_side > rules.max_long_side:
        reasons.append(f"too large: long side is {long_side} px ({size}), need <= {rules.max_long_side} px")
    if (
        rules.min_aspect
        and m["aspect"] < rules.min_aspect
        or rules.max_aspect
        and m["aspect"] > rules.max_aspect
    ):
        reasons.append(
            f"aspect ratio is {m['aspect']:.2f} ({size}), need between {rules.min_aspect or 0:.2f} "
            f"and {rules.max_aspect or float('inf'):.2f}"
        )
    if rules.min_white_border is not None and m["white_border"] < rules.min_white_border:
        reasons.append(
            f"background is not pure white: {_pct(m['white_border'], rules.min_white_border)} "
            f"of border pixels are RGB 255, "
            f"need >= {_pct(rules.min_white_border)}"
        )
    if rules.min_fill is not None and m["fill"] < rules.min_fill:
        reasons.append(
            f"product fills {_pct(m['fill'], rules.min_fill)} of the frame, need >= {_pct(rules.min_fill)}"
        )
    if rules.max_fill is not None and m["fill"] > rules.max_fill:
        reasons.append(
            f"product fills {_pct(m['fill'], rules.max_fill)} of the frame, need <= {_pct(rules.max_fill)}"
        )
    if rules.min_sharpness is not None and m["sharpness"] < rules.min_sharpness:
        reasons.append(
            f"image looks blurry: sharpness (Laplacian variance) {m['sharpness']}, "
            f"need >= {rules.min_sharpness}"
        )
    if rules.max_nsfw is not None and not isinstance(m["nsfw"], float):
        reasons.append(
            "image safety could not be checked (NSFW score unavailable); it is not cleared: install "
            "'skuforge[safety]' or review the image by hand"
        )
    elif rules.max_nsfw is not None and m["nsfw"] > rules.max_nsfw:
        reasons.append(f"image may be unsafe: NSFW score {m['nsfw']:.2f}, need <= {rules.max_nsfw:.2f}")
    if rules.max_file_kb and m.get("file_kb") and m["file_kb"] > rules.max_file_kb:
        reasons.append(f"file is {m['file_kb']:.0f} KB, need <= {rules.max_file_kb:.0f} KB")
    return reasons


def _pct(share: float, other: float | None = None) -> str:
    """A share as a percentage, with as many decimals as it takes to differ from the threshold."""
    for digits in (0, 1, 2):
        text = f"{share * 100:.{digits}f}%"
        if other is None or text != f"{other * 100:.{digits}f}%":
            return text
    return f"{share * 100:.2f}%"


def inspect_image(
    image: Image.Image, rules: str = "white-background", file_kb: float | None = None
) -> dict[str, Any]:
    """The compliance report: {'rules', 'passed', 'failures', 'metrics', 'not_checked'}."""
    rule_set = load_rules(rules)
    metrics = measure(image, file_kb)
    failures = judge(metrics, rule_set.rules)
    not_checked = (
        ["nsfw: unavailable"]
        if rule_set.rules.max_nsfw is not None and metrics["nsfw"] == "unavailable"
        else []
    )
    return {
        "rules": rule_set.name,
        "passed": not failures,
        "failures": failures,
        "metrics": metrics,
        "not_checked": not_checked,
    }


def inspect(
    image: Image.Image, config: InspectOp, row: Mapping[str, Any] | None = None, file_kb: float | None = None
) -> OpResult:
    """The `inspect` op: the image passes through unchanged; the report goes into the metrics."""
    return OpResult(image, {"inspect": inspect_image(image, config.rules, file_kb)})
