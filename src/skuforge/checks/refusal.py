"""The `refusal` check: refusals, chat, template leftovers and markdown in values meant for a product page.

The patterns are data (`data/refusal.yaml`) so a team can see and extend them: refusals ("As an AI language
model", "作为一个AI"), talk to the reader ("Here are 3 selling points:", "以下是"), template text left
behind ("{{", "[product name]", "TODO", "lorem ipsum"), markdown fences and bold, and "N/A"-like placeholder
values (allowed with `allow_na: true`). Params: `fields`, `allow_na`, `patterns` (extra {kind: [regex]}).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from skuforge import yamlfile
from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, passed, problem, strings
from skuforge.errors import RecipeError

DATA = Path(__file__).parent / "data" / "refusal.yaml"


@lru_cache(maxsize=1)
def shipped() -> dict[str, Any]:
    return yamlfile.load(DATA.read_text(encoding="utf-8"))


def compile_rules(extra: dict[str, list[str]] | None = None) -> list[tuple[str, str, re.Pattern[str]]]:
    """(kind, reason template, pattern) for every shipped pattern plus the check's own."""
    rules = []
    data = shipped()
    for kind, entry in data.items():
        if isinstance(entry, dict):
            for pattern in entry["patterns"]:
                rules.append((kind, entry["reason"], re.compile(pattern, re.IGNORECASE | re.MULTILINE)))
    for kind, patterns in (extra or {}).items():
        reason = data.get(kind, {}).get(
            "reason", "'{field}' contains text that should not be there: '{match}'."
        )
        for pattern in patterns:
            try:
                rules.append((kind, reason, re.compile(pattern, re.IGNORECASE | re.MULTILINE)))
            except re.error as exc:
                raise RecipeError(
                    f"Refusal check pattern {pattern!r} is not a valid regex: {exc}.",
                    "Fix the pattern under 'patterns:' in the recipe's refusal check.",
                ) from exc
    return rules


@register("refusal")
class RefusalCheck:
    name = "refusal"

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.fields = as_fields(spec.params.get("fields", spec.params.get("field")))
        self.allow_na = bool(spec.params.get("allow_na", False))
        self.rules = compile_rules(spec.params.get("patterns"))
        self.empty = {v.casefold() for v in shipped().get("empty_values", [])}

    def __call__(self, item: CheckItem) -> list[Finding]:
        findings = []
        for path, text in strings(item.output, self.fields):
            if not self.allow_na and text.strip().casefold() in self.empty:
                reason = f"'{path}' is the placeholder '{text.strip()}' instead of a value."
                findings.append(problem(self.name, self.spec, reason, path, kind="empty"))
                continue
            for kind, template, pattern in self.rules:
                if m := pattern.search(text):
                    match = m.group(0).strip()
                    reason = template.format(field=path, match=match)
                    findings.append(problem(self.name, self.spec, reason, path, kind=kind, match=match))
                    break
        return findings or passed(self.name, self.spec)
