"""The `glossary` check: every listed term that the source contains comes through unchanged.

Recipes ask the model to keep do-not-translate terms (brand and product names, model codes) as written; this
check makes sure it did. A term counts as present when it appears exactly as written (case included); a term
that starts or ends with a Latin letter or digit must not run on into another one there, so `Go` is not
found in `Google`, while `Anker` is found in `Anker充电宝`.

With `codes: true`, the model numbers and codes of the source (Latin letters and digits with a digit in them:
`SC-MK-010`, `B45729`, `500ml`, `49146`) count as terms too; for them case and spaces may change (`500 ml`).

Each output field is compared with the row field of the same name (a translation's `title` with the row's
`title`). Output fields the row does not have are compared with `source_fields` when given, else skipped:
a term in the title need not appear in generated selling points.

    - {check: glossary, terms: "{{ recipe.glossary + params.glossary }}", on_fail: flag}
    - {check: glossary, terms: [Anker, PowerCore], source_fields: [title], fields: [seo_title]}
    - {check: glossary, codes: true}
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, passed, problem, strings, top_field
from skuforge.checks.script import as_terms


def term_pattern(term: str) -> re.Pattern[str]:
    """The term as written; a Latin letter or digit at its edge must not run on into another one."""
    head = r"(?<![A-Za-z0-9])" if _ascii_alnum(term[:1]) else ""
    tail = r"(?![A-Za-z0-9])" if _ascii_alnum(term[-1:]) else ""
    return re.compile(head + re.escape(term) + tail)


_CODE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_./#+]*[A-Za-z0-9])?")


def codes(text: str) -> list[str]:
    """Model numbers and codes in a text: Latin/digit tokens with a digit and a letter, or 3+ digits."""
    found = []
    for token in _CODE.findall(unicodedata.normalize("NFKC", text)):
        digits = sum(c.isdigit() for c in token)
        if digits and (digits >= 3 or any(c.isalpha() for c in token)) and len(token) >= 3:
            found.append(token)
    return list(dict.fromkeys(found))


def squash(text: str) -> str:
    """Text compared the way codes are: NFKC, no spaces, case folded."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def lost_codes(source: str, output: str) -> list[str]:
    """The codes of the source that the output does not have (case and spaces ignored)."""
    have = squash(output)
    return [c for c in codes(source) if squash(c) not in have]


def _ascii_alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(text for _, text in strings(value)) if isinstance(value, dict | list) else ""


@register("glossary")
class GlossaryCheck:
    name = "glossary"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.spec = spec
        self.fields = as_fields(params.get("fields", params.get("field")))
        self.source_fields = as_fields(params.get("source_fields"))
        self.patterns = {term: term_pattern(term) for term in dict.fromkeys(as_terms(params.get("terms")))}
        self.codes = bool(params.get("codes", False))

    def source_for(self, field: str, row: dict[str, Any]) -> str | None:
        """The source text an output field is a rendering of, or None when the row has none."""
        if field in row and row[field] not in (None, ""):
            return _joined(row[field])
        if self.source_fields:
            return "\n".join(_joined(row.get(f)) for f in self.source_fields)
        return None

    def __call__(self, item: CheckItem) -> list[Finding]:
        if not self.patterns and not self.codes:
            return passed(self.name, self.spec)
        by_field: dict[str, list[str]] = {}
        for path, text in strings(item.output, self.fields):
            by_field.setdefault(top_field(path), []).append(text)
        findings = []
        for field, texts in by_field.items():
            source = self.source_for(field, item.row)
            if source is None:
                continue
            output = "\n".join(texts)
            lost = [t for t, p in self.patterns.items() if p.search(source) and not p.search(output)]
            if self.codes:
                lost += [c for c in lost_codes(source, output) if c not in lost]
            if lost:
                quoted = ", ".join(f"'{t}'" for t in lost)
                reason = (
                    f"'{field}' lost {quoted}: in the source but missing or changed in the output. "
                    "Glossary terms, model numbers and codes must be kept exactly as written."
                )
                findings.append(problem(self.name, self.spec, reason, field, lost=lost))
        return findings or passed(self.name, self.spec)
