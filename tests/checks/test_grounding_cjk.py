"""Grounding reads numbers glued to Chinese text, as Chinese titles write them."""

from __future__ import annotations

from skuforge.checks.base import CheckItem, CheckSpec, build

ROW = {"title": "KGH 经典15.6英寸笔记本电脑双肩包 黑色 812DA9184"}


def failed(output: dict[str, object]) -> list[str]:
    check = build(CheckSpec(check="grounding"))
    return [f.reason for f in check(CheckItem(row=ROW, output=output)) if not f.ok]


def test_a_size_written_right_after_a_chinese_word_is_found_in_the_source() -> None:
    assert failed({"size": "15.6英寸"}) == []


def test_a_different_size_is_still_caught() -> None:
    assert failed({"size": "17英寸"})
