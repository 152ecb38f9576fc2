"""The `script` check: a translation keeps no text in a script its target language is not written in.

A small model translating `PAPAGO 368miniHD 行車記錄器` into English often leaves a fragment behind
("PAPAGO 368miniHD row-car recording器"). The `language` check judges the whole text and calls that English;
this check looks for the leftovers. Every run of letters in a script the target locale does not use (Han,
Hiragana, Cyrillic, Thai, Arabic, ...) is a problem, except:

- Latin, which every marketplace uses for brand names, model codes and units;
- glossary terms (`terms`) and names listed in `allow`, kept as written on purpose;
- the row's brand (`brand`, `品牌`, ...) when the source gives it in that script.

Digits, punctuation and symbols (【】, ★, ™) belong to no script and are never flagged. The target is the
item's locale, else the `locale` param; without one there is nothing to judge and the check passes.

    - {check: script, on_fail: flag}
    - {check: script, fields: [title], terms: "{{ recipe.glossary + params.glossary }}", allow: [無印良品]}
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, passed, problem, row_brand, row_text, strings, top_field
from skuforge.errors import require

# The scripts each language is written in (ISO 639-1 -> Unicode script names); any other is Latin.
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("Han",),
    "yue": ("Han",),
    "ja": ("Han", "Hiragana", "Katakana"),
    "ko": ("Hangul", "Han"),
    **dict.fromkeys(("ru", "uk", "be", "bg", "mk", "sr", "kk", "ky", "mn", "tg"), ("Cyrillic",)),
    "el": ("Greek",),
    "th": ("Thai",),
    "lo": ("Lao",),
    "km": ("Khmer",),
    "my": ("Myanmar",),
    **dict.fromkeys(("ar", "fa", "ur", "ps"), ("Arabic",)),
    **dict.fromkeys(("he", "yi"), ("Hebrew",)),
    **dict.fromkeys(("hi", "mr", "ne"), ("Devanagari",)),
    "bn": ("Bengali",),
    "ta": ("Tamil",),
    "te": ("Telugu",),
    "ka": ("Georgian",),
    "hy": ("Armenian",),
    "am": ("Ethiopic",),
}
# Script subtags of a locale (`sr-Latn`, `zh-Hant`) -> the script they name.
SCRIPT_SUBTAGS = {"latn": "Latin", "cyrl": "Cyrillic", "hans": "Han", "hant": "Han", "arab": "Arabic"}
# Scripts that catalogs are written in, the ones leftovers are looked for in. Latin is always allowed.
KNOWN_SCRIPTS = (
    "Han",
    "Hiragana",
    "Katakana",
    "Hangul",
    "Cyrillic",
    "Greek",
    "Thai",
    "Lao",
    "Khmer",
    "Myanmar",
    "Arabic",
    "Hebrew",
    "Devanagari",
    "Bengali",
    "Tamil",
    "Telugu",
    "Georgian",
    "Armenian",
    "Ethiopic",
)


@dataclass(frozen=True)
class Leftover:
    """A run of letters in a script the target does not use, e.g. `Leftover('器', 'Han', True)`."""

    text: str
    script: str
    from_source: bool


def target_scripts(locale: str) -> tuple[str, ...]:
    """The scripts a locale is written in besides Latin: `ja` -> Han, Hiragana, Katakana; `de` -> ()."""
    parts = locale.replace("_", "-").casefold().split("-")
    for sub in parts[1:]:
        if sub in SCRIPT_SUBTAGS:
            return (SCRIPT_SUBTAGS[sub],)
    return LANGUAGE_SCRIPTS.get(parts[0], ())


@lru_cache(maxsize=1)
def _run_pattern() -> Any:
    regex = require("regex", "The script check", "checks")
    alternatives = "|".join(rf"(?P<{name}>\p{{Script={name}}}+)" for name in KNOWN_SCRIPTS)
    return regex.compile(alternatives)


def script_runs(text: str) -> list[tuple[str, str]]:
    """(run, script) for each run of letters in a non-Latin script: `Eye兔 Shell器` -> [('兔','Han'), ...]."""
    return [(m.group(0), str(m.lastgroup)) for m in _run_pattern().finditer(text)]


def scripts_in(text: str) -> set[str]:
    """The non-Latin scripts a text uses."""
    return {script for _, script in script_runs(text)}


def without_terms(text: str, keep: list[str]) -> str:
    """The text with every kept term blanked out, longest first so a long name is not cut by a short one."""
    for term in sorted({t for t in keep if t}, key=len, reverse=True):
        text = text.replace(term, " ")
    return text


def leftovers(text: str, locale: str, *, source: str = "", keep: list[str] | None = None) -> list[Leftover]:
    """The runs of `text` in scripts `locale` is not written in, once `keep` terms are taken out."""
    allowed = set(target_scripts(locale))
    found = []
    source_scripts = scripts_in(source)
    for run, script in script_runs(without_terms(text, keep or [])):
        if script not in allowed:
            found.append(Leftover(run, script, script in source_scripts))
    return found


def as_terms(value: Any) -> list[str]:
    """A `terms`/`allow` param as a list of strings: a list, or one term per line of a string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.splitlines() if t.strip()]
    return [str(t).strip() for t in value if str(t).strip()]


@register("script")
class ScriptCheck:
    name = "script"

    def __init__(self, spec: CheckSpec) -> None:
        params = spec.params
        self.spec = spec
        self.fields = as_fields(params.get("fields", params.get("field")))
        self.locale = params.get("locale")
        self.keep = as_terms(params.get("terms")) + as_terms(params.get("allow"))

    def __call__(self, item: CheckItem) -> list[Finding]:
        locale = item.locale or self.locale
        if not locale:
            return passed(self.name, self.spec)
        source = row_text(item.row)
        keep = [*self.keep, *([b] if (b := row_brand(item.row)) else [])]
        by_field: dict[str, list[Leftover]] = {}
        for path, text in strings(item.output, self.fields):
            found = leftovers(text, str(locale), source=source, keep=keep)
            if found:
                by_field.setdefault(top_field(path), []).extend(found)
        if not by_field:
            return passed(self.name, self.spec)
        return [self._finding(field, found, str(locale)) for field, found in by_field.items()]

    def _finding(self, field: str, found: list[Leftover], locale: str) -> Finding:
        runs = list(dict.fromkeys(f.text for f in found))
        scripts = "/".join(sorted({f.script for f in found}))
        quoted = ", ".join(f"'{r}'" for r in runs[:6]) + (" ..." if len(runs) > 6 else "")
        if any(f.from_source for f in found):
            what = (
                f"'{field}' still has {scripts} text from the source, untranslated into {locale}: {quoted}."
            )
        else:
            what = f"'{field}' has {scripts} text, a script {locale} is not written in: {quoted}."
        reason = f"{what} Translate it, or list it as a glossary term if it is a name kept on purpose."
        return problem(self.name, self.spec, reason, field, runs=runs, scripts=scripts.split("/"))
