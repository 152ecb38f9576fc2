"""Rules of the individual checks that the seeded catalog does not pin down."""

from __future__ import annotations

import random

import pytest

from skuforge.checks.base import CheckItem, CheckSpec, available, build
from skuforge.checks.length import count_chars, count_words
from skuforge.checks.quantities import quantities
from skuforge.errors import RecipeError


def _bad(check: str, output: object, row: dict | None = None, **params: object) -> list[str]:
    spec = CheckSpec(check=check, **params)
    item = CheckItem(row=row or {}, output=output, locale=params.get("locale"))  # type: ignore[arg-type]
    return [f.reason for f in build(spec)(item) if not f.ok]


def test_every_check_of_this_part_is_registered() -> None:
    assert {"schema", "length", "language", "grounding", "refusal", "duplicate"} <= set(available())


def test_a_mixed_number_is_not_read_as_its_fraction() -> None:
    assert [q.value for q in quantities('1-9/16" socket')] == [1.5625]
    assert [q.value for q in quantities('9/16" socket')] == [0.5625]


def test_a_unit_written_once_applies_to_every_dimension() -> None:
    assert [q.unit for q in quantities("14.7 x 11.1 x 10.2 inches")] == ["inches"] * 3


def test_numbers_inside_model_codes_are_not_quantities() -> None:
    assert quantities("YA24a PG-210 4K 3D") == []


def test_an_exact_unit_conversion_is_grounded() -> None:
    row = {"title": "Ruler, 12 in, 500 g"}
    assert _bad("grounding", {"title": "Ruler, 30.5 cm, 1.1 lb"}, row) == []
    assert _bad("grounding", {"title": "Ruler, 40 cm"}, row) == [
        "'40 cm' in 'title' is not in the source row (source says: 12 in)."
    ]


def test_a_zh_material_is_grounded_by_its_english_name() -> None:
    assert _bad("grounding", {"title": "铜锅"}, {"title": "Copper pot"}) == []


def test_allow_accepts_a_term_the_source_lacks() -> None:
    assert _bad("grounding", {"title": "Nike shoe"}, {"title": "Shoe"}, allow=["Nike"]) == []


def test_cjk_text_is_counted_in_characters_and_latin_in_words() -> None:
    assert count_chars("不锈钢 炒锅") == 6
    assert count_words("不锈钢炒锅") == 5
    assert count_words("Stainless  steel wok, 32 cm") == 5


def test_length_limit_applies_to_each_element_of_a_list() -> None:
    reasons = _bad("length", {"points": ["short", "x" * 30]}, field="points", max_chars=20)
    assert reasons == ["'points[1]' has 30 characters; the limit is at most 20."]


def test_a_length_check_without_limits_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError):
        build(CheckSpec(check="length", field="title"))


def test_short_and_code_only_strings_are_not_judged_for_language() -> None:
    assert _bad("language", {"title": "XL", "model": "PG-210 XL 4x6"}, locale="de") == []


def test_n_a_is_accepted_when_the_recipe_allows_it() -> None:
    assert _bad("refusal", {"material": "N/A"}, allow_na=True) == []


def test_schema_reason_names_the_json_path() -> None:
    schema = {"type": "object", "properties": {"points": {"type": "array", "items": {"type": "string"}}}}
    spec = CheckSpec(check="schema")
    item = CheckItem(row={}, output={"points": ["a", 3]}, schema=schema)
    reasons = [f.reason for f in build(spec)(item) if not f.ok]
    assert reasons == ["Field 'points[1]' is not valid: 3 is not of type 'string'."]


def test_duplicate_finds_a_late_near_copy_among_thousands_and_flags_nothing_else() -> None:
    rng = random.Random(3)
    words = [f"word{i}" for i in range(3000)]
    check = build(CheckSpec(check="duplicate"))
    texts = [" ".join(rng.choices(words, k=40)) for _ in range(3000)]
    flagged = [
        i for i, t in enumerate(texts) if not check(CheckItem(row={}, output={"s": t}, row_id=str(i)))[0].ok
    ]
    assert flagged == []
    copy = texts[17] + " extra"
    finding = check(CheckItem(row={}, output={"s": copy}, row_id="late"))[0]
    assert not finding.ok and finding.details["other_row_id"] == "17"


def test_duplicate_ignores_the_same_row_in_another_locale_or_retry() -> None:
    check = build(CheckSpec(check="duplicate"))
    text = {"s": "Lightweight knit upper hugs the foot for a secure fit on every run."}
    check(CheckItem(row={}, output=text, row_id="A"))
    assert check(CheckItem(row={}, output=text, row_id="A"))[0].ok
