"""Validation: every problem with file:line; field-list shorthand; fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.errors import RecipeError
from skuforge.recipes import list_recipes, load_recipe, validate_recipe_file
from skuforge.recipes.spec import OutputSpec, compile_output

GOOD = """\
name: tagline
version: 1
description: A tagline.
instruction: |
  Write a tagline.
  Make it catchy.
input:
  fields: [title]
output:
  fields:
    tagline: string
    keywords: "list[string]"
    score: int?
  required: [tagline]
requirements:
  - Short.
"""


def _write(tmp_path: Path, text: str, name: str = "tagline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_flat_recipe_has_no_problems_and_one_step_named_after_it(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    assert validate_recipe_file(path) == []
    recipe = load_recipe(str(path))
    assert recipe.version == "1"
    assert [s.name for s in recipe.steps] == ["tagline"]


def test_template_syntax_error_is_reported_at_its_line_in_the_yaml_file(tmp_path: Path) -> None:
    text = GOOD.replace("  Make it catchy.", "  Make it {{ catchy.")
    problems = validate_recipe_file(_write(tmp_path, text))
    assert len(problems) == 1
    assert problems[0].line == 6
    assert "template syntax error" in problems[0].message
    assert str(problems[0]).startswith(f"{tmp_path / 'tagline.yaml'}:6: instruction: ")


def test_template_syntax_error_in_a_requirement_of_a_later_step_gets_its_line(tmp_path: Path) -> None:
    text = """\
name: two
version: "1"
steps:
  - name: first
    instruction: Do it.
    input: {fields: [title]}
    output: {fields: {a: string}}
  - name: second
    instruction: Again.
    input: {fields: [title]}
    output: {fields: {b: string}}
    requirements:
      - fine
      - "{% if outputs.first.a %}broken"
"""
    problems = validate_recipe_file(_write(tmp_path, text))
    assert [(p.line, p.where) for p in problems] == [(14, "steps[1].requirements[1]")]


def test_yaml_error_unknown_key_and_missing_version_are_reported_with_lines(tmp_path: Path) -> None:
    assert validate_recipe_file(_write(tmp_path, "name: x\n  bad: [\n", "a.yaml"))[0].line is not None
    text = GOOD.replace("version: 1\n", "").replace("requirements:", "requirments:")
    problems = validate_recipe_file(_write(tmp_path, text, "b.yaml"))
    messages = {p.message: p.line for p in problems}
    assert messages["'version' is required"] == 1
    assert messages["unknown key 'requirments'; did you mean 'requirements'?"] == 14


def test_unknown_check_is_reported_with_a_suggestion(tmp_path: Path) -> None:
    text = GOOD + "checks:\n  - {check: lenght, field: tagline, max_chars: 40}\n"
    problems = validate_recipe_file(_write(tmp_path, text))
    assert [(p.line, p.message) for p in problems] == [(18, "unknown check 'lenght'. Did you mean 'length'?")]


def test_loading_a_broken_recipe_raises_a_recipe_error_listing_its_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("  Make it catchy.", "  {% for %}"))
    with pytest.raises(RecipeError) as err:
        load_recipe(str(path))
    assert f"{path}:6" in err.value.message
    assert "skuforge recipes validate" in err.value.hint


def test_field_list_shorthand_compiles_to_the_expected_json_schema() -> None:
    spec = OutputSpec.model_validate(
        {
            "fields": {
                "tagline": "string",
                "keywords": "list[string]",
                "score": "int?",
                "meta": {"type": "object"},
            },
            "required": ["tagline"],
        }
    )
    assert compile_output(spec) == {
        "type": "object",
        "properties": {
            "tagline": {"type": "string"},
            "keywords": {"type": "array", "items": {"type": "string"}},
            "score": {"type": ["integer", "null"]},
            "meta": {"type": "object"},
        },
        "required": ["tagline"],
        "additionalProperties": False,
    }


def test_shorthand_without_required_requires_every_field() -> None:
    schema = compile_output(OutputSpec.model_validate({"fields": {"a": "string", "b": "number|null"}}))
    assert schema["required"] == ["a", "b"]
    assert schema["properties"]["b"] == {"type": ["number", "null"]}


def test_unknown_shorthand_type_is_a_problem_on_the_output_line(tmp_path: Path) -> None:
    problems = validate_recipe_file(_write(tmp_path, GOOD.replace("score: int?", "score: decimal")))
    assert [(p.line, "unknown type 'decimal'" in p.message) for p in problems] == [(9, True)]


def test_fingerprint_changes_when_the_recipe_text_changes_and_not_otherwise(tmp_path: Path) -> None:
    first = load_recipe(str(_write(tmp_path, GOOD, "one.yaml"))).fingerprint()
    same = load_recipe(str(_write(tmp_path, GOOD, "two.yaml"))).fingerprint()
    reformatted = load_recipe(str(_write(tmp_path, "# a comment\n" + GOOD, "three.yaml"))).fingerprint()
    changed = load_recipe(
        str(_write(tmp_path, GOOD.replace("Short.", "Shorter."), "four.yaml"))
    ).fingerprint()
    assert first == same == reformatted
    assert changed != first
    assert len(first) == 64


def test_an_edited_file_is_reloaded_not_served_from_the_cache(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    before = load_recipe(str(path)).fingerprint()
    path.write_text(GOOD.replace("Short.", "Very short, please."), encoding="utf-8")
    assert load_recipe(str(path)).fingerprint() != before


def test_expression_syntax_error_in_a_rule_is_reported_at_the_rule(tmp_path: Path) -> None:
    text = GOOD + 'rules:\n  - when: "category =="\n    text: Shoes.\n'
    problems = validate_recipe_file(_write(tmp_path, text))
    assert [(p.line, p.where) for p in problems] == [(18, "rules[0].when")]
    assert "expression syntax error" in problems[0].message


def test_list_recipes_shows_a_broken_user_recipe_with_its_problem(tmp_path: Path) -> None:
    _write(tmp_path, "name: broken\nversion: '1'\ninstruction: '{{ oops'\n", "broken.yaml")
    info = next(i for i in list_recipes([tmp_path]) if i.name == "broken")
    assert info.problem is not None and "broken.yaml:" in info.problem
    assert not info.builtin
