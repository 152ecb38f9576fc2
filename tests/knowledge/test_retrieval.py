"""retrieve() and similar_examples(): what recipe templates see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skuforge.knowledge import add_approved_example, open_kb, retrieve, similar_examples
from skuforge.providers.tokens import estimate_tokens

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"


@pytest.fixture
def guides() -> str:
    open_kb("guides", create=True).add_paths([FIXTURES / "style-guide.md", FIXTURES / "parts.md"])
    return "guides"


def test_retrieve_delimits_passages_as_reference_data_with_their_source(guides: str) -> None:
    got = retrieve(guides, "how should I wash my sneakers", k=2)
    assert got.text.startswith('<reference source="style-guide.md#Footwear">\n')
    assert got.text.count("<reference ") == got.text.count("</reference>") == 2
    assert "soft brush" in got.text
    first = got.sources[0]
    assert first["kb"] == "guides" and first["source"].endswith("style-guide.md")
    assert isinstance(first["chunk_id"], int) and first["score"] > 0
    assert str(got) == got.text


def test_retrieve_caps_the_total_length_in_tokens(guides: str) -> None:
    for cap in (40, 80, 200):
        got = retrieve(guides, "installing a water filter cartridge", k=3, max_tokens=cap)
        assert got.text, cap
        assert estimate_tokens(got.text) <= cap, (cap, got.text)
    small = retrieve(guides, "installing a water filter cartridge", k=3, max_tokens=60)
    assert small.text.rstrip().endswith("…\n</reference>") or small.text.count("<reference ") < 3


def test_retrieve_applies_the_where_filter(guides: str) -> None:
    got = retrieve(guides, "refund policy", k=3, where={"locale": "zh"})
    assert got.sources and "退款" in got.text
    assert "Returns and refunds" not in got.text


def test_similar_examples_return_the_closest_approved_outputs_for_the_recipe() -> None:
    add_approved_example(
        "title",
        "Philips Sonicare electric toothbrush HX9903/01 white",
        {"title": "Philips Sonicare 9300 Electric Toothbrush, White"},
        "job1/item1",
    )
    add_approved_example(
        "title",
        "Bigelow classic green tea, 20 bags",
        '{"title": "Bigelow Classic Green Tea, 20 Bags"}',
        "job1/item2",
    )
    add_approved_example("description", "Bigelow classic green tea", '{"description": "x"}', "job1/item3")
    examples = similar_examples("title", "organic green tea bags", k=1)
    assert len(examples) == 1
    assert examples[0].output == {"title": "Bigelow Classic Green Tea, 20 Bags"}
    assert examples[0].input_text == "Bigelow classic green tea, 20 bags"
    assert examples[0].source == "job1/item2"
    assert [e.source for e in similar_examples("title", "toothbrush", k=5)][0] == "job1/item1"
    assert len(similar_examples("title", "toothbrush", k=5)) == 2


def test_approving_the_same_item_again_replaces_its_example() -> None:
    add_approved_example("title", "Green tea", '{"title": "old"}', "job1/item2")
    add_approved_example("title", "Green tea", '{"title": "edited"}', "job1/item2")
    examples = similar_examples("title", "green tea", k=5)
    assert [json.dumps(e.output) for e in examples] == ['{"title": "edited"}']


def test_a_recipe_without_approved_examples_has_none() -> None:
    assert similar_examples("faq", "anything") == []
