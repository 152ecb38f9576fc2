"""Typed configs for image ops, and the parser for op specs written on the command line or in a recipe.

A spec is a comma-separated chain: `cutout,background:white,compose:fill=0.85,size=1600,format=jpeg`.
A token with `:` or without `=` starts a new op; a bare `key=value` token adds a parameter to the op before
it. `op:value` (no `=`) sets the op's main parameter (the colour of `background`, the model of `upscale`,
the rule set of `inspect`). Recipes may also list ops as strings or mappings (`{op: compose, fill: 0.9}`).
Every config forbids unknown keys, so a typo names the op, the bad parameter and the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skuforge.images.errors import OpSpecError

UPSCALE_MODELS = {
    "animevideov3-x2": 0,
    "animevideov3-x3": 1,
    "animevideov3-x4": 2,
    "x4plus-anime": 3,
    "x4plus": 4,
}


@dataclass
class OpResult:
    """What every op returns: the image, its metrics, and the encoded file when the op chose the format."""

    image: Image.Image
    metrics: dict[str, Any] = field(default_factory=dict)
    encoded: bytes | None = None
    format: str | None = None


class OpBase(BaseModel):
    """Common base of op configs: unknown keys are errors, configs are immutable (safe to share)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    op: str


class UpscaleOp(OpBase):
    """Real-ESRGAN (ncnn, CPU) with a Lanczos + unsharp fallback when the runtime is missing."""

    op: Literal["upscale"] = "upscale"
    model: Literal["animevideov3-x2", "animevideov3-x3", "animevideov3-x4", "x4plus-anime", "x4plus"] = (
        "animevideov3-x2"
    )
    scale: float | None = Field(None, gt=0, le=8, description="final scale; default: the model's own")
    tile: int = Field(128, ge=32, description="tile size in pixels, so large images fit in memory")
    engine: Literal["auto", "esrgan", "lanczos"] = "auto"


class CutoutOp(OpBase):
    """U²-Net-p salient-object mask, optional GrabCut refinement, RGBA output."""

    op: Literal["cutout"] = "cutout"
    refine: bool = Field(False, description="refine the mask with OpenCV GrabCut")
    matte: bool = Field(True, description="soft alpha edges; false gives a hard 0/255 mask")
    min_alpha: int = Field(10, ge=0, le=254, description="alpha below this becomes fully transparent")


class BackgroundOp(OpBase):
    """Put the cut-out on a colour, a vertical gradient or a template image, with an optional soft shadow."""

    op: Literal["background"] = "background"
    color: str = "white"
    gradient: str | None = Field(None, description="'#ffffff-#dddddd', top to bottom")
    template: str | None = Field(None, description="path of a background image, scaled to cover")
    shadow: bool = False
    shadow_opacity: float = Field(0.35, ge=0, le=1)
    shadow_blur: float = Field(0.03, ge=0, le=0.5, description="blur radius as a share of the long side")
    shadow_offset: float = Field(0.015, ge=-0.5, le=0.5, description="downward offset, share of height")


class ComposeOp(OpBase):
    """A marketplace main image: product centred at a target fill on a pure white (or given) canvas."""

    op: Literal["compose"] = "compose"
    fill: float = Field(0.85, gt=0, le=1, description="product long side / frame side")
    aspect: str = Field("1:1", description="width:height of the frame, e.g. '1:1' or '4:5'")
    size: int | None = Field(None, ge=16, le=10000, description="long side of the output; default: natural")
    min_side: int = Field(1000, ge=1, le=10000, description="upscale when the long side would be smaller")
    max_side: int = Field(3000, ge=16, le=10000)
    canvas: str = "white"
    format: Literal["jpeg", "png", "webp"] = "jpeg"
    quality: int = Field(92, ge=1, le=100)
    min_quality: int = Field(40, ge=1, le=100)
    max_kb: int | None = Field(None, ge=1, description="size budget; lower quality stepwise to meet it")
    upscaler: Literal["auto", "lanczos", "esrgan"] = "auto"


class InspectOp(OpBase):
    """A compliance report against a rule set (a shipped name or the path of a YAML file)."""

    op: Literal["inspect"] = "inspect"
    rules: str = "white-background"


