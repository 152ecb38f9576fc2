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
MODEL = "bench"
OUTPUT_TOKENS = 100
COLUMN = "bench_tagline"
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


def write_catalog(path: Path, rows: int) -> Path:
    """`rows` products with distinct titles (sku, title, category), written as CSV."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["sku", "title", "category"])
        for i in range(rows):
            a, b = _WORDS[i % 12], _KINDS[(i // 12) % 12]
            w.writerow([f"B{i:07d}", f"Acme {a} {b} model {i}", ["Kitchen", "Home", "Apparel"][i % 3]])
    return path


@dataclass(slots=True)
class Expected:
    row_id: str
    body: dict[str, Any]  # the chat/completions body skuforge sends
    prompt_key: str  # the mock server's per-prompt counter key
    answer: str  # the text the mock answers with


def expected(catalog: Path, every: int = 1) -> Iterator[Expected]:
    """The request and answer of every `every`-th row, rendered by skuforge's own recipe code."""
    from skuforge.catalog import open_catalog
    from skuforge.providers.base import Capabilities
    from skuforge.providers.fake import fake_answer
    from skuforge.providers.openai import OpenAIProvider
    from skuforge.recipes import load_recipe
    from skuforge.testing.mock_openai import _prompt_key

    recipe = load_recipe(str(RECIPE), [])
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
