"""`pack: K`: K products per request, split back per product, single requests where a pack falls short."""

from __future__ import annotations

from pathlib import Path

import orjson

from skuforge.engine.packing import pack_request, prefix_signature, split_answer, split_usage
from skuforge.providers.base import Usage
from skuforge.providers.fake import FakeProvider
from skuforge.recipes import load_recipe
from tests.engine.conftest import Harness, write_catalog

PACKED_RECIPE = """\
name: extract
version: "1"
instruction: Extract the colour and the material of the product.
input: {fields: [title]}
output: {fields: {color: string|null, material: string|null}}
requirements: [Use only what the product data states.]
examples:
  - input: {title: "Red cotton shirt"}
    output: {color: Red, material: cotton}
checks:
  - {check: schema, on_fail: fail}
pack: 8
max_tokens: 60
"""


def _recipe(tmp_path: Path, text: str = PACKED_RECIPE) -> str:
    path = tmp_path / "extract.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_forty_products_go_out_in_five_requests_of_eight(harness: Harness, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 40)
    job = harness.job(catalog, recipe=_recipe(tmp_path))
    _, progress = harness.run(job)
    items = list(harness.store.items(job.id))
    assert len(items) == 40 and {i.status for i in items} == {"done"}
    assert harness.fake.calls == 5
    assert progress.requests == 5
    assert all(i.meta == {"packed": 8} for i in items)
    assert all(set(i.output) == {"color", "material"} for i in items)


def test_a_packed_answer_that_is_not_json_sends_every_product_alone(harness: Harness, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 8)
    harness.fake.options.script = ["Sorry, I cannot help with that."]
    job = harness.job(catalog, recipe=_recipe(tmp_path))
    _, progress = harness.run(job)
    items = list(harness.store.items(job.id))
    assert harness.fake.calls == 1 + 8
    assert progress.requests == 1 + 8
    assert {i.status for i in items} == {"done"} and all(i.meta is None for i in items)


def test_a_missing_or_invalid_entry_falls_back_to_a_single_request(harness: Harness, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 3)
    packed = {"items": [{"id": "1", "color": "Black", "material": "Steel"}, {"id": "2", "color": 7}]}
    harness.fake.options.script = [orjson.dumps(packed).decode()]
    recipe = _recipe(tmp_path, PACKED_RECIPE.replace("pack: 8", "pack: 3"))
    job = harness.job(catalog, recipe=recipe)
    _, progress = harness.run(job)
    items = {i.row_id: i for i in harness.store.items(job.id)}
    assert items["SKU-00000"].output == {"color": "Black", "material": "Steel"}
    assert items["SKU-00000"].meta == {"packed": 3}
    assert items["SKU-00001"].meta is None and items["SKU-00002"].meta is None  # wrong type, missing
    assert {i.status for i in items.values()} == {"done"}
    assert harness.fake.calls == 1 + 2
    assert progress.requests == 3


def test_the_cost_of_a_pack_is_shared_out_without_loss(harness: Harness, tmp_path: Path) -> None:
    catalog = write_catalog(tmp_path / "c.csv", 16)
    job = harness.job(catalog, recipe=_recipe(tmp_path))
    harness.run(job)
    items = list(harness.store.items(job.id))
    sent = harness.fake.requests
    billed_in = sum(sum(len(m.content) for m in r.messages) for r in sent)
    assert billed_in > 0
    from skuforge.providers.tokens import estimate_tokens

    billed = sum(sum(estimate_tokens(m.content) for m in r.messages) for r in sent)
    assert sum(i.input_tokens for i in items) == billed


def test_the_packed_request_lists_products_with_ids_and_asks_for_items() -> None:
    recipe = load_recipe("attributes")
    step = recipe.steps[0]
    params = recipe.resolve_params({})
    rows = [{"title": f"Acme kettle {i} steel"} for i in range(3)]
    singles = [step.build_request(r, {}, {}, params, row_label=str(i)) for i, r in enumerate(rows)]
    assert len({prefix_signature(r) for r in singles}) == 1
    packed = pack_request(singles, ["1", "2", "3"])
    turn = packed.messages[-1].content
    assert all(f'<product id="{i}">' in turn and f"Acme kettle {i - 1} steel" in turn for i in (1, 2, 3))
    entries = packed.json_schema["properties"]["items"]["prefixItems"]
    assert [e["properties"]["id"] for e in entries] == [{"const": "1"}, {"const": "2"}, {"const": "3"}]
    assert packed.max_tokens == singles[0].max_tokens * 3 + 24
    examples = [m.content for m in packed.messages[1:-1] if m.role == "assistant"]
    assert examples and all(orjson.loads(e)["items"][0]["id"] == "1" for e in examples)


def test_rows_lacking_different_attributes_do_not_share_a_pack() -> None:
    recipe = load_recipe("attributes")
    step = recipe.steps[0]
    params = recipe.resolve_params({})
    a = step.build_request({"title": "Acme kettle", "brand": "Acme"}, {}, {}, params, row_label="a")
    b = step.build_request({"title": "Acme kettle"}, {}, {}, params, row_label="b")
    assert prefix_signature(a) != prefix_signature(b)


def test_split_answer_keeps_the_first_entry_per_known_id() -> None:
    text = '{"items": [{"id": "1", "a": 1}, {"id": "1", "a": 2}, {"id": "9", "a": 3}, "junk"]}'
    assert split_answer(text, ["1", "2"]) == {"1": {"a": 1}}
    assert split_answer("no json here", ["1"]) == {}


def test_split_usage_parts_add_up_to_the_whole() -> None:
    parts = split_usage(Usage(input_tokens=1001, output_tokens=97, cached_input_tokens=5), [10, 0, 30])
    assert sum(p.input_tokens for p in parts) == 1001
    assert sum(p.output_tokens for p in parts) == 97
    assert sum(p.cached_input_tokens for p in parts) == 5
    assert parts[2].output_tokens > parts[0].output_tokens


def test_packed_runs_give_the_same_outputs_each_time(tmp_path: Path, store) -> None:  # type: ignore[no-untyped-def]
    catalog = write_catalog(tmp_path / "c.csv", 16)
    outputs = []
    for _ in range(2):
        harness = Harness(store, FakeProvider())
        job = harness.job(catalog, recipe=_recipe(tmp_path))
        harness.run(job)
        outputs.append({i.row_id: i.output for i in harness.store.items(job.id)})
        store.delete_job(job.id)
    assert outputs[0] == outputs[1]
