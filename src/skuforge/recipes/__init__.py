"""Recipes: YAML files with sandboxed Jinja2 that say what to generate for each product.

A recipe (flat form shown; `steps: [ {name: ..., <sections>}, ... ]` chains several, and a later step reads
`outputs.<earlier step>`):

    name: title
    version: "1.0"
    description: SEO title within a length.
    params:   {max_chars: {type: int, default: 80}, locales: {type: list, default: []}}
    defaults: {brand: ""}                      # fill missing or empty fields first
    variants: {locale: params.locales}         # one item per product x locale ([{}] when empty)
    instruction: "Write an SEO title of at most {{ params.max_chars }} characters."
    input:    {fields: [title, brand?, description?], max_chars: 1500}   # `?` = optional
    output:   {fields: {title: string}}        # or {schema: <JSON Schema>}
    requirements: ["Keep the brand name."]
    rules:    [{when: "category == 'Shoes'", text: "Mention the size range."}]
    examples: [{input: {title: ...}, output: {title: ...}}]
    checks:   [{check: length, field: title, max_chars: "{{ params.max_chars }}", on_fail: flag}]
    columns:  {name: "seo_title"}              # pattern over {field}, {step} and variant keys
    max_tokens: 120

Per-row output keys (`targets: {from: params.attributes, when: missing}`) ask only for what a row lacks
(attributes) or has (translate); a row with no target gets no request.

Public API: `load_recipe`, `list_recipes`, `validate_recipe_file`, `Recipe`, `Step`, `RecipeInfo`,
`RecipeProblem`.
"""

from skuforge.recipes.loader import (
    BUILTIN_DIR,
    check_recipe_dirs,
    list_recipes,
    load_recipe,
    search_dirs,
    validate_recipe_file,
)
from skuforge.recipes.recipe import Recipe, RecipeInfo, RecipeProblem
from skuforge.recipes.sandbox import language_name
from skuforge.recipes.step import Step

__all__ = [
    "BUILTIN_DIR",
    "Recipe",
    "RecipeInfo",
    "RecipeProblem",
    "Step",
    "check_recipe_dirs",
    "language_name",
    "list_recipes",
    "load_recipe",
    "search_dirs",
    "validate_recipe_file",
]
