"""Answers: JSON found in fences or after prose, schema errors with a reason, the repair turn, params."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skuforge.errors import OutputError, RecipeError
from skuforge.recipes import load_recipe
from skuforge.recipes.answer import check_schema


def _step():
    return load_recipe("title").steps[0]


@pytest.mark.parametrize(
    "text",
    [
        '{"title": "Nike Pegasus 40"}',
        '```json\n{"title": "Nike Pegasus 40"}\n```',
        'Sure! Here is the JSON you asked for:\n{"title": "Nike Pegasus 40"} Hope it helps {"x": 1}',
        '```\n{"title": "Nike Pegasus 40"}\n```\nExplanation: ...',
    ],
)
def test_parse_takes_the_first_json_object_from_fences_or_prose(text: str) -> None:
    assert _step().parse(text) == {"title": "Nike Pegasus 40"}


def test_parse_rejects_schema_invalid_output_with_the_reason() -> None:
    with pytest.raises(OutputError) as err:
        _step().parse('{"title": "ok", "extra": 1}')
    assert "Additional properties are not allowed ('extra' was unexpected)" in err.value.message
    assert err.value.raw == '{"title": "ok", "extra": 1}'
    with pytest.raises(OutputError, match="title: 42 is not of type 'string'"):
        _step().parse('{"title": 42}')


def test_parse_rejects_text_without_json() -> None:
    with pytest.raises(OutputError, match="is not JSON"):
        _step().parse("I cannot help with that.")


def test_parse_validates_against_a_stricter_request_schema_when_given() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "color", "allowed": "color=red|blue"})
    request = recipe.steps[0].build_request({"title": "Mug"}, {}, {}, params, row_label="1")
    assert request is not None
    assert recipe.steps[0].parse('{"color": "green"}') == {"color": "green"}
    with pytest.raises(OutputError, match="'green' is not one of"):
        recipe.steps[0].parse('{"color": "green"}', request.json_schema)


def test_repair_request_keeps_the_turns_and_quotes_the_bad_answer_and_the_error() -> None:
    step = _step()
    request = step.build_request({"title": "mug"}, {}, {}, load_recipe("title").params, row_label="1")
    assert request is not None
    repair = step.repair_request(request, '{"titel": "Mug"}', "title: 'title' is a required property")
    assert repair.messages[: len(request.messages)] == request.messages
    assert repair.messages[-2].role == "assistant" and repair.messages[-2].content == '{"titel": "Mug"}'
    assert repair.messages[-1].role == "user"
    assert "'title' is a required property" in repair.messages[-1].content
    assert "JSON object only" in repair.messages[-1].content
    assert repair.json_schema == request.json_schema and repair.key("m") != request.key("m")


def test_params_from_strings_are_coerced_to_their_declared_types() -> None:
    recipe = load_recipe("title")
    assert recipe.resolve_params({"max_chars": "60", "locales": " de, fr ,"}) == {
        "max_chars": 60,
        "locales": ["de", "fr"],
    }
    assert recipe.params == {"max_chars": 80, "locales": []}


def test_unknown_or_badly_typed_param_is_a_recipe_error_with_a_hint() -> None:
    recipe = load_recipe("title")
    with pytest.raises(RecipeError) as err:
        recipe.resolve_params({"max_char": "60"})
    assert (
        "has no parameter 'max_char'" in err.value.message and "Did you mean 'max_chars'?" in err.value.hint
    )
    with pytest.raises(RecipeError, match="'max_chars' must be int, got 'sixty'"):
        recipe.resolve_params({"max_chars": "sixty"})


def test_map_params_accept_the_cli_form_and_json() -> None:
    recipe = load_recipe("attributes")
    cli = recipe.resolve_params({"allowed": "color=red|blue; material=cotton"})["allowed"]
    assert cli == {"color": ["red", "blue"], "material": ["cotton"]}
    assert recipe.resolve_params({"allowed": '{"color": ["red"]}'})["allowed"] == {"color": ["red"]}


def test_a_schema_that_is_not_json_schema_is_reported_with_the_reason() -> None:
    assert check_schema({"type": "object", "properties": {"title": {"type": "string"}}}) is None
    reason = check_schema({"type": "object", "properties": {"title": {"type": "text"}}})
    assert reason is not None and "'text'" in reason


def test_a_run_with_valid_schemas_and_answers_never_loads_the_pure_python_validator() -> None:
    code = (
        "import sys\n"
        "from skuforge.recipes import load_recipe\n"
        "step = load_recipe('title').steps[0]\n"
        'step.parse(\'{"title": "Nike Pegasus 40"}\')\n'
        "print('jsonschema' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # imported only to explain an invalid schema or answer
