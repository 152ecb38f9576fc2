"""Filters parse once and render safely for both engines; keyword tokens handle codes and CJK."""

from __future__ import annotations

import pytest

from skuforge.errors import SelectionError
from skuforge.knowledge.filters import fts_query, keyword_tokens, lance_predicate, parse_where, sql_predicate


def test_a_where_string_parses_equalities_and_in_lists() -> None:
    got = parse_where("category='Shoes' AND locale IN ('en', \"de\")")
    assert got == {"category": ["Shoes"], "locale": ["en", "de"]}


def test_quotes_inside_values_are_kept_and_escaped_for_each_engine() -> None:
    filters = parse_where("category = 'Men''s shoes'")
    assert filters == {"category": ["Men's shoes"]}
    assert lance_predicate(filters) == "category IN ('Men''s shoes')"
    assert sql_predicate(filters, "c") == ("c.category IN (?)", ["Men's shoes"])


def test_a_dict_where_accepts_single_values_and_lists() -> None:
    assert parse_where({"category": "Tea", "locale": ["en", "zh"]}) == {
        "category": ["Tea"],
        "locale": ["en", "zh"],
    }


@pytest.mark.parametrize(
    "where", ["colour='red'", "category = Shoes", "category='a' OR locale='b'", "category IN ()", "1=1; DROP"]
)
def test_anything_else_is_refused_with_an_example(where: str) -> None:
    with pytest.raises(SelectionError, match="Write it like category='Shoes'"):
        parse_where(where)


def test_model_numbers_are_kept_whole_and_cjk_becomes_bigrams() -> None:
    tokens = keyword_tokens("Sony WH-1000XM4 防水透气")
    assert "wh1000xm4" in tokens and "wh" in tokens and "1000xm4" in tokens
    assert {"防水", "水透", "透气"} <= set(tokens)


def test_keyword_queries_drop_function_words_and_quote_tokens() -> None:
    assert fts_query("how do I wash my sneakers") == '"wash" OR "sneakers"'
    assert fts_query("the and") is None
