"""The built-in recipes: they load, validate, and behave as the engine expects on real-looking rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from skuforge.errors import RecipeError
from skuforge.recipes import BUILTIN_DIR, list_recipes, load_recipe, validate_recipe_file

BUILTINS = ["attributes", "selling_points", "faq", "title", "description", "translate", "enrich"]


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_recipe_loads_and_validates_without_problems(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name
    assert recipe.version
    assert recipe.description
    assert validate_recipe_file(BUILTIN_DIR / f"{name}.yaml") == []


def test_list_recipes_shows_every_builtin_with_its_steps() -> None:
    infos = {info.name: info for info in list_recipes()}
    assert set(BUILTINS) <= set(infos)
    assert infos["enrich"].steps == ["attributes", "selling_points", "translate"]
    assert all(info.builtin and info.problem is None for info in infos.values())


def test_unknown_recipe_suggests_the_closest_name_and_lists_the_rest() -> None:
    with pytest.raises(RecipeError) as err:
        load_recipe("selling_point")
    assert "Unknown recipe 'selling_point'" in err.value.message
    assert "Did you mean 'selling_points'?" in err.value.hint
    assert "translate" in err.value.hint


def test_user_recipe_with_a_builtin_name_overrides_it_and_list_says_so(tmp_path: Path) -> None:
    text = (BUILTIN_DIR / "title.yaml").read_text().replace('version: "1.0"', 'version: "9.9-mine"')
    (tmp_path / "my_title.yaml").write_text(text)
    assert load_recipe("title", [tmp_path]).version == "9.9-mine"
    info = next(i for i in list_recipes([tmp_path]) if i.name == "title")
    assert info.source == tmp_path / "my_title.yaml"
    assert info.overrides == BUILTIN_DIR / "title.yaml"
    assert not info.builtin


def test_recipes_in_skuforge_home_are_found_by_name(_isolated_home: Path) -> None:
    (_isolated_home / "recipes").mkdir()
    text = (BUILTIN_DIR / "faq.yaml").read_text().replace("name: faq", "name: shop_faq")
    (_isolated_home / "recipes" / "shop_faq.yaml").write_text(text)
    assert load_recipe("shop_faq").steps[0].name == "shop_faq"


def test_missing_recipe_file_path_is_an_error_that_names_it(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(str(tmp_path / "nope.yaml"))


def test_attributes_asks_only_for_the_attributes_the_row_lacks() -> None:
    step = load_recipe("attributes").steps[0]
    params = load_recipe("attributes").resolve_params({})
    row = {"title": "Levi's 501 Jeans, blue denim, W32", "brand": "Levi's", "color": "blue", "size": None}
    request = step.build_request(row, {}, {}, params, row_label="4")
    assert request is not None
    assert list(request.json_schema["properties"]) == ["material", "size", "weight"]
    ask = request.messages[-1].content.split("</product>")[-1]
    assert "material" in ask and "brand" not in ask and "color" not in ask
    # the system prompt is the same for every row (a static prefix that providers can cache)
    other = step.build_request({"title": "Plain mug"}, {}, {}, params, row_label="5")
    assert other is not None and other.messages[0].content == request.messages[0].content
    # the recipe's own examples are the same for every row too: never re-keyed to the row's attributes
    assert other.messages[:-1] == request.messages[:-1]
    assert (
        request.messages[2].content
        == '{"brand": null, "color": "白色", "material": "纯棉", "size": "L", "weight": null}'
    )


def test_attributes_sends_no_request_when_nothing_is_missing() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "brand,color"})
    row = {"title": "Levi's 501", "brand": "Levi's", "color": "blue"}
    assert recipe.steps[0].build_request(row, {}, {}, params, row_label="1") is None


def test_attributes_columns_never_overwrite_a_given_value() -> None:
    step = load_recipe("attributes").steps[0]
    row = {"title": "Levi's 501", "brand": "Levi's", "color": ""}
    columns = step.columns(row, {"brand": "Wrangler", "color": "blue", "material": None}, {})
    assert columns == {"color": "blue"}


def test_attributes_allowed_values_become_an_enum_that_still_allows_null() -> None:
    recipe = load_recipe("attributes")
    params = recipe.resolve_params({"attributes": "color", "allowed": "color=black|white|blue"})
    request = recipe.steps[0].build_request({"title": "Mug"}, {}, {}, params, row_label="1")
    assert request is not None
    assert request.json_schema["properties"]["color"]["enum"] == ["black", "white", "blue", None]
    assert '"black", "white", "blue", null' in request.messages[0].content


def test_translate_makes_one_variant_per_locale_with_locale_columns() -> None:
    recipe = load_recipe("translate")
    params = recipe.resolve_params({"locales": "de,fr,zh-CN"})
    step = recipe.steps[0]
    assert step.variants(params) == [{"locale": "de"}, {"locale": "fr"}, {"locale": "zh-CN"}]
    assert step.column_names(params)[:2] == ["title@de", "description@de"]
    request = step.build_request(
        {"title": "Red mug", "description": ""}, {}, {"locale": "zh-CN"}, params, row_label="2"
    )
    assert request is not None
    assert "Simplified Chinese" in request.messages[0].content
    assert list(request.json_schema["properties"]) == ["title"]
    assert step.columns({}, {"title": "红色马克杯"}, {"locale": "zh-CN"}) == {"title@zh-CN": "红色马克杯"}


def test_translate_needs_locales_and_requires_the_fields_as_columns() -> None:
    recipe = load_recipe("translate")
    with pytest.raises(RecipeError, match="needs parameter 'locales'"):
        recipe.resolve_params({})
    params = recipe.resolve_params({"locales": "de", "fields": "title,bullets"})
    assert recipe.required_columns(params) == {"title", "bullets"}


def test_translate_lists_glossary_terms_that_occur_in_the_product() -> None:
    recipe = load_recipe("translate")
    params = recipe.resolve_params({"locales": "de", "glossary": "PowerCore,MagSafe"})
    row = {"title": "Anker PowerCore 10000", "description": "Compact charger."}
    request = recipe.steps[0].build_request(row, {}, {"locale": "de"}, params, row_label="1")
    assert request is not None
    assert "Keep these terms exactly as written: PowerCore." in request.messages[0].content


def test_enrich_reads_completed_attributes_and_earlier_outputs() -> None:
    recipe = load_recipe("enrich")
    params = recipe.resolve_params({"locales": "de"})
    _, points, translate = recipe.steps
    row = {"title": "Classic mug", "color": ""}
    outputs = {
        "attributes": {"color": "red", "material": None},
        "selling_points": {"selling_points": ["A", "B", "C"]},
    }
    request = points.build_request(row, outputs, {}, params, row_label="1")
    assert request is not None and '"color": "red"' in request.messages[-1].content
    request = translate.build_request(row, outputs, {"locale": "de"}, params, row_label="1")
    assert request is not None
    assert request.json_schema["properties"]["selling_points"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert recipe.required_columns(params) == {"title"}


def test_selling_points_in_a_locale_get_an_at_locale_column_and_check_limits_follow_params() -> None:
    recipe = load_recipe("selling_points")
    params = recipe.resolve_params({"locales": "de", "max_chars": "60"})
    step = recipe.steps[0]
    assert step.column_names(params) == ["selling_points@de"]
    length = next(c for c in step.checks_for(params) if c.check == "length")
    assert length.params["max_chars"] == 60
    assert next(c for c in step.checks if c.check == "length").params["max_chars"] == 80


def test_title_output_goes_to_its_own_column_not_over_the_original_title() -> None:
    step = load_recipe("title").steps[0]
    assert step.column_names({}) == ["seo_title"]
    assert step.columns({"title": "old"}, {"title": "New Title"}, {}) == {"seo_title": "New Title"}


def test_description_asks_for_characters_for_chinese_products_and_words_otherwise() -> None:
    recipe = load_recipe("description")
    step, params = recipe.steps[0], recipe.resolve_params({})
    zh = step.build_request({"title": "美麗諾羊毛保暖襪 淺灰"}, {}, {}, params, row_label="1")
    en = step.build_request({"title": "Merino wool socks, grey"}, {}, {}, params, row_label="2")
    assert zh is not None and en is not None
    assert "150 to 300 characters" in zh.messages[0].content
    assert "80 to 150 words" in en.messages[0].content
