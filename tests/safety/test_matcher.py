"""The matcher finds evasive spellings, reports original offsets, and does not over-match."""

from __future__ import annotations

import pytest

from skuforge.safety import Matcher, Term, normalize


def _matcher(*terms: tuple[str, str], allow: tuple[str, ...] = ()) -> Matcher:
    return Matcher([Term(t, cat, "block", "test") for t, cat in terms], allow)


@pytest.mark.parametrize(
    ("text", "expected_span"),
    [
        ("ＦＲＥＥ ＳＨＩＰＰＩＮＧ today", "ＦＲＥＥ ＳＨＩＰＰＩＮＧ"),
        ("get f.r.e.e shipping", "f.r.e.e shipping"),
        ("FREE-SHIPPING", "FREE-SHIPPING"),
        ("f r e e s h i p p i n g", "f r e e s h i p p i n g"),
        ("fre\u200be shipping", "fre\u200be shipping"),
    ],
)
def test_evasive_latin_spellings_match_and_point_at_the_original_text(text: str, expected_span: str) -> None:
    [match] = _matcher(("free shipping", "claim")).scan(text)
    assert text[match.start : match.end] == expected_span
    assert match.text == expected_span


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("極品好茶", "極品"),
        ("傻@冒", "傻@冒"),
        ("傻 冒", "傻 冒"),
        ("最　佳", "最　佳"),
        ("这是傻*冒吧", "傻*冒"),
    ],
)
def test_cjk_terms_match_through_traditional_forms_and_inserted_symbols(text: str, span: str) -> None:
    matches = _matcher(("极品", "absolute"), ("傻冒", "insult"), ("最佳", "absolute")).scan(text)
    assert [m.text for m in matches] == [span]


def test_latin_terms_match_only_on_word_boundaries() -> None:
    m = _matcher(("cunt", "profanity"), ("sex", "profanity"), ("cure", "medical"))
    assert m.scan("Scunthorpe United scarf, Essex county, secure clasp, pedicure kit") == []
    assert [x.term for x in m.scan("this cures nothing but a cure is a cure")] == ["cure", "cure"]


def test_separators_between_words_never_join_two_real_words_into_a_term() -> None:
    m = _matcher(("bestseller", "claim"), ("number one", "claim"))
    assert m.scan("the best seller-side option") == []  # 'best' 'seller' are two words, not 'bestseller'
    assert m.scan("enter your model number. One of the classics") == []  # a sentence boundary


def test_cjk_words_split_by_a_space_or_a_list_separator_do_not_join() -> None:
    m = _matcher(
        ("白粉", "drug"),
    )
    assert m.scan("白 粉橘 粉藍") == []
    assert m.scan("顏色 白/粉") == []
    assert [x.text for x in m.scan("白 粉")] == ["白 粉"]  # single spaced-out characters do join


def test_allow_list_phrase_suppresses_a_term_only_inside_it() -> None:
    m = _matcher(("第一", "absolute"), allow=("第一次", "第一代"))
    assert m.scan("第一次使用 第一代产品") == []
    assert [x.text for x in m.scan("第一次使用 行业第一")] == ["第一"]


def test_a_term_inside_a_longer_term_of_the_same_category_is_reported_once() -> None:
    m = _matcher(("第一", "absolute"), ("销量第一", "absolute"))
    assert [x.term for x in m.scan("销量第一")] == ["销量第一"]


def test_match_reports_term_category_action_pack_and_normalised_form() -> None:
    [match] = _matcher(("best seller", "claim")).scan("A B.E.S.T S.E.L.L.E.R!")
    assert (match.term, match.category, match.action, match.pack) == ("best seller", "claim", "block", "test")
    assert match.normalized == "bestseller"
    assert match.text == "B.E.S.T S.E.L.L.E.R"


def test_normalize_keeps_an_offset_for_every_derived_character() -> None:
    norm = normalize("Ｈｅｌｌｏ 極品 ㎏ w.o.r.l.d")
    assert norm.words == "hello 极品 kg world"
    assert len(norm.words_index) == len(norm.words) and len(norm.compact_index) == len(norm.compact)
    assert norm.original[norm.words_index[-1]] == "d"
