"""knowledge() and examples() in recipes: reference blocks, sources per item, keys, report, export."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skuforge.cli.main import app
from skuforge.errors import RecipeError
from skuforge.knowledge import add_approved_example, open_kb
from skuforge.recipes import load_recipe
from skuforge.review.context import EXAMPLES_HOOK

WALK = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge" / "walkthrough"
CATALOG = Path(__file__).resolve().parents[2] / "examples" / "catalog.csv"
BALL = {
    "sku": "EN-1004",
    "title": "Mikasa VSO2000 Volleyball, Official Size 5",
    "category": "Sports & Outdoors",
}


@pytest.fixture
def brand() -> str:
    open_kb("brand", create=True).add_paths([WALK / "style-guide.md", WALK / "approved-copy.csv"])
    return "brand"


def _request(row: dict[str, str], **params: object):  # type: ignore[no-untyped-def]
    recipe = load_recipe("copy_with_guide")
    step = recipe.steps[0]
    return step.build_request(row, {}, {}, recipe.resolve_params(params), row_label="row 2")


def test_recipe_quotes_guide_and_approved_copy_as_reference_data_and_lists_sources(brand: str) -> None:
    request = _request(BALL)
    system = request.messages[0].content
    assert '<reference source="style-guide.md#Sports and outdoors">' in system
    assert '<reference source="approved-copy.csv#row 1">' in system  # the basketball copy
    assert "not instructions" in system
    citations = [s["citation"] for s in request.sources]
    assert "style-guide.md#Sports and outdoors" in citations and "approved-copy.csv#row 1" in citations
    assert all(s["kb"] == "brand" for s in request.sources)


def test_sources_stay_out_of_the_key_but_a_changed_knowledge_base_changes_it(
    brand: str, tmp_path: Path
) -> None:
    request = _request(BALL)
    assert request.key("fake:") == request.model_copy(update={"sources": None}).key("fake:")
    guide = tmp_path / "style-guide.md"
    guide.write_text((WALK / "style-guide.md").read_text().replace("official size", "regulation size"))
    kb = open_kb(brand)
    kb.remove_source(str((WALK / "style-guide.md").resolve()))
    kb.add_paths([guide])
    assert _request(BALL).key("fake:") != request.key("fake:")


def test_examples_quote_the_most_similar_approved_output_of_the_recipe(brand: str) -> None:
    add_approved_example(
        "copy_with_guide", "title: Molten volleyball size 5", {"description": "Spike it."}, "j1/r1/main"
    )
    add_approved_example(
        "copy_with_guide", "title: Ceramic teapot 1 litre", {"description": "Brew it."}, "j1/r2/main"
    )
    request = _request(BALL)
    system = request.messages[0].content
    assert system.index("Spike it.") < system.index("Brew it.")
    assert '<example source="j1/r1/main">' in system
    assert any(s["citation"] == "example j1/r1/main" for s in request.sources)
    assert EXAMPLES_HOOK.search(load_recipe("copy_with_guide").spec.model_dump_json()) is not None


def test_an_unknown_knowledge_base_is_a_recipe_error_that_says_where() -> None:
    with pytest.raises(RecipeError) as caught:
        _request(BALL, kb="nope")
    assert (
        "copy_with_guide" in caught.value.message and "No knowledge base named 'nope'" in caught.value.message
    )
    assert "skuforge kb add nope" in (caught.value.hint or "")


def test_trial_report_and_export_show_the_sources_each_item_used(brand: str, tmp_path: Path) -> None:
    cli = CliRunner()
    report = tmp_path / "trial.html"
    done = cli.invoke(
        app, ["trial", str(CATALOG), "-r", "copy_with_guide", "-m", "fake:", "-n", "3", "-o", str(report)]
    )
    assert done.exit_code == 0, done.output
    html = report.read_text()
    assert html.count('class="source"') >= 6 and "style-guide.md#" in html and "approved-copy.csv#row" in html

    out = tmp_path / "out.csv"
    ran = cli.invoke(
        app, ["run", str(CATALOG), "-r", "copy_with_guide", "-m", "fake:", "-o", str(out), "--quiet"]
    )
    assert ran.exit_code == 0, ran.output
    with out.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert all("style-guide.md#" in r["skuforge_sources"] for r in rows if r["skuforge_status"] == "done")


def test_export_has_no_sources_column_when_no_item_used_knowledge(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    ran = CliRunner().invoke(
        app, ["run", str(CATALOG), "-r", "title", "-m", "fake:", "-o", str(out), "--quiet"]
    )
    assert ran.exit_code == 0, ran.output
    assert "skuforge_sources" not in out.read_text(encoding="utf-8-sig").splitlines()[0]
