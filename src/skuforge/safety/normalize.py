"""Fold text into the forms the matcher searches, keeping a map back to the original offsets.

Evasion works by making a banned term look different to a naive matcher while a reader still sees it:
full-width letters ("ＦＲＥＥ"), traditional characters ("極品" for "极品"), symbols or spaces pushed
between the characters ("傻@冒", "f.r.e.e", "b e s t  s e l l e r"), invisible zero-width characters.
We undo all of that before matching, and because a finding must point at the text the merchant wrote,
every folded character remembers the offset of the original character it came from.

Three forms are derived from one text:

- `folded`: NFKC (full-width -> half-width, ligatures, circled letters), case-folded, traditional ->
  simplified Chinese (character by character, so the offset map stays exact), combining marks and
  invisible format characters dropped.
- `compact`: the folded tokens concatenated with every separator removed. CJK terms match here as
  substrings, so "傻@冒" and "最 佳" are found.
- `words`: the folded tokens joined by single spaces, with runs of single spaced-out letters ("f.r.e.e")
  rejoined into one word, and a space at every change between CJK and other scripts. Latin terms match here
  on word boundaries only, so folding never produces a "Scunthorpe" match across two real words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Characters treated as CJK: kana, CJK unified ideographs (+ext A), compatibility ideographs, hangul.
CJK_RANGES = "\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_RE = re.compile(f"[{CJK_RANGES}]")
# A token: a run of CJK characters, or a run of other letters/digits (plus '#' and '%' so "#1" and
# "100%" stay whole). Everything else (spaces, punctuation, symbols, '_') separates tokens.
TOKEN_RE = re.compile(f"[{CJK_RANGES}]+|(?:[^\\W_{CJK_RANGES}]|[#%])+")
# The most separator characters allowed between two spaced-out letters that are rejoined ("f . r . e . e").
_MAX_SPACED_GAP = 3
# List and sentence separators: "白/粉" (white/pink) or "number. One" must not join into a term.
_HARD_GAP_RE = re.compile(r"[!?;|,/\\、，。！？；｜•·\n\r\t]|\.\s")

_FOLD_CACHE: dict[str, str] = {}


def has_cjk(text: str) -> bool:
    """True when `text` holds at least one CJK character (such terms match as substrings)."""
    return _CJK_RE.search(text) is not None


@lru_cache(maxsize=1)
def _t2s() -> Any:
    from skuforge.errors import require

    opencc = require("opencc", "Traditional-to-simplified folding for safety checks", "safety")
    return opencc.OpenCC("t2s")


def _fold_char(ch: str) -> str:
    """Fold one character; the result may be empty (dropped) or longer than one character ("㎏" -> "kg")."""
    if unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return ""  # combining marks and zero-width/format characters carry no visible letter
    out = unicodedata.normalize("NFKC", ch).casefold()
    if has_cjk(out):
        out = _t2s().convert(out)
    return out


def fold(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each of its characters, the offset of the original character."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    pieces: list[str] = []
    index: list[int] = []
    cache = _FOLD_CACHE
    for i, ch in enumerate(text):
        folded = cache.get(ch)
        if folded is None:
            folded = _fold_char(ch)
            if len(cache) < 200_000:
                cache[ch] = folded
        if folded:
            pieces.append(folded)
            index.extend([i] * len(folded))
    return "".join(pieces), index


def fold_term(term: str) -> str:
    """How a term or allow-list phrase is written in the derived forms: folded, separators collapsed."""
    folded, _ = fold(term)
    return " ".join(m.group() for m in TOKEN_RE.finditer(folded))


@dataclass(frozen=True)
class Normalized:
    """One text and its derived forms; `*_index[i]` is the original offset of derived character i."""

    original: str
    folded: str
    folded_index: list[int]
    compact: str
    compact_index: list[int]
    words: str
    words_index: list[int]
    spelled: tuple[tuple[int, int], ...] = ()  # [start, end) in `words` of rejoined spaced-out letters

    def span(self, index: list[int], start: int, end: int) -> tuple[int, int]:
        """Original [start, end) of the derived characters [start, end)."""
        return index[start], index[end - 1] + 1


def normalize(text: str) -> Normalized:
    """Fold `text` and build its compact and words forms with offset maps (see the module docstring)."""
    folded, findex = fold(text)
    tokens = [(m.start(), m.end()) for m in TOKEN_RE.finditer(folded)]
    compact, compact_index = _compact(folded, findex, tokens)
    words, words_index, spelled = _words(folded, findex, _rejoin_spaced(folded, tokens))
    return Normalized(text, folded, findex, compact, compact_index, words, words_index, spelled)


def _hard_gap(gap: str) -> bool:
    """A list or sentence separator ("白/粉", "number. One"): no term may match across it."""
    return _HARD_GAP_RE.search(gap) is not None


def _compact(folded: str, findex: list[int], tokens: list[tuple[int, int]]) -> tuple[str, list[int]]:
    """Tokens concatenated. A barrier (newline) stays between two tokens split by a hard separator, or by
    whitespace unless both are single characters: "傻 冒" joins (spaced-out evasion), "白 粉橘" does not."""
    parts: list[str] = []
    index: list[int] = []
    prev: tuple[int, int] | None = None
    for start, end in tokens:
        if prev is not None and prev[1] < start:
            gap = folded[prev[1] : start]
            spaced = any(c.isspace() for c in gap) and (prev[1] - prev[0] > 1 or end - start > 1)
            if spaced or _hard_gap(gap):
                parts.append("\n")
                index.append(findex[start])
        parts.append(folded[start:end])
        index.extend(findex[start:end])
        prev = (start, end)
    return "".join(parts), index


def _is_spaced_letter(folded: str, start: int, end: int) -> bool:
    return end - start == 1 and folded[start].isalpha() and not has_cjk(folded[start])


def _rejoin_spaced(folded: str, tokens: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Group tokens into words: a run of 3+ single letters with short gaps ("f.r.e.e") becomes one word."""
    groups: list[list[tuple[int, int]]] = []
    run: list[tuple[int, int]] = []
    for tok in tokens:
        if _is_spaced_letter(folded, *tok):
            gap = folded[run[-1][1] : tok[0]] if run else ""
            if run and (len(gap) > _MAX_SPACED_GAP or "\n" in gap):
                groups.extend([[t] for t in run] if len(run) < 3 else [run])
                run = []
            run.append(tok)
            continue
        if run:
            groups.extend([[t] for t in run] if len(run) < 3 else [run])
            run = []
        groups.append([tok])
    if run:
        groups.extend([[t] for t in run] if len(run) < 3 else [run])
    return groups


def _words(
    folded: str, findex: list[int], groups: list[list[tuple[int, int]]]
) -> tuple[str, list[int], tuple[tuple[int, int], ...]]:
    """Join word groups with single spaces (a newline across a hard separator); rejoined letters: one word.

    Tokens never mix CJK with other scripts (see `TOKEN_RE`), so "最佳seller" yields two words and a
    Latin term cannot match half of a CJK run. A joining space maps to the original offset of the next
    word's first character. Also returns the spans of rejoined letters: every letter there was a word
    of its own, so a term may start or end anywhere inside ("a b.e.s.t" -> "abest" still holds "best").
    """
    parts: list[str] = []
    index: list[int] = []
    prev_end = 0
    spelled: list[tuple[int, int]] = []
    for group in groups:
        if parts:
            parts.append("\n" if _hard_gap(folded[prev_end : group[0][0]]) else " ")
            index.append(findex[group[0][0]])
        prev_end = group[-1][1]
        begin = len(index)
        for start, end in group:
            parts.append(folded[start:end])
            index.extend(findex[start:end])
        if len(group) > 1:
            spelled.append((begin, len(index)))
    return "".join(parts), index, tuple(spelled)
