"""The `attribute_kind` check: a filled attribute must be the kind of thing its name says.

Small models put the wrong fact in the right slot: "3000K" as a bulb's material, "纯棉" as a T-shirt's colour,
"365 Count" as a material. A value for a material attribute must name a known material (the bilingual
vocabulary the grounding check uses); a value for a colour attribute must contain a colour word
(`data/colors.yaml`). Other attributes are not judged. Params: `materials` and `colors` (the attribute names
of each kind; defaults `[material]` and `[color, colour]`), `allow` (values always accepted).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.grounding import vocabulary

_CJK = re.compile(r"[\u3400-\u9fff]")


@functools.cache
def _colors() -> tuple[re.Pattern[str], tuple[str, ...]]:
    data = yaml.safe_load((Path(__file__).parent / "data" / "colors.yaml").read_text(encoding="utf-8"))
    latin = re.compile(r"\b(?:" + "|".join(map(re.escape, data["en"])) + r")s?\b", re.IGNORECASE)
    return latin, tuple(data["zh"])


def is_color(value: str) -> bool:
    latin, chinese = _colors()
    return bool(latin.search(value)) or any(word in value for word in chinese)


def is_material(value: str) -> bool:
    return bool(vocabulary().find(value))


class AttributeKind:
    name = "attribute_kind"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.action = spec.on_fail
        self.materials = {m.casefold() for m in params.get("materials", ["material"])}
        self.colors = {c.casefold() for c in params.get("colors", ["color", "colour"])}
        self.allow = {str(a).casefold() for a in params.get("allow", [])}

    def __call__(self, item: CheckItem) -> list[Finding]:
        if not isinstance(item.output, dict):
            return []
        findings = [self._judge(str(field), value) for field, value in item.output.items()]
        bad = [f for f in findings if f is not None]
        return bad or [Finding(check=self.name, ok=True, action=self.action)]

    def _judge(self, field: str, value: Any) -> Finding | None:
        if not isinstance(value, str) or not value.strip() or value.strip().casefold() in self.allow:
            return None
        name = field.casefold()
        if name in self.materials and not is_material(value):
            kind = "material"
        elif name in self.colors and not is_color(value):
            kind = "colour"
        else:
            return None
        return Finding(
            check=self.name,
            ok=False,
            action=self.action,
            field=field,
            reason=f"'{value}' given for '{field}' does not name a {kind}.",
        )


@register("attribute_kind")
def build(spec: CheckSpec) -> AttributeKind:
    return AttributeKind(spec)
