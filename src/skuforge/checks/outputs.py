"""Reading text out of a model's output and a source row, the way every check needs it.

Outputs are JSON-like trees (dicts, lists, strings, numbers). Checks report problems by *path* (`title`,
`selling_points[2]`, `specs.material`) so a merchandiser can find the value, and most checks can be limited to
some top-level fields with a `fields` param.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from skuforge.checks.base import CheckSpec, Finding

BRAND_KEYS = ("brand", "brand name", "brand_name", "manufacturer", "品牌", "brandname", "marke", "marque")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (path, leaf) for every leaf of a JSON-like value; paths look like `a.b[2]`."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from walk(sub, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, sub in enumerate(value):
            yield from walk(sub, f"{path}[{i}]")
    else:
        yield path, value


def top_field(path: str) -> str:
    """The top-level field a path belongs to: `selling_points[2]` -> `selling_points`."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def as_fields(value: Any) -> list[str] | None:
    """A `fields` / `field` param as a list (None when not given: every field)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def strings(output: Any, fields: list[str] | None = None) -> list[tuple[str, str]]:
    """Every string in the output (or in the named top-level fields), with its path."""
    if isinstance(output, str):
        return [("output", output)] if fields is None else []
    found = []
    for path, leaf in walk(output):
        if isinstance(leaf, str) and (fields is None or top_field(path) in fields):
            found.append((path, leaf))
    return found


def row_text(row: dict[str, Any]) -> str:
    """All of a source row's values as one text (numbers included), for 'is it in the source' questions."""
    parts = []
    for _path, leaf in walk(row):
        if leaf is None or isinstance(leaf, bool):
            continue
        parts.append(str(leaf))
    return "\n".join(parts)


def row_brand(row: dict[str, Any]) -> str | None:
    """The row's brand field, whatever it is called (`brand`, `Brand Name`, `品牌` ...)."""
    for key, value in row.items():
        if str(key).strip().casefold() in BRAND_KEYS and value not in (None, ""):
            return str(value).strip()
    return None


def normalise(text: str) -> str:
    """NFKC, collapsed whitespace: what a length or similarity check should count."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip()


def cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


def is_cjk(text: str) -> bool:
    """Mostly Chinese/Japanese/Korean script (counted in characters, not words)."""
    letters = sum(1 for ch in text if ch.isalpha())
    return letters > 0 and cjk_count(text) / letters >= 0.5


def passed(name: str, spec: CheckSpec) -> list[Finding]:
    """The one finding of a clean item, so the store shows the check ran."""
    return [Finding(check=name, ok=True, action=spec.on_fail)]


def problem(name: str, spec: CheckSpec, reason: str, field: str | None = None, **details: Any) -> Finding:
    return Finding(check=name, ok=False, action=spec.on_fail, reason=reason, field=field, details=details)
