"""The `grounding` check: numbers, materials and brands in the output must come from the source row.

A model that writes "stainless steel" for a copper pan, `1-9/16"` for a `9/16"` socket or "by Nike" for an
unbranded shoe has invented a fact that a shopper will act on. Numbers are compared as quantities (units
converted, rounding allowed, see `quantities`); materials through a bilingual vocabulary
(`data/materials.yaml`, so 铜 in a Chinese output is grounded by "copper" in an English source);
brands through a shipped list (`data/brands.yaml`) plus the `brands` param; the row's own brand is allowed.

Params: `fields` (output fields to check; default all), `allow` (extra terms always accepted),
`brands` (more brand names), `brands_file` (a YAML list), `numbers`/`materials`/`brands_check` (false to
switch a part off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from skuforge import yamlfile
from skuforge.checks.base import CheckItem, CheckSpec, Finding, register
from skuforge.checks.outputs import as_fields, passed, problem, row_brand, row_text, strings
from skuforge.checks.quantities import Quantity, quantities, spelled_numbers
from skuforge.errors import RecipeError

DATA = Path(__file__).parent / "data"
_HAN = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Term:
    text: str
    material: str
    pattern: re.Pattern[str]
    probe: str  # a casefolded piece that must be in the text for the term to match (a cheap pre-filter)


@dataclass(frozen=True)
class Vocabulary:
    terms: tuple[Term, ...]
    implies: dict[str, tuple[str, ...]]
    ignore: tuple[str, ...]

    def find(self, text: str) -> list[tuple[str, str]]:
        """(material, term as written) for each mention; longest first, overlapped shorter ones dropped."""
        for word in self.ignore:
            text = text.replace(word, " " * len(word))
        folded = text.casefold()
        taken: list[tuple[int, int]] = []
        found = []
        for term in self.terms:
            if term.probe not in folded:
                continue
            for m in term.pattern.finditer(text):
                if any(m.start() < end and start < m.end() for start, end in taken):
                    continue
                taken.append((m.start(), m.end()))
                found.append((term.material, m.group(0)))
        return found

    def closure(self, materials: set[str]) -> set[str]:
        out, todo = set(materials), list(materials)
        while todo:
            for parent in self.implies.get(todo.pop(), ()):
                if parent not in out:
                    out.add(parent)
                    todo.append(parent)
        return out


def _term(text: str, material: str, case: bool) -> Term:
    """A substring in Chinese; a whole word (spaces or hyphens between words) otherwise."""
    flags = 0 if case else re.IGNORECASE
    if _HAN.search(text):
        return Term(text, material, re.compile(re.escape(text), flags), text.casefold())
    body = re.escape(text).replace(r"\ ", r"[\s-]+")
    pattern = re.compile(rf"(?<![\w-]){body}(?![\w-])", flags)
    return Term(text, material, pattern, text.split()[0].casefold())


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """The shipped material vocabulary, compiled once."""
    data = yamlfile.load((DATA / "materials.yaml").read_text(encoding="utf-8"))
    ignore = tuple(data.pop("_ignore", []))
    terms, implies = [], {}
    for material, entry in data.items():
        implies[material] = tuple(entry.get("implies", []))
        for text in [*entry.get("en", []), *entry.get("zh", [])]:
            terms.append(_term(str(text), material, bool(entry.get("case"))))
    terms.sort(key=lambda t: len(t.text), reverse=True)
    return Vocabulary(tuple(terms), implies, ignore)


@lru_cache(maxsize=8)
def brand_list(path: str | None = None) -> tuple[tuple[str, ...], frozenset[str]]:
    """(brands, brands that are also ordinary words) from the shipped list or a user's YAML file.

    A user's file may be a plain list of names or the shipped layout (`brands:` and `common_words:`).
    """
    file = Path(path) if path else DATA / "brands.yaml"
    if not file.exists():
        raise RecipeError(f"Brand list {file} does not exist.", "Fix the grounding check's 'brands_file'.")
    data = yamlfile.load(file.read_text(encoding="utf-8")) or []
    if isinstance(data, list):
        return tuple(str(b) for b in data), frozenset()
    return tuple(str(b) for b in data.get("brands", [])), frozenset(
        str(w) for w in data.get("common_words", [])
    )


@dataclass
class Source:
    """What the source row says, computed once per item."""

    text: str
    folded: str
    quantities: list[Quantity]
    materials: set[str]
    material_words: list[str]
    brand: str | None


def read_source(row: dict[str, Any], allow: list[str]) -> Source:
    text = "\n".join([row_text(row), *allow])
    found = vocabulary().find(text)
    words = list(dict.fromkeys(w for _, w in found))
    return Source(
        text=text,
        folded=text.casefold(),
        quantities=quantities(text) + spelled_numbers(text),
        materials=vocabulary().closure({m for m, _ in found}),
        material_words=words,
        brand=row_brand(row),
    )


def _brand_pattern(brands: tuple[str, ...]) -> re.Pattern[str] | None:
    if not brands:
        return None
    alts = sorted(brands, key=len, reverse=True)
    body = "|".join(re.escape(b) if _HAN.search(b) else rf"(?<![\w-]){re.escape(b)}(?![\w-])" for b in alts)
    return re.compile(body)


@register("grounding")
class GroundingCheck:
    name = "grounding"

    def __init__(self, spec: CheckSpec) -> None:
        p = spec.params
        self.spec = spec
        self.fields = as_fields(p.get("fields", p.get("field")))
        self.allow = as_fields(p.get("allow")) or []
        self.allowed = {a.casefold() for a in self.allow}
        self.parts = {k: bool(p.get(k, True)) for k in ("numbers", "materials", "brands_check")}
        shipped, self.common_words = brand_list(p.get("brands_file"))
        self.brands = _brand_pattern(shipped + tuple(as_fields(p.get("brands")) or []))

    def __call__(self, item: CheckItem) -> list[Finding]:
        source = read_source(item.row, self.allow)
        findings: list[Finding] = []
        for path, text in strings(item.output, self.fields):
            if self.parts["numbers"]:
                findings += self._numbers(path, text, source)
            if self.parts["materials"]:
                findings += self._materials(path, text, source)
            if self.parts["brands_check"]:
                findings += self._brands(path, text, source)
        return findings or passed(self.name, self.spec)

    def _numbers(self, path: str, text: str, source: Source) -> list[Finding]:
        found = []
        for q in quantities(text):
            if q.text.casefold() in self.allowed or any(q.grounded_by(s) for s in source.quantities):
                continue
            same = [s.describe() for s in source.quantities if q.dimension and s.dimension == q.dimension]
            says = f" (source says: {', '.join(dict.fromkeys(same))})" if same else ""
            reason = f"'{q.describe()}' in '{path}' is not in the source row{says}."
            found.append(problem(self.name, self.spec, reason, path, kind="number", term=q.describe()))
        return found

    def _materials(self, path: str, text: str, source: Source) -> list[Finding]:
        found = []
        for material, written in vocabulary().find(text):
            folded = written.casefold()
            if material in source.materials or folded in source.folded or folded in self.allowed:
                continue
            says = ", ".join(source.material_words) or "no material"
            reason = f"'{written}' in '{path}' is not in the source row (source says: {says})."
            found.append(problem(self.name, self.spec, reason, path, kind="material", term=written))
        return found

    def _sentence_word(self, match: re.Match[str], text: str) -> bool:
        """A brand that is also a word ("Sharp blades ...") says nothing when it opens a sentence."""
        before = text[: match.start()].rstrip()
        return match.group(0) in self.common_words and (not before or before[-1] in ".!?:;\n")

    def _brands(self, path: str, text: str, source: Source) -> list[Finding]:
        if self.brands is None:
            return []
        found = []
        for m in dict.fromkeys(
            m.group(0) for m in self.brands.finditer(text) if not self._sentence_word(m, text)
        ):
            folded = m.casefold()
            if folded in source.folded or folded in self.allowed:
                continue
            own = f"the row's brand is {source.brand}" if source.brand else "the row names no brand"
            reason = f"'{m}' in '{path}' is a brand the source row does not mention ({own})."
            found.append(problem(self.name, self.spec, reason, path, kind="brand", term=m))
        return found
