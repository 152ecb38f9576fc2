"""A step's output budget may be sized from the product data, and a check param may be a list expression."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.errors import RecipeError
from skuforge.recipes import load_recipe
from skuforge.recipes.loader import validate_recipe_file

RECIPE = """\
name: sized
version: "1"
params:
  glossary: {type: list, default: [Anker]}
glossary: [PowerCore]
instruction: Translate the product data.
input: {fields: [title]}
output: {fields: {title: string}}
checks:
  - {check: glossary, terms: "{{ recipe.glossary + params.glossary }}"}
  - {check: length, field: title, max_chars: "{{ 20 * 3 }}"}
max_tokens: BUDGET
"""


def recipe(tmp_path: Path, budget: str) -> Path:
    path = tmp_path / "sized.yaml"
    path.write_text(RECIPE.replace("BUDGET", budget), encoding="utf-8")
    return path


def budget_for(tmp_path: Path, budget: str, title: str) -> int | None:
    loaded = load_recipe(recipe(tmp_path, budget))
    step = loaded.steps[0]
    request = step.build_request({"title": title}, {}, {}, loaded.params, row_label="row 2")
    assert request is not None
    return request.max_tokens


def test_a_number_is_the_budget_of_every_request(tmp_path: Path) -> None:
    assert budget_for(tmp_path, "300", "short") == 300
    assert budget_for(tmp_path, "300", "a much longer title " * 20) == 300


def test_an_expression_grows_with_the_product_data(tmp_path: Path) -> None:
    expression = '"[16 + 2 * data_tokens, 400] | min"'
    short = budget_for(tmp_path, expression, "高露潔 牙刷")
    longer = budget_for(tmp_path, expression, "高露潔 雙效潔淨牙刷單支 超值組 四入裝 軟毛")
    assert short is not None and longer is not None
    assert 16 < short < longer < 400
    assert budget_for(tmp_path, expression, "long " * 2000) == 400


def test_the_character_count_of_the_data_is_there_too(tmp_path: Path) -> None:
    # the data block is {"title": "abcd"}: 17 characters
    assert budget_for(tmp_path, '"data_chars"', "abcd") == 17


def test_an_expression_that_gives_no_number_names_the_step_and_the_row(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="max_tokens.*row 2") as info:
        budget_for(tmp_path, "\"'many'\"", "abcd")
    assert "e.g." in (info.value.hint or "")


def test_a_syntax_error_in_the_budget_is_reported_with_its_line(tmp_path: Path) -> None:
    problems = validate_recipe_file(recipe(tmp_path, '"2 *"'))
    assert any("max_tokens" in str(p) and p.line == 12 for p in problems), problems


def test_a_zero_budget_is_refused_when_the_recipe_loads(tmp_path: Path) -> None:
    problems = validate_recipe_file(recipe(tmp_path, "0"))
    assert any("positive" in p.message for p in problems), problems


def test_a_check_param_that_is_one_expression_keeps_its_type(tmp_path: Path) -> None:
    loaded = load_recipe(recipe(tmp_path, "60"))
    glossary, length = loaded.steps[0].checks_for(loaded.resolve_params({"glossary": "Anker,Nano"}))
    assert glossary.params["terms"] == ["PowerCore", "Anker", "Nano"]
    assert length.params["max_chars"] == 60
