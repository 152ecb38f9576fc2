"""Approved and edited outputs become few-shot examples when the recipe opts in (calls similar_examples)."""

from __future__ import annotations

from skuforge import review
from skuforge.knowledge import similar_examples
from tests.review.conftest import FIXTURES

OPTED_IN = (
    (FIXTURES / "short_title.yaml")
    .read_text(encoding="utf-8")
    .replace(
        'instruction: "Write a short product title."',
        'instruction: "Write a short product title. {# examples: similar_examples(recipe.name, title) #}"',
    )
)


def test_an_edit_in_an_opted_in_recipe_becomes_an_example_and_is_audited(make_job):
    job = make_job("short_title", recipe_text=OPTED_IN)
    decision = review.decide(
        job.store, job.job_id, "A3", "short_title", "", "edit", edited="Northwind Jacket"
    )
    assert decision.learned
    found = similar_examples("short_title", "Waterproof hiking jacket", k=3)
    assert [e.output for e in found] == [{"title": "Northwind Jacket"}]
    assert "Waterproof hiking jacket" in found[0].input_text
    last = review.history(job.store, job.job_id, "A3")[-1]
    assert (last.action, last.after) == ("example", "_examples/short_title")


def test_a_recipe_that_does_not_opt_in_stores_no_example(make_job):
    job = make_job()
    decision = review.decide(job.store, job.job_id, "A1", "short_title", "", "approve")
    assert not decision.learned
    assert similar_examples("short_title", "Trail running shoe") == []
    assert [e.action for e in review.history(job.store, job.job_id, "A1")] == ["approve"]
