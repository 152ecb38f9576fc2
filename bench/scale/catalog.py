"""The generated catalog and what a correct answer for each of its rows is.

The mock answers from the fake provider's generator, which is a pure function of the request, so the
expected answer of every row can be computed here, after the run, without counting against either client.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPE = Path(__file__).with_name("bench.yaml")
LISTING = Path(__file__).with_name("listing.yaml")
MODEL = "bench"
OUTPUT_TOKENS = 100
COLUMN = "bench_tagline"
RECIPES = {"one-field": (RECIPE, "tagline"), "realistic": (LISTING, "title")}
"""The two bench recipes: the one-field tagline, and the realistic listing (12 fields in, a list out)."""
WIDE = ["sku", "title", "category", "brand", "color", "material", "size", "weight", "dimensions",
        "features", "description", "care", "origin"]  # fmt: skip
_WORDS = [
    "steel",
    "cotton",
    "oak",
    "copper",
    "linen",
    "walnut",
    "bamboo",
    "wool",
    "glass",
    "ceramic",
    "leather",
    "nylon",
]
_KINDS = [
    "kettle",
    "shirt",
    "chair",
    "lamp",
    "mug",
    "towel",
    "desk",
    "scarf",
    "bowl",
    "jacket",
    "stool",
    "blanket",
]


def write_catalog(path: Path, rows: int, wide: bool = False) -> Path:
    """`rows` products with distinct titles, written as CSV: (sku, title, category), or with `wide` the twelve
    product fields a real listing feed has (brand, colour, material, size, a paragraph of description...)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(WIDE if wide else ["sku", "title", "category"])
        for i in range(rows):
            a, b = _WORDS[i % 12], _KINDS[(i // 12) % 12]
            row = [f"B{i:07d}", f"Acme {a} {b} model {i}", ["Kitchen", "Home", "Apparel"][i % 3]]
            w.writerow(row + _details(i, a, b) if wide else row)
    return path


def _details(i: int, material: str, kind: str) -> list[str]:
    """Brand, colour, material, size, weight, dimensions, features, description, care, origin."""
    colour = ["black", "white", "navy blue", "sage green", "terracotta"][i % 5]
    size = ["S", "M", "L", "XL", "one size"][i % 5]
    features = f"{material} body; {colour} finish; model {i}; easy to clean; gift box included"
    description = (
        f"The Acme {kind} model {i} is made of {material} with a {colour} finish. It is built for everyday "
        f"use at home and in the office, weighs {200 + i % 700} g and measures {10 + i % 30} x {5 + i % 20} "
        f"x {3 + i % 9} cm. Each piece is checked by hand before it leaves the workshop."
    )
    care = "Wipe clean with a damp cloth; do not bleach." if i % 2 else "Machine wash cold, tumble dry low."
    return ["Acme", colour, material, size, f"{200 + i % 700} g", f"{10 + i % 30} x {5 + i % 20} cm",
            features, description, care, ["Portugal", "Vietnam", "China", "Poland"][i % 4]]  # fmt: skip


@dataclass(slots=True)
class Expected:
    row_id: str
    body: dict[str, Any]  # the chat/completions body skuforge sends
    prompt_key: str  # the mock server's per-prompt counter key
    answer: str  # the text the mock answers with


def expected(catalog: Path, every: int = 1, recipe_path: Path = RECIPE) -> Iterator[Expected]:
    """The request and answer of every `every`-th row, rendered by skuforge's own recipe code."""
    from skuforge.catalog import open_catalog
    from skuforge.providers.base import Capabilities
    from skuforge.providers.fake import fake_answer
    from skuforge.providers.openai import OpenAIProvider
    from skuforge.recipes import load_recipe
    from skuforge.testing.mock_openai import _prompt_key

    recipe = load_recipe(str(recipe_path), [])
    params = recipe.resolve_params({})
    (step,) = recipe.steps
    provider = OpenAIProvider(
        MODEL,
        base_url="http://127.0.0.1:1/v1",
        capabilities=Capabilities(
            json_schema=True,
            json_mode=True,
            streaming=True,
            batch=True,
        ),
    )
    for n, row in enumerate(open_catalog(str(catalog), id_column="sku").rows()):
        if n % every:
            continue
        request = step.build_request(row.data, {}, {}, params, row_label=row.line)
        body = provider.body(request)
        pairs = [(m["role"], m["content"]) for m in body["messages"]]
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema")
        answer = fake_answer(
            pairs, schema=schema, json_mode=fmt.get("type") == "json_object", target_tokens=OUTPUT_TOKENS
        )
        yield Expected(row.row_id, body, _prompt_key(MODEL, pairs, fmt), answer)
