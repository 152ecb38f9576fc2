"""The script check flags text a translation left in a script its target language is not written in."""

from __future__ import annotations

from typing import Any

import pytest

from skuforge.checks.base import CheckItem, CheckSpec, build, verdict
from skuforge.checks.script import leftovers, script_runs, target_scripts

ROW = {"title": "PAPAGO 368miniHD 行車記錄器"}


def bad(
    output: Any, row: dict[str, Any] | None = None, locale: str | None = "en", **params: Any
) -> list[str]:
    check = build(CheckSpec(check="script", **params))
    return [f.reason for f in check(CheckItem(row=row or ROW, output=output, locale=locale)) if not f.ok]


def test_a_fragment_left_in_the_source_script_is_flagged_with_the_fragment_quoted() -> None:
    (reason,) = bad({"title": "PAPAGO 368miniHD row-car recording器"})
    assert "'器'" in reason and "Han" in reason and "from the source" in reason


def test_a_clean_translation_passes() -> None:
    assert bad({"title": "PAPAGO 368miniHD Dash Cam"}) == []


def test_the_item_goes_to_review_not_done() -> None:
    check = build(CheckSpec(check="script", on_fail="flag"))
    item = CheckItem(row=ROW, output={"title": "Eye兔 Silica Shell"}, locale="en")
    assert verdict(check(item)) == "flagged"


def test_digits_punctuation_and_symbols_belong_to_no_script() -> None:
    assert bad({"title": "【49146】 Shoulder Bag ★ 20×30cm ™ ～ 2pcs／set"}) == []


def test_a_glossary_term_kept_in_the_source_script_is_allowed() -> None:
    row = {"title": "無印良品 收納盒"}
    assert bad({"title": "無印良品 Storage Box"}, row, terms=["無印良品"]) == []
    assert bad({"title": "無印良品 Storage Box"}, row) != []


def test_terms_may_come_one_per_line_as_a_rendered_template_gives_them() -> None:
    row = {"title": "無印良品 收納盒"}
    assert bad({"title": "無印良品 Storage Box"}, row, terms="無印良品\nAnker") == []


def test_the_rows_brand_in_the_source_script_is_allowed() -> None:
    row = {"title": "凱蒂貓 涼鞋", "brand": "凱蒂貓"}
    assert bad({"title": "凱蒂貓 Sandals"}, row) == []


def test_every_field_and_list_item_is_looked_at_and_reported_by_field() -> None:
    output = {"title": "Sandals", "selling_points": ["Soft sole", "Fits 小童"]}
    (reason,) = bad(output, {"title": "涼鞋 小童"})
    assert reason.startswith("'selling_points'")


def test_only_the_named_fields_are_checked() -> None:
    assert bad({"title": "Sandals", "note": "小童"}, {"title": "涼鞋"}, fields=["title"]) == []


def test_a_script_foreign_to_both_sides_is_flagged_too() -> None:
    (reason,) = bad({"title": "Sandals サンダル"}, {"title": "涼鞋"})
    assert "Katakana" in reason and "not written in" in reason


@pytest.mark.parametrize(
    ("locale", "output", "flagged"),
    [
        ("zh-TW", {"title": "Anker 行動電源 10000mAh"}, False),  # Latin stays allowed in every target
        ("ja", {"title": "無印良品 収納ボックス"}, False),  # Japanese uses Han and kana
        ("ru", {"title": "Сумка 單肩"}, True),
        ("de", {"title": "Tasche Сумка"}, True),
        ("sr-Latn", {"title": "Torba Торба"}, True),
        ("ko", {"title": "가방 包"}, False),  # Korean may use Han
    ],
)
def test_each_target_allows_its_own_scripts(locale: str, output: dict[str, str], flagged: bool) -> None:
    assert bool(bad(output, {"title": "單肩包 Торба"}, locale=locale)) is flagged


def test_without_a_target_locale_there_is_nothing_to_judge() -> None:
    assert bad({"title": "記錄器"}, locale=None) == []


def test_the_locale_param_stands_in_for_an_item_without_one() -> None:
    check = build(CheckSpec(check="script", locale="en"))
    assert not all(f.ok for f in check(CheckItem(row=ROW, output={"title": "記錄器"})))


def test_runs_are_split_by_script() -> None:
    assert script_runs("Eye兔 Silica サンダル Сумка") == [
        ("兔", "Han"),
        ("サンダル", "Katakana"),
        ("Сумка", "Cyrillic"),
    ]


def test_leftovers_say_whether_the_source_used_that_script() -> None:
    found = leftovers("Bag 包 Сумка", "en", source="單肩包")
    assert [(f.text, f.from_source) for f in found] == [("包", True), ("Сумка", False)]


def test_target_scripts_read_the_language_and_a_script_subtag() -> None:
    assert target_scripts("en-US") == ()
    assert target_scripts("zh_Hant") == ("Han",)
    assert target_scripts("ja-JP") == ("Han", "Hiragana", "Katakana")
