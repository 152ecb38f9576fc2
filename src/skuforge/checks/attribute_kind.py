"""The `attribute_kind` check: a filled attribute must be the kind of thing its name says.

Small models put the wrong fact in the right slot: "3000K" as a bulb's material, "纯棉" as a T-shirt's colour,
"365 Count" as a material, "Starter Yoga Bag" as a brand, "10 Pack" as a size. Judged here:

- a material must name a known material (the bilingual vocabulary the grounding check uses) and be no more
  than that ("Polyester Gym Duffel with Mat Pocket" is a description);
- a colour must contain a colour word (`data/colors.yaml`), and a Chinese one that names a material must end
  with one (`黑柚木柄`, "black teak handle", is not a colour; `陶瓷白` is);
- a brand must not be a product phrase: it may not contain the product type the title names, nor be the
  title's whole first phrase (`checks.merchandising`);
- a size must not be a pack count, a model number, a number the title uses only inside a model name, or a
  word the product's text uses only for how it folds or packs ("folds small for storage");
- a weight must have a mass in it;
- a material or a colour must not carry the product's brand (the brand the output gives, else the row's):
  "Industro Stainless Steel".

Other attributes are not judged. Params: `materials`, `colors`, `brands`, `sizes`, `weights` (the attribute
names of each kind; defaults `[material]`, `[color, colour]`, `[brand, brand name, 品牌]`, `[size, 尺码]`,
`[weight, 重量]`), `allow` (values always accepted).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from skuforge import yamlfile
from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.grounding import vocabulary
from skuforge.checks.merchandising import (
    CJK,
    brand_inside,
    brand_problem,
    material_problem,
    size_problem,
    weight_problem,
)
from skuforge.checks.outputs import row_text


@functools.cache
def _colors() -> tuple[re.Pattern[str], tuple[str, ...]]:
    data = yamlfile.load((Path(__file__).parent / "data" / "colors.yaml").read_text(encoding="utf-8"))
    latin = re.compile(r"\b(?:" + "|".join(map(re.escape, data["en"])) + r")s?\b", re.IGNORECASE)
    return latin, tuple(data["zh"])


def is_color(value: str) -> bool:
    latin, chinese = _colors()
    return bool(latin.search(value)) or any(word in value for word in chinese)


def colour_problem(value: str) -> str | None:
    """Why a Chinese value with a colour word in it is still not a colour, or None: it names a material
    and does not end with a colour word (`黑柚木柄`, a black teak handle; `陶瓷白`, `木纹色` are colours)."""
    text = value.strip()
    _, chinese = _colors()
    if not CJK.search(text) or any(text.endswith(word) for word in chinese):
        return None
    found = vocabulary().find(text)
    return f"'{value}' names a material ({found[0][1]}), not a colour." if found else None


def is_material(value: str) -> bool:
    return bool(vocabulary().find(value))


class AttributeKind:
    name = "attribute_kind"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.action = spec.on_fail
        self.materials = {m.casefold() for m in params.get("materials", ["material"])}
        self.colors = {c.casefold() for c in params.get("colors", ["color", "colour"])}
        self.brands = {
            b.casefold() for b in params.get("brands", ["brand", "brand name", "brand_name", "品牌"])
        }
        self.sizes = {z.casefold() for z in params.get("sizes", ["size", "尺码"])}
        self.weights = {w.casefold() for w in params.get("weights", ["weight", "重量"])}
        self.allow = {str(a).casefold() for a in params.get("allow", [])}

    def __call__(self, item: CheckItem) -> list[Finding]:
        if not isinstance(item.output, dict):
            return []
        title = _title(item.row)
        sized = any(str(field).casefold() in self.sizes for field in item.output)
        data = row_text(item.row) if sized else ""
        brand = self._brand(item.output) or self._brand(item.row)
        findings = [
            self._judge(str(field), value, title, data, brand) for field, value in item.output.items()
        ]
        bad = [f for f in findings if f is not None]
        return bad or [Finding(check=self.name, ok=True, action=self.action)]

    def _brand(self, fields: dict[str, Any]) -> str:
        for field, value in fields.items():
            if str(field).casefold() in self.brands and isinstance(value, str) and value.strip():
                return value
        return ""

    def _judge(self, field: str, value: Any, title: str, data: str, brand: str) -> Finding | None:
        if not isinstance(value, str) or not value.strip() or value.strip().casefold() in self.allow:
            return None
        name = field.casefold()
        reason = None
        if name in self.materials:
            reason = material_problem(value) if is_material(value) else _not_a(value, field, "material")
            reason = reason or brand_inside(value, brand, "material")
        elif name in self.colors:
            reason = _not_a(value, field, "colour") if not is_color(value) else colour_problem(value)
            reason = reason or brand_inside(value, brand, "colour")
        elif name in self.brands:
            reason = brand_problem(value, title)
        elif name in self.sizes:
            reason = size_problem(value, title, data)
        elif name in self.weights:
            reason = weight_problem(value)
        if reason is None:
            return None
        return Finding(
            check=self.name,
            ok=False,
            action=self.action,
            field=field,
            reason=reason,
        )


def _not_a(value: str, field: str, kind: str) -> str:
    return f"'{value}' given for '{field}' does not name a {kind}."


def _title(row: dict[str, Any]) -> str:
    """The product's title, whatever the column is called (title, name, product_name, 标题 ...)."""
    for key, value in row.items():
        if str(key).strip().casefold() in TITLE_KEYS and isinstance(value, str):
            return value
    return ""


TITLE_KEYS = {"title", "name", "product_name", "product name", "product_title", "标题", "商品名称", "名称"}


@register("attribute_kind")
def build(spec: CheckSpec) -> AttributeKind:
    return AttributeKind(spec)
