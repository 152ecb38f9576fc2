"""A step can convert the Chinese of its product data with OpenCC before the model sees it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skuforge.errors import RecipeError
from skuforge.recipes import load_recipe
from skuforge.recipes.chinese import convert, convert_text
from skuforge.recipes.loader import validate_recipe_file

RECIPE = """\
name: converted
version: "1"
params:
  glossary: {type: list, default: []}
glossary: [無印良品]
instruction: Translate the product data.
input: {fields: [title], optional: [tags], opencc: OPENCC}
output: {fields: {title: string}}
"""


def data_seen(tmp_path: Path, opencc: str, row: dict, locale: str = "en", **given: str) -> dict:
    path = tmp_path / "converted.yaml"
    path.write_text(RECIPE.replace("OPENCC", opencc), encoding="utf-8")
    recipe = load_recipe(path)
    params = recipe.resolve_params(given)
    request = recipe.steps[0].build_request(row, {}, {"locale": locale}, params, row_label="row 2")
    assert request is not None
    block = request.messages[-1].content.split("<product>")[1].split("</product>")[0]
    return dict(json.loads(block))


def test_traditional_titles_reach_the_model_in_simplified() -> None:
    assert convert_text("樹德 桌上型資料櫃 記錄器", "t2s") == "树德 桌上型资料柜 记录器"


def test_taiwan_phrases_can_be_converted_too() -> None:
    assert convert_text("滑鼠 隨身碟", "tw2sp") == "鼠标 U盘"


def test_kept_terms_stay_exactly_as_written() -> None:
    assert convert_text("日本無印良品收納盒", "t2s", keep=["無印良品"]) == "日本無印良品收纳盒"


def test_lists_are_converted_item_by_item_and_other_values_left_alone() -> None:
    assert convert(["記錄器", 3], "t2s") == ["记录器", 3]
    assert convert(12, "t2s") == 12 and convert("記錄器", None) == "記錄器"


def test_an_unknown_configuration_names_the_known_ones() -> None:
    with pytest.raises(RecipeError, match="t2x") as info:
        convert_text("記錄器", "t2x")
    assert "tw2sp" in (info.value.hint or "")


def test_the_step_converts_its_data_and_keeps_the_glossary(tmp_path: Path) -> None:
    row = {"title": "無印良品 記錄器 Anker", "tags": ["臺灣", "收納"]}
    seen = data_seen(tmp_path, "\"'t2s'\"", row, glossary="Anker")
    assert seen == {"title": "無印良品 记录器 Anker", "tags": ["台湾", "收纳"]}


def test_the_expression_can_leave_some_targets_unconverted(tmp_path: Path) -> None:
    expression = "\"none if locale[:2] in ('zh', 'ja') else 't2s'\""
    assert data_seen(tmp_path, expression, {"title": "記錄器"}, locale="ja") == {"title": "記錄器"}
    assert data_seen(tmp_path, expression, {"title": "記錄器"}, locale="de") == {"title": "记录器"}


def test_a_bad_configuration_in_a_recipe_says_where(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="input.opencc"):
        data_seen(tmp_path, "\"'t2x'\"", {"title": "記錄器"})


def test_a_syntax_error_in_the_expression_is_found_when_the_recipe_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "converted.yaml"
    path.write_text(RECIPE.replace("OPENCC", '"t2s if"'), encoding="utf-8")
    assert any("opencc" in str(p) for p in validate_recipe_file(path))
