"""The eval runner sends one recipe request per product and scores what comes back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from skuforge.eval.loaders import fill_absent, load_gold
from skuforge.eval.runner import AttributesStep, evaluate
from skuforge.providers.fake import FakeProvider

FIXTURES = Path(__file__).parents[1] / "fixtures" / "eval"


def test_scripted_answers_are_scored_and_a_broken_answer_is_recorded_as_an_error() -> None:
    items = fill_absent(load_gold(FIXTURES / "ae-110k.jsonl", "ae-110k", limit=2))
    first = {name: (values[0] if values else None) for name, values in items[0].attributes.items()}
    provider = FakeProvider(script=[json.dumps(first), "I could not find any attributes."])
    report = asyncio.run(evaluate(items, provider, concurrency=1))
    assert [e["id"] for e in report["errors"]] == [items[1].id]
    exact = report["scores"]["exact"]["micro"]
    gold_values = sum(1 for values in items[0].attributes.values() if values)
    missed = sum(1 for values in items[1].attributes.values() if values)
    assert (exact["vc"], exact["vw"], exact["nv"], exact["vn"]) == (gold_values, 0, 0, missed)


def test_shots_put_gold_answers_of_other_products_before_the_product() -> None:
    every = fill_absent(load_gold(FIXTURES / "oa-mine.jsonl"))
    items, pool = every[:1], every[1:]
    provider = FakeProvider()
    asyncio.run(evaluate(items, provider, shots=2, pool=pool, concurrency=1))
    messages = provider.requests[0].messages
    assert messages[-1].content.count(items[0].row["title"]) == 1
    shown = [m.content for m in messages[:-1] if m.role == "assistant"]
    plain = AttributesStep().build_request(
        items[0].row, params={"attributes": list(items[0].attributes)}, row_label=items[0].id
    )
    assert len(messages) == len(plain.messages) + 4  # two shots, each a user turn and an answer
    brands = [p.attributes["Brand"][0] for p in pool if p.attributes.get("Brand")]
    assert sum(any(b in a for b in brands) for a in shown) >= 2
    assert all(items[0].row["title"] not in m.content for m in messages[:-1])
