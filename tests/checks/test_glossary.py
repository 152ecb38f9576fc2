"""The glossary check: listed terms that the source contains come through unchanged."""

from __future__ import annotations

from typing import Any

from skuforge.checks.base import CheckItem, CheckSpec, build

TERMS = ["Anker", "PowerCore", "無印良品", "Go"]
ROW = {"title": "Anker PowerCore 行動電源 10000mAh", "description": "輕巧"}


def lost(output: Any, row: dict[str, Any] | None = None, **params: Any) -> list[list[str]]:
    check = build(CheckSpec(check="glossary", **{"terms": TERMS, **params}))
    return [f.details["lost"] for f in check(CheckItem(row=row or ROW, output=output)) if not f.ok]


def test_terms_kept_as_written_pass() -> None:
    assert lost({"title": "Anker PowerCore Power Bank 10000mAh"}) == []


def test_a_dropped_term_is_flagged_by_name() -> None:
    assert lost({"title": "Anker Power Bank 10000mAh"}) == [["PowerCore"]]


def test_a_changed_case_or_spelling_counts_as_lost() -> None:
    assert lost({"title": "ANKER Power Core Power Bank"}) == [["Anker", "PowerCore"]]


def test_a_term_the_source_does_not_contain_is_not_required() -> None:
    assert lost({"title": "Anker PowerCore Power Bank"}, {"title": "Anker PowerCore 行動電源"}) == []
    assert lost({"title": "Storage box"}, {"title": "收納盒"}) == []


def test_a_latin_term_must_stand_as_a_word_but_may_touch_chinese() -> None:
    assert lost({"title": "Google Chromecast"}, {"title": "Google Chromecast"}) == []
    assert lost({"title": "Anker充电宝"}, {"title": "Anker充電寶"}) == []


def test_a_chinese_term_is_found_inside_a_phrase() -> None:
    row = {"title": "日本無印良品收納盒"}
    assert lost({"title": "Japan 無印良品 storage box"}, row) == []
    assert lost({"title": "Japan MUJI storage box"}, row) == [["無印良品"]]


def test_each_output_field_is_compared_with_its_own_source_field() -> None:
    row = {"title": "Anker 行動電源", "description": "PowerCore 系列"}
    assert lost({"title": "Anker Power Bank", "description": "Power Core series"}, row) == [["PowerCore"]]


def test_a_field_the_row_lacks_is_skipped_unless_source_fields_say_where_to_look() -> None:
    assert lost({"selling_points": ["Light and small"]}) == []
    assert lost({"seo_title": "Power bank"}, source_fields=["title"]) == [["Anker", "PowerCore"]]


def test_list_outputs_are_read_whole() -> None:
    row = {"selling_points": ["Anker 品質", "輕巧"]}
    assert lost({"selling_points": ["Anker quality", "Light"]}, row) == []


def test_with_no_terms_the_check_passes() -> None:
    check = build(CheckSpec(check="glossary"))
    assert all(f.ok for f in check(CheckItem(row=ROW, output={"title": "x"})))


def test_terms_may_be_given_one_per_line() -> None:
    assert lost({"title": "Anker Power Bank"}, terms="Anker\nPowerCore\n") == [["PowerCore"]]


def test_with_codes_the_sources_model_numbers_must_come_through() -> None:
    row = {"title": "NIKE COURT ROYALE 男休閒鞋 白 AA2156100 500ml"}
    check = build(CheckSpec(check="glossary", codes=True))
    found = check(CheckItem(row=row, output={"title": "NIKE COURT ROYALE Men's Shoes White 500 ML"}))
    assert [f.details["lost"] for f in found if not f.ok] == [["AA2156100"]]
    kept = check(CheckItem(row=row, output={"title": "Nike Court Royale Shoes aa2156100 500ml"}))
    assert all(f.ok for f in kept)
