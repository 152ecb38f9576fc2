"""Every recipe render is bounded: values are sized before they are built, loops are counted, and a render
has a deadline. A recipe whose templates blow up is invalid for `recipes validate`, the loader and the API."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from skuforge.cli.main import main
from skuforge.errors import RecipeError
from skuforge.recipes import bounds, check_recipe_dirs, load_recipe, validate_recipe_file
from skuforge.recipes.sandbox import SecurityError, compile_expression, compile_template, evaluate, render

BLOWUPS = {
    "center": "{{ 'x'|center(999999999) }}",
    "format filter width": "{{ '%999999999s'|format('x') }}",
    "format precision": "{{ '%.999999999f' % 1.0 }}",
    "percent width": "{{ '%-999999999s' % 'x' }}",
    "indent": "{{ 'x'|indent(999999999) }}",
    "indent per line": "{{ ('a\\n' * 50000)|indent('x' * 100) }}",
    "str.format width": "{{ '{:>999999999}'.format('x') }}",
    "str.format_map width": "{{ '{a:>999999999}'.format_map({'a': 1}) }}",
    "ljust": "{{ 'x'.ljust(999999999) }}",
    "zfill": "{{ 'x'.zfill(999999999) }}",
    "expandtabs": "{{ 'x\\ty'.expandtabs(999999999) }}",
    "replace filter": "{{ ('a' * 100000)|replace('a', 'a' * 100000) }}",
    "replace method": "{{ ('a' * 100000).replace('a', 'aaa') }}",
    "translate": "{{ ('a' * 100000).translate({97: 'x' * 1000}) }}",
    "wordwrap": "{{ 'x'|wordwrap(1, wrapstring='y' * 100000) }}",
    "join fan-out": "{% set s = 'x' * 100000 %}{{ [s, s, s]|join }}",
    "str.join fan-out": "{% set s = 'x' * 100000 %}{{ ''.join([s, s, s]) }}",
    "batch": "{{ 'ab'|batch(999999999, 'x')|list }}",
    "repetition": "{{ 'x' * 10000000 }}",
    "list repetition of text": "{% set s = 'x' * 100000 %}{{ ([s] * 100000)|length }}",
    "nested references": "{% set s = 'x' * 100000 %}{% set l = [s, s, s, s] %}{{ [l, l, l, l] }}",
    "tojson fan-out": "{% set s = 'x' * 100000 %}{{ [s, s, s]|tojson }}",
    "concat doubling": (
        "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    ),
    "plus doubling": (
        "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}"
    ),
    "number squaring": (
        "{% set ns = namespace(n=10 ** 60) %}{% for i in range(30) %}{% set ns.n = ns.n * ns.n %}{% endfor %}"
    ),
    "power": "{{ (10 ** 64) ** 64 }}",
    "set-block doubling": (
        "{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}"
        "{% set t %}{{ ns.s }}{{ ns.s }}{% endset %}{% set ns.s = t %}{% endfor %}"
    ),
    "macro doubling": (
        "{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{% set ns = namespace(s='x' * 1000) %}"
        "{% for i in range(30) %}{% set ns.s = twice(ns.s) %}{% endfor %}"
    ),
    "filter block": (
        "{% set s = 'x' * 100000 %}{% filter upper %}{% for i in range(5000) %}{{ s }}{% endfor %}"
        "{% endfilter %}"
    ),
    "nested ranges": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "nested loops over lists": (
        "{% set l = ('x' * 100000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}"
    ),
}


@pytest.mark.parametrize("template", BLOWUPS.values(), ids=BLOWUPS.keys())
def test_a_template_that_would_build_something_huge_is_stopped_before_it_does(template: str) -> None:
    compiled = compile_template(template)
    tracemalloc.start()
    try:
        with pytest.raises(SecurityError) as caught:
            render(compiled, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000, f"{peak:,} bytes allocated before the render was stopped"
    assert any(word in str(caught.value) for word in ("over the limit", "more than", "over 100,000", "bits"))


def test_the_errors_say_what_was_too_large_and_the_limit() -> None:
    with pytest.raises(SecurityError) as caught:
        render(compile_template(BLOWUPS["center"]), {})
    assert str(caught.value) == "center() would be 999,999,999 characters long, over the limit of 200,000"
    with pytest.raises(SecurityError) as caught:
        render(compile_template(BLOWUPS["nested loops over lists"]), {})
    assert str(caught.value) == "the template's loops ran more than 20,000 steps"


def test_lipsum_is_not_available_in_recipes() -> None:
    with pytest.raises(Exception, match="'lipsum' is undefined"):
        render(compile_template("{{ lipsum(999999999) }}"), {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ targets|join(', ') }}", "a, b"),
        ("{% for t in targets %}- {{ t }}\n{% endfor %}", "- a\n- b\n"),
        ("{{ 'a' ~ 'b' ~ 3 }}", "ab3"),
        ("{{ '%s-%03d'|format('a', 7) }}", "a-007"),
        ("{{ '{}:{:>4}'.format('a', 'b') }}", "a:   b"),
        ("{% set x %}hi {{ 1 }}{% endset %}{{ x|upper }}", "HI 1"),
        ("{{ [1, 2]|sum }} {{ 2 ** 10 }} {{ 'ab' * 2 }} {{ [1] + [2] }}", "3 1024 abab [1, 2]"),
        ("{{ 'x'|center(5) }}|{{ 'a\nb'|indent(2, true) }}", "  x  |  a\n  b"),
        ("{{ title.replace('Mug', 'Cup') }} {{ ', '.join(targets) }}", "Blue Cup a, b"),
    ],
)
def test_ordinary_templates_render_as_before(template: str, expected: str) -> None:
    assert render(compile_template(template), {"targets": ["a", "b"], "title": "Blue Mug"}) == expected


def test_a_loop_over_a_constant_list_renders_the_same_every_time() -> None:
    compiled = compile_template("{% for i in [1, 2, 3] %}{{ i }}{% endfor %}")
    assert [render(compiled, {}) for _ in range(3)] == ["123", "123", "123"]


def test_a_render_past_its_deadline_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(bounds, "time", SimpleNamespace(monotonic=lambda: clock.now))

    def slow(value: Any) -> Any:  # stands for work that takes a while, e.g. sorting a long list
        clock.now += 1.0
        return value

    template = compile_template("{% for i in range(10) %}{{ slow(i) }}{% endfor %}")
    with pytest.raises(SecurityError, match=r"the render took longer than 2 s"):
        render(template, {"slow": slow})
    assert render(compile_template("{{ slow(1) }}"), {"slow": slow}) == "1"  # one second is within


def test_time_spent_in_knowledge_lookups_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(bounds, "time", SimpleNamespace(monotonic=lambda: clock.now))

    def lookup() -> str:  # an embedding model loading on first use
        with bounds.paused():
            clock.now += 30.0
        return "passage"

    template = compile_template("{% for i in range(3) %}{{ lookup() }}{% endfor %}")
    assert render(template, {"lookup": lookup}) == "passage" * 3


def test_expressions_are_bounded_too() -> None:
    with pytest.raises(SecurityError, match="center"):
        evaluate(compile_expression("'x'|center(999999999)"), {})
    assert evaluate(compile_expression("category == 'Shoes'"), {"category": "Shoes"}) is True


# -- recipes ----------------------------------------------------------------------------------------------

RECIPE = """\
name: blowup
version: "1"
instruction: "Write a title. {template}"
input: {{fields: [title]}}
output: {{fields: {{title: string}}}}
"""


def write_recipe(tmp_path: Path, template: str) -> Path:
    path = tmp_path / "blowup.yaml"
    path.write_text(RECIPE.format(template=template.replace('"', '\\"')), encoding="utf-8")
    return path


def unwrapped(text: str) -> str:
    """Text as the terminal's line wrapping cannot change it: no whitespace at all."""
    return "".join(text.split())


