"""The `verbatim` check: an extracted value must be written in the source row.

Extraction recipes (attributes) ask the model to copy values as the product data states them. A value that
appears nowhere in the row's text was invented or translated ("蓝色" for an English "Blue" title), so the item
goes to review. Matching ignores case, spaces and punctuation, and a value also passes when every one of its
words appears in the source (word order and joining words may differ).
"""

from __future__ import annotations

import re
from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register

_SQUASH = re.compile(r"[\W_]+", re.UNICODE)
_TOKEN = re.compile(r"[\u3400-\u9fff]|[^\W_]+", re.UNICODE)


def _squash(text: str) -> str:
    return _SQUASH.sub("", text.casefold())


def _source_text(row: dict[str, Any], fields: list[str] | None) -> str:
    values = [row.get(f) for f in fields] if fields else list(row.values())
    return " ".join(str(v) for v in values if v not in (None, ""))


def _found(value: str, squashed_source: str) -> bool:
    if _squash(value) in squashed_source:
        return True
    tokens = [_squash(t) for t in _TOKEN.findall(value)]
    return bool(tokens) and all(t in squashed_source for t in tokens)


class Verbatim:
    name = "verbatim"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.action = spec.on_fail
        self.fields: list[str] | None = params.get("fields")
        self.source_fields: list[str] | None = params.get("source_fields")

    def __call__(self, item: CheckItem) -> list[Finding]:
        if not isinstance(item.output, dict):
            return []
        source = _squash(_source_text(item.row, self.source_fields))
        findings = []
        for field, value in item.output.items():
            if self.fields and field not in self.fields:
                continue
            if isinstance(value, str) and value.strip() and not _found(value, source):
                findings.append(
                    Finding(
                        check=self.name,
                        ok=False,
                        action=self.action,
                        field=field,
                        reason=f"'{value}' for '{field}' is not written in the product data.",
                    )
                )
        return findings or [Finding(check=self.name, ok=True, action=self.action)]


@register("verbatim")
def build(spec: CheckSpec) -> Verbatim:
    return Verbatim(spec)