class RestyleOp(OpBase):
    """A generated background (diffusers or an OpenAI-compatible endpoint); the product is pasted back."""

    op: Literal["restyle"] = "restyle"
    prompt: str = "a clean studio background with soft light"
    backend: Literal["endpoint", "diffusers"] = "endpoint"
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    model: str = "gpt-image-1"
    api_key_env: str = "OPENAI_API_KEY"
    size: str = "1024x1024"
    timeout_s: float = Field(120.0, gt=0)
    weights: str | None = Field(None, description="local diffusers weights folder (diffusers backend)")
    device: str = "cuda"


OpConfig = Annotated[
    UpscaleOp | CutoutOp | BackgroundOp | ComposeOp | InspectOp | RestyleOp, Field(discriminator="op")
]
OP_TYPES: dict[str, type[OpBase]] = {
    "upscale": UpscaleOp,
    "cutout": CutoutOp,
    "background": BackgroundOp,
    "compose": ComposeOp,
    "inspect": InspectOp,
    "restyle": RestyleOp,
}
_MAIN_PARAM = {"upscale": "model", "background": "color", "inspect": "rules", "restyle": "prompt"}


def parse_ops(spec: str | Sequence[str | Mapping[str, Any]]) -> list[OpBase]:
    """Parse a spec string, or a recipe's list of strings/mappings, into typed op configs."""
    items: list[str | Mapping[str, Any]] = [spec] if isinstance(spec, str) else list(spec)
    raw: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            raw.extend(_split(item))
        elif isinstance(item, Mapping):
            raw.append(dict(item))
        else:
            raise OpSpecError(f"Image op {item!r} is neither a string nor a mapping.", _HINT)
    if not raw:
        raise OpSpecError("The image op list is empty.", _HINT)
    source = spec if isinstance(spec, str) else ", ".join(str(i) for i in items)
    return [_build(entry, source) for entry in raw]


def format_ops(ops: Sequence[OpBase]) -> str:
    """The canonical spec of a pipeline (only non-default parameters), used in job records and keys."""
    parts = []
    for op in ops:
        params = op.model_dump(exclude_defaults=True, exclude={"op"})
        parts.append(
            op.op + "".join(f"{',' if i else ':'}{k}={v}" for i, (k, v) in enumerate(params.items()))
        )
    return ",".join(parts)


_HINT = (
    "Write ops as 'cutout,background:white,compose:fill=0.85,size=1600'. "
    f"Valid ops: {', '.join(sorted(OP_TYPES))}."
)


def _split(text: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        head = token.split("=", 1)[0]
        if "=" in token and ":" not in head:
            if not entries:
                raise OpSpecError(f"Parameter '{token}' in '{text}' comes before any op.", _HINT)
            key, value = token.split("=", 1)
            entries[-1][key.strip()] = value.strip()
            continue
        name, _, rest = token.partition(":")
        entry: dict[str, Any] = {"op": name.strip().lower()}
        if rest:
            if "=" in rest:
                key, value = rest.split("=", 1)
                entry[key.strip()] = value.strip()
            else:
                entry[_MAIN_PARAM.get(entry["op"], "_value")] = rest.strip()
        entries.append(entry)
    return entries


def _build(entry: dict[str, Any], source: str) -> OpBase:
    name = str(entry.get("op", ""))
    cls = OP_TYPES.get(name)
    if cls is None:
        raise OpSpecError(f"Unknown image op '{name}' in '{source}'.", _HINT)
    valid = ", ".join(k for k in cls.model_fields if k != "op")
    if "_value" in entry:
        raise OpSpecError(
            f"Op '{name}' takes no bare value ('{name}:{entry['_value']}') in '{source}'.",
            f"Name the parameter, e.g. '{name}:key=value'. Valid parameters of '{name}': {valid}.",
        )
    try:
        return cls.model_validate(entry)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or name
        if err["type"] == "extra_forbidden":
            message = f"Op '{name}' has no parameter '{param}' (in '{source}')."
        else:
            message = f"Op '{name}' parameter '{param}' = {err.get('input')!r} is invalid: {err['msg']}."
        raise OpSpecError(message, f"Valid parameters of '{name}': {valid}.") from None
