"""The verbatim check flags extracted values that the product data does not contain."""

from __future__ import annotations

from skuforge.checks.base import CheckItem, CheckSpec, build

ROW = {"title": "Nerf Sports Pro Grip Football, Blue", "description": "Stainless Steel 304 clamp, 13-19 mm"}


def findings(output: dict[str, object]) -> list[str]:
    check = build(CheckSpec(check="verbatim"))
    return [f.field or "" for f in check(CheckItem(row=ROW, output=output)) if not f.ok]


def test_values_copied_from_the_data_pass_whatever_their_case_and_spacing() -> None:
    assert findings({"color": "blue", "material": "stainless steel", "size": "13-19mm", "brand": None}) == []


def test_a_translated_value_is_flagged() -> None:
    assert findings({"color": "蓝色"}) == ["color"]


def test_an_invented_value_is_flagged_and_only_that_field() -> None:
    assert findings({"brand": "Nerf", "material": "Leather"}) == ["material"]


def test_only_the_named_fields_are_checked() -> None:
    check = build(CheckSpec(check="verbatim", fields=["brand"]))
    assert all(f.ok for f in check(CheckItem(row=ROW, output={"material": "Leather", "brand": "Nerf"})))
