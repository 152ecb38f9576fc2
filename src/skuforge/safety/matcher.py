"""A multi-pattern matcher (Aho-Corasick) over folded text, reporting positions in the original text.

Thousands of terms are searched in one pass per text form (see `skuforge.safety.normalize`):

- terms that contain CJK characters match as substrings of the `compact` form, so separators pushed between
  the characters ("傻@冒") do not hide them;
- all other terms match on word boundaries of the `words` form, under two keys: their words joined by spaces
  ("best seller", which also catches "Best-Seller" and "BEST  SELLER") and, for multi-word terms, joined
  without spaces ("bestseller", which catches the spaced-out "b.e.s.t s.e.l.l.e.r"). Matching on word
  boundaries is what keeps "Scunthorpe" and "Essex" clean.

An allow-list phrase (e.g. "第一次" for the term "第一") suppresses every match that lies wholly inside one of
its occurrences: the term is fine in that context.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from skuforge.safety.normalize import TOKEN_RE, Normalized, fold, has_cjk, normalize

TermAction = Literal["flag", "block"]


@dataclass(frozen=True)
class Term:
    """One policy term: what to look for, what kind of problem it is, and how hard to react."""

    text: str
    category: str
    action: TermAction
    pack: str


@dataclass(frozen=True)
class Match:
    """One violation: `start`/`end` index the ORIGINAL text; `normalized` is the folded form that matched."""

    term: str
    category: str
    action: TermAction
    pack: str
    start: int
    end: int
    text: str
    normalized: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def term_keys(term: str) -> tuple[str, list[str]]:
    """The form a term matches in ('compact' or 'words') and its keys there."""
    folded, _ = fold(term)
    tokens = [m.group() for m in TOKEN_RE.finditer(folded)]
    if not tokens:
        return "words", []
    if has_cjk(folded):
        return "compact", ["".join(tokens)]
    keys = [" ".join(tokens)]
    if len(tokens) > 1:
        keys.append("".join(tokens))
    return "words", keys


def _automaton(entries: dict[str, Any]) -> Any:
    from skuforge.errors import require

    ahocorasick = require("ahocorasick", "The safety matcher", "safety")
    auto = ahocorasick.Automaton()
    for key, value in entries.items():
        auto.add_word(key, (len(key), value))
    if entries:
        auto.make_automaton()
    return auto


class Matcher:
    """Finds every term of a pack set in a text, honouring allow-list phrases. Build once, scan many."""

    def __init__(self, terms: Iterable[Term], allow: Iterable[str] = ()) -> None:
        by_form: dict[str, dict[str, Term]] = {"compact": {}, "words": {}}
        for term in terms:
            form, keys = term_keys(term.text)
            for key in keys:
                by_form[form][key] = term
        allow_form: dict[str, dict[str, str]] = {"compact": {}, "words": {}}
        for phrase in allow:
            form, keys = term_keys(phrase)
            for key in keys:
                allow_form[form][key] = phrase
        self.size = len(by_form["compact"]) + len(by_form["words"])
        self._terms = {form: _automaton(entries) for form, entries in by_form.items()}
        self._allow = {form: _automaton(entries) for form, entries in allow_form.items()}
        self._has = {form: bool(entries) for form, entries in by_form.items()}
        self._has_allow = {form: bool(entries) for form, entries in allow_form.items()}

    def scan(self, text: str) -> list[Match]:
        """All matches in `text`, ordered by position; identical (term, span) pairs reported once."""
        return self.scan_normalized(normalize(text))

    def scan_normalized(self, norm: Normalized) -> list[Match]:
        found: dict[tuple[str, str, int, int], Match] = {}
        for form, derived, index in (
            ("compact", norm.compact, norm.compact_index),
            ("words", norm.words, norm.words_index),
        ):
            if not self._has[form] or not derived:
                continue
            soft = norm.spelled if form == "words" else ()
            hits = list(self._hits(self._terms[form], derived, bounded=form == "words", soft=soft))
            if not hits:
                continue
            allowed = self._allowed_spans(form, derived) if self._has_allow[form] else []
            for start, end, term in hits:
                if any(a <= start and end <= b for a, b in allowed):
                    continue
                o_start, o_end = norm.span(index, start, end)
                match = Match(
                    term.text,
                    term.category,
                    term.action,
                    term.pack,
                    o_start,
                    o_end,
                    norm.original[o_start:o_end],
                    derived[start:end],
                )
                found.setdefault((term.text, term.pack, o_start, o_end), match)
        return _outermost(found.values())

    def _allowed_spans(self, form: str, derived: str) -> list[tuple[int, int]]:
        bounded = form == "words"
        return [(s, e) for s, e, _ in self._hits(self._allow[form], derived, bounded=bounded)]

    @staticmethod
    def _hits(
        auto: Any, derived: str, *, bounded: bool, soft: tuple[tuple[int, int], ...] = ()
    ) -> Iterable[tuple[int, int, Any]]:
        """(start, end, value) of each key found; `bounded` keeps only whole-word occurrences, where a
        position inside a `soft` span (rejoined spaced-out letters) counts as a word boundary."""
        last = len(derived) - 1
        for end_idx, (length, value) in auto.iter(derived):
            start, end = end_idx - length + 1, end_idx + 1
            if bounded:
                left = start == 0 or derived[start - 1] in " \n" or any(a < start < b for a, b in soft)
                right = end_idx == last or derived[end] in " \n" or any(a < end < b for a, b in soft)
                if not (left and right):
                    continue
            yield start, end, value


def _outermost(matches: Iterable[Match]) -> list[Match]:
    """Drop a match that lies inside a longer one of the same pack and category ("第一" in "销量第一"):
    one violation is reported once, by its most specific term."""
    ordered = sorted(matches, key=lambda m: (m.start, -m.end, m.term))
    kept: list[Match] = []
    for m in ordered:
        if any(
            k.pack == m.pack
            and k.category == m.category
            and k.start <= m.start
            and m.end <= k.end
            and (k.end - k.start) > (m.end - m.start)
            for k in kept
        ):
            continue
        kept.append(m)
    return sorted(kept, key=lambda m: (m.start, m.end, m.term))
