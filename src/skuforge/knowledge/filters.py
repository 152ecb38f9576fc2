"""Metadata filters and keyword tokens, shared by the vector side (LanceDB) and the keyword side (FTS5).

A filter is written once (`category='Shoes' AND locale IN ('en','de')`, or a dict) and parsed into plain
data, then rendered for each engine with proper quoting, so a user's string never reaches SQL as-is.

Keyword search tokenises text itself before FTS5 sees it: Latin words are lower-cased, a code like
`WH-1000XM4` is also kept whole as `wh1000xm4` (so model numbers match however they are punctuated), and
CJK runs become overlapping character bigrams (so 防水 matches inside 防水透气 without a dictionary).
FTS5's porter stemmer then folds English endings (washing -> wash).
"""

from __future__ import annotations

import re
from typing import Any

from skuforge.errors import SelectionError

FILTER_FIELDS = ("category", "locale", "source", "kind")
Filters = dict[str, list[str]]

_CLAUSE = re.compile(
    r"\s*(?P<field>[A-Za-z_]+)\s*(?:(?P<eq>=)\s*(?P<value>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")"
    r"|(?P<in>IN)\s*\((?P<values>[^)]*)\))\s*",
    re.IGNORECASE,
)
_VALUE = re.compile(r"\s*('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")\s*(?:,|$)")
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_CODE = re.compile(r"[^\W_]+(?:[-_./+][^\W_]+)+")
_WORD = re.compile(r"[^\W_]+")
# Function words dropped from keyword *queries* only: they match everywhere and drown the rare terms.
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "should",
        "the",
        "this",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
    }
)


def _unquote(token: str) -> str:
    quote = token[0]
    return token[1:-1].replace(quote * 2, quote)


def _bad_where(where: str, why: str) -> SelectionError:
    return SelectionError(
        f"Cannot read the filter {where!r}: {why}.",
        f"Write it like category='Shoes' AND locale IN ('en','de'); fields: {', '.join(FILTER_FIELDS)}.",
    )


def _check_field(name: str, where: object) -> str:
    field = name.lower()
    if field not in FILTER_FIELDS:
        raise _bad_where(str(where), f"unknown field '{name}'")
    return field


def parse_where(where: dict[str, Any] | str | None) -> Filters:
    """Parse a dict or a `field='v' AND field IN ('a','b')` string into {field: allowed values}."""
    if not where:
        return {}
    if isinstance(where, dict):
        out: Filters = {}
        for name, value in where.items():
            values = value if isinstance(value, list | tuple | set) else [value]
            out[_check_field(name, where)] = [str(v) for v in values]
        return out
    filters: Filters = {}
    for clause in re.split(r"\s+AND\s+", where.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise _bad_where(where, f"'{clause.strip()}' is not field='value' or field IN ('a', 'b')")
        field = _check_field(match["field"], where)
        if match["eq"]:
            values = [_unquote(match["value"])]
        else:
            values = [_unquote(v) for v in _VALUE.findall(match["values"])]
            if not values:
                raise _bad_where(where, f"IN () for '{field}' lists no quoted values")
        filters[field] = [v for v in values if v in filters[field]] if field in filters else values
    return filters


def lance_predicate(filters: Filters) -> str | None:
    """Render filters as a LanceDB (DataFusion SQL) predicate, values quoted."""
    if not filters:
        return None
    clauses = []
    for field, values in filters.items():
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values) or "NULL"
        clauses.append(f"{field} IN ({quoted})")
    return " AND ".join(clauses)


def sql_predicate(filters: Filters, table: str) -> tuple[str, list[str]]:
    """Render filters as a SQLite WHERE fragment with parameters (empty fragment means no filter)."""
    clauses, params = [], []
    for field, values in filters.items():
        if not values:
            clauses.append("0")
            continue
        clauses.append(f"{table}.{field} IN ({', '.join('?' for _ in values)})")
        params.extend(values)
    return " AND ".join(clauses), params


def keyword_tokens(text: str) -> list[str]:
    """Tokens for the keyword index: Latin words, whole codes (punctuation dropped), CJK bigrams."""
    tokens: list[str] = []
    lowered = text.lower()
    for run in _CJK_RUN.findall(lowered):
        tokens.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    latin = _CJK_RUN.sub(" ", lowered)
    tokens.extend(re.sub(r"[-_./+]", "", code) for code in _CODE.findall(latin))
    tokens.extend(_WORD.findall(latin))
    return tokens


def fts_document(text: str) -> str:
    """The text FTS5 indexes: our tokens joined by spaces (FTS5's unicode61 then splits on the spaces)."""
    return " ".join(keyword_tokens(text))


def query_tokens(text: str) -> list[str]:
    """Tokens worth searching for: no function words, and of a code only the whole and its code-like parts.

    `SKU-012345` searches `sku012345` and `012345` but not `sku`, which every product row contains and
    which would make FTS5 score the whole index (measured: 240 ms -> a few ms at 100k chunks).
    """
    lowered = _CJK_RUN.sub(" ", text.lower())
    weak: set[str] = set()
    for code in _CODE.findall(lowered):
        weak.update(p for p in _WORD.findall(code) if len(p) < 4 or not any(ch.isdigit() for ch in p))
    return [t for t in dict.fromkeys(keyword_tokens(text)) if t not in STOPWORDS and t not in weak]


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression: any query token may match; BM25 ranks rare ones (model numbers) first."""
    tokens = query_tokens(text)
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in tokens) or None
