"""The attribute_kind check flags a fact put in the wrong attribute."""

from __future__ import annotations

from skuforge.checks.base import CheckItem, CheckSpec, build


def flagged(output: dict[str, object], **params: object) -> list[str]:
    check = build(CheckSpec(check="attribute_kind", **params))
    return [f.field or "" for f in check(CheckItem(row={}, output=output)) if not f.ok]


def test_real_materials_and_colours_pass_in_english_and_chinese() -> None:
    assert flagged({"material": "Stainless Steel", "color": "Navy Blue"}) == []
    assert flagged({"material": "纯棉", "color": "白色"}) == []


def test_a_colour_temperature_is_not_a_material() -> None:
    assert flagged({"material": "3000K", "color": "Soft White"}) == ["material"]


def test_a_material_is_not_a_colour() -> None:
    assert flagged({"color": "纯棉", "material": "白色"}) == ["color", "material"]


def test_other_attributes_and_nulls_are_not_judged() -> None:
    assert flagged({"size": "XL", "brand": "Nike", "material": None}) == []


def test_allowed_values_pass() -> None:
    assert flagged({"material": "Mini Kits"}) == ["material"]
    assert flagged({"material": "Mini Kits"}, allow=["mini kits"]) == []
