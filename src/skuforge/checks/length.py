"""The `length` check: per-field limits in characters, words and list items.

`- {check: length, field: title, max_chars: 60}` or `max_words`, `min_chars`, `min_words`, `max_items`,
`min_items`. Chinese, Japanese and Korean text has no spaces, so there a character counts as a word: a 30-word
limit on a Chinese title means 30 characters. Limits apply to a string field and to each string in a list.
"""

from __future__ import annotations

import re
from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, cjk_count, is_cjk, normalise, passed, problem, strings
from skuforge.errors import RecipeError

_LATIN_WORD = re.compile(r"[^\s\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
_LIMITS = ("max_chars", "min_chars", "max_words", "min_words", "max_items", "min_items")


def count_chars(text: str) -> int:
    """Characters a reader sees: NFKC-normalised, whitespace runs counted once, ends trimmed."""
    return len(normalise(text))


def count_words(text: str) -> int:
    """Words: space-separated runs of Latin (or other spaced) script, plus one per CJK character."""
    text = normalise(text)
    latin = [w for w in _LATIN_WORD.findall(text) if any(ch.isalnum() for ch in w)]
    return len(latin) + cjk_count(text)


@register("length")
class LengthCheck:
    name = "length"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.spec = spec
        self.fields = as_fields(params.get("field", params.get("fields")))
        self.limits = {k: int(params[k]) for k in _LIMITS if params.get(k) is not None}
        if not self.limits:
            raise RecipeError(
                f"The length check on {self.fields or 'all fields'} sets no limit.",
                "Give at least one of: " + ", ".join(_LIMITS) + ".",
            )

    def _text_findings(self, path: str, text: str) -> list[Finding]:
        chars, words = count_chars(text), count_words(text)
        unit = "characters" if is_cjk(text) else "words"
        rules = (
            ("max_chars", chars, chars > self.limits.get("max_chars", chars), "characters", "at most"),
            ("min_chars", chars, chars < self.limits.get("min_chars", chars), "characters", "at least"),
            ("max_words", words, words > self.limits.get("max_words", words), unit, "at most"),
            ("min_words", words, words < self.limits.get("min_words", words), unit, "at least"),
        )
        return [
            problem(
                self.name,
                self.spec,
                f"'{path}' has {n} {what}; the limit is {bound} {self.limits[key]}.",
                path,
                measured=n,
                limit=self.limits[key],
                rule=key,
            )
            for key, n, broken, what, bound in rules
            if broken
        ]

    def _list_findings(self, output: Any) -> list[Finding]:
        found = []
        for path, value in _lists(output, self.fields):
            n = len(value)
            for key, broken, bound in (
                ("max_items", n > self.limits.get("max_items", n), "at most"),
                ("min_items", n < self.limits.get("min_items", n), "at least"),
            ):
                if broken:
                    reason = f"'{path}' has {n} items; the limit is {bound} {self.limits[key]}."
                    found.append(problem(self.name, self.spec, reason, path, measured=n, rule=key))
        return found

    def __call__(self, item: CheckItem) -> list[Finding]:
        findings = []
        for path, text in strings(item.output, self.fields):
            findings += self._text_findings(path, text)
        findings += self._list_findings(item.output)
        return findings or passed(self.name, self.spec)


def _lists(output: Any, fields: list[str] | None) -> list[tuple[str, list[Any]]]:
    if not isinstance(output, dict):
        return [("output", output)] if isinstance(output, list) and fields is None else []
    return [
        (name, value)
        for name, value in output.items()
        if isinstance(value, list) and (fields is None or name in fields)
    ]
