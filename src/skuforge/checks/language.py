"""The `language` check: the output is written in the target locale.

The target is the item's locale, else the `locale` param, else the language of the source row. Detection uses
lingua, restricted to the languages catalogs are written in (a smaller set is faster and errs less).
Short strings and strings that are mostly brand names, numbers and model codes say nothing about language and
are skipped. For Chinese, `zh-CN`/`zh-Hans` ask for simplified and `zh-TW`/`zh-HK`/`zh-Hant` for traditional
characters, checked with OpenCC.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, cjk_count, passed, problem, row_brand, strings, top_field
from skuforge.errors import require

LANGUAGES = (
    "en",
    "zh",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "ja",
    "ko",
    "ru",
    "pl",
    "tr",
    "ar",
    "th",
    "vi",
    "id",
)
NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
    "pl": "Polish",
    "tr": "Turkish",
    "ar": "Arabic",
    "th": "Thai",
    "vi": "Vietnamese",
    "id": "Indonesian",
}
SIMPLIFIED = {"zh-cn", "zh-hans", "zh-sg", "zh-my"}
TRADITIONAL = {"zh-tw", "zh-hk", "zh-mo", "zh-hant"}
_CODE = re.compile(r"[\w\-./]*\d[\w\-./]*|\b[A-Z][A-Z0-9\-]+\b", re.ASCII)
MIN_LETTERS = 12
MIN_CJK = 4
DETECT_CHARS = 400  # plenty to tell a language; detection time grows with length


@lru_cache(maxsize=4)
def detector(codes: tuple[str, ...] = LANGUAGES) -> Any:
    """One lingua detector per language set, built once per process.

    High-accuracy mode (~0.3 ms per title here): low-accuracy mode was only 2x faster and called English
    product titles full of names ("Bachmann Trains Norfolk and Western Flat Car") German with 100% confidence.
    """
    lingua = require("lingua", "The language check", "checks")
    isos = [getattr(lingua.IsoCode639_1, c.upper()) for c in codes]
    return lingua.LanguageDetectorBuilder.from_iso_codes_639_1(*isos).build()


def confidences(text: str) -> dict[str, float]:
    """ISO 639-1 code -> lingua's confidence for the text (empty when it cannot tell)."""
    values = detector().compute_language_confidence_values(text)
    return {v.language.iso_code_639_1.name.lower(): float(v.value) for v in values}


def detect(text: str) -> tuple[str | None, float]:
    """(ISO 639-1 code, confidence) of a text, or (None, 0) when lingua cannot tell."""
    values = confidences(text)
    if not values:
        return None, 0.0
    best = max(values, key=values.__getitem__)
    return best, values[best]


def signal(text: str, brand: str | None = None) -> str:
    """The part of a text that says something about its language: no codes, numbers or the brand."""
    if brand:
        text = re.sub(re.escape(brand), " ", text, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", _CODE.sub(" ", text)).strip()


def enough(text: str) -> bool:
    """Long enough to judge: 4 CJK characters or 12 other letters."""
    return cjk_count(text) >= MIN_CJK or sum(ch.isalpha() for ch in text) >= MIN_LETTERS


def script_problem(text: str, locale: str) -> str | None:
    """'traditional'/'simplified' when Chinese text uses the other script than the locale asks for."""
    loc = locale.casefold().replace("_", "-")
    if loc not in SIMPLIFIED | TRADITIONAL or cjk_count(text) < 2:
        return None
    opencc = require("opencc", "The language check for Chinese scripts", "safety")
    config = "t2s" if loc in SIMPLIFIED else "s2t"
    converted = _converter(opencc, config).convert(text)
    changed = sum(1 for a, b in zip(text, converted, strict=False) if a != b)
    if changed >= 2 or (changed and changed / cjk_count(text) >= 0.2):
        return "traditional" if loc in SIMPLIFIED else "simplified"
    return None


_CONVERTERS: dict[str, Any] = {}


def _converter(opencc: Any, config: str) -> Any:
    if config not in _CONVERTERS:
        _CONVERTERS[config] = opencc.OpenCC(config)
    return _CONVERTERS[config]


@register("language")
class LanguageCheck:
    name = "language"

    def __init__(self, spec: CheckSpec) -> None:
        self.spec = spec
        self.fields = as_fields(spec.params.get("fields", spec.params.get("field")))
        self.locale = spec.params.get("locale")
        self.min_confidence = float(spec.params.get("min_confidence", 0.6))

    def target(self, item: CheckItem) -> str | None:
        if item.locale or self.locale:
            return str(item.locale or self.locale)
        title = " ".join(str(v) for v in item.row.values() if isinstance(v, str))
        text = signal(title, row_brand(item.row))
        return detect(text)[0] if enough(text) else None

    def __call__(self, item: CheckItem) -> list[Finding]:
        locale = self.target(item)
        if not locale:
            return passed(self.name, self.spec)
        want = locale.split("-")[0].split("_")[0].casefold()
        brand = row_brand(item.row)
        by_field: dict[str, list[str]] = {}
        for path, text in strings(item.output, self.fields):
            by_field.setdefault(top_field(path), []).append(text)
        findings = []
        for field, texts in by_field.items():
            findings += self._field(field, " \n".join(texts), want, locale, brand)
        return findings or passed(self.name, self.spec)

    def _field(self, field: str, text: str, want: str, locale: str, brand: str | None) -> list[Finding]:
        sig = signal(text, brand)
        if not enough(sig):
            return []
        values = confidences(sig[:DETECT_CHARS])
        found = max(values, key=values.__getitem__) if values else None
        confidence = values.get(found, 0.0) if found else 0.0
        other = found != want and confidence >= self.min_confidence and values.get(want, 0.0) < 0.2
        if found and other and want in NAMES:
            reason = f"'{field}' is written in {NAMES[found]}, but {NAMES[want]} ({locale}) was asked for."
            return [
                problem(self.name, self.spec, reason, field, detected=found, confidence=round(confidence, 3))
            ]
        if want == "zh" and (script := script_problem(text, locale)):
            reason = f"'{field}' uses {script} Chinese characters, but {locale} was asked for."
            return [problem(self.name, self.spec, reason, field, script=script)]
        return []