@pytest.mark.parametrize(
    "template",
    ["{{ 'x'|center(999999999) }}", "{{ '%999999999s'|format(title) }}", "{{ title|indent(999999999) }}"],
    ids=["center", "format", "indent"],
)
def test_recipes_validate_calls_a_recipe_whose_template_blows_up_invalid(
    tmp_path: Path, template: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_recipe(tmp_path, template)
    assert main(["recipes", "validate", str(path)]) == 2
    printed = unwrapped(capsys.readouterr().out)
    expected = f"{path}:3: step 'blowup', instruction: a render against a sample row was stopped by"
    assert unwrapped(expected) in printed
    assert unwrapped("over the limit of 200,000") in printed
    with pytest.raises(RecipeError, match="stopped by the sandbox"):
        load_recipe(str(path))


def test_a_recipe_that_renders_within_bounds_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_recipe(tmp_path, "{{ title|center(40) }}")
    assert validate_recipe_file(path) == []
    assert main(["recipes", "validate", str(path)]) == 0
    assert "is a valid recipe" in " ".join(capsys.readouterr().out.split())


def test_the_built_in_recipes_all_render_a_sample_row_within_bounds() -> None:
    from skuforge.recipes import BUILTIN_DIR

    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        assert validate_recipe_file(path) == [], path.name


def test_a_recipe_dir_that_does_not_exist_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nonexistent"
    with pytest.raises(RecipeError) as caught:
        check_recipe_dirs([tmp_path, missing])
    assert caught.value.message == f"Recipe directory {missing} does not exist."
    assert "--recipe-dir" in (caught.value.hint or "")
    assert main(["recipes", "list", "--recipe-dir", str(missing)]) == 2
    assert f"Recipe directory {missing} does not exist." in capsys.readouterr().err.replace("\n", "")
    a_file = tmp_path / "recipe.yaml"
    a_file.write_text("name: x\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="is a file, not a directory"):
        check_recipe_dirs([a_file])


def test_json_in_a_template_is_bounded_like_everything_else() -> None:
    big = {"k": ["x" * 1000] * 100}
    assert json.loads(render(compile_template("{{ data|tojson }}"), {"data": big})) == big
    with pytest.raises(SecurityError):
        render(compile_template("{{ data|tojson }}"), {"data": {"k": ["x" * 100_000] * 3}})


def test_recipes_validate_reports_a_template_too_slow_for_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = SimpleNamespace(now=0.0)

    def monotonic() -> float:  # every look at the clock finds a second gone: a slow render, deterministically
        ticks.now += 1.0
        return ticks.now

    path = write_recipe(tmp_path, "{% for w in title.split() %}{{ w|sort|join }}{% endfor %}")
    monkeypatch.setattr(bounds, "time", SimpleNamespace(monotonic=monotonic))
    problems = validate_recipe_file(path)
    assert [(p.line, p.where) for p in problems] == [(3, "step 'blowup', instruction")]
    assert problems[0].message.endswith("stopped by the sandbox: the render took longer than 2 s")
