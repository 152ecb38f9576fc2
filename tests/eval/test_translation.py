"""Translation evaluation: pairs in, the translate recipe run, chrF/BLEU, leftovers and codes scored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from skuforge.cli.main import main
from skuforge.errors import CatalogError
from skuforge.eval.translation import (
    Pair,
    RecipeChain,
    codes,
    codes_kept,
    corpus_scores,
    load_pairs,
    summarise,
    translate_all,
    translate_params,
)
from skuforge.providers.fake import FakeProvider
from skuforge.recipes import load_recipe

PAIRS = Path(__file__).parents[1] / "fixtures" / "translation" / "pairs_zh_en.tsv"


def chain() -> RecipeChain:
    recipe = load_recipe("translate")
    return RecipeChain(recipe, translate_params(recipe, "en", {}), "en")


def run(pairs: list[Pair], answers: list[str]) -> dict:
    provider = FakeProvider(script=answers)
    outcomes = asyncio.run(translate_all(pairs, provider, chain()))
    return summarise(pairs, outcomes, "en")


def test_the_shared_tsv_layout_is_read_with_its_row_ids() -> None:
    pairs = load_pairs(PAIRS)
    assert len(pairs) == 12
    assert pairs[0] == Pair(
        "3",
        "＊小徑文化＊日本進口ROUND TOP space craft - diamond (SC-MK-010)",
        "* the culture Japan Imported Round Top Space Craft - Diamond SC - MK - 010",
    )


def test_csv_and_jsonl_with_source_and_reference_columns_are_read(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("source,reference\n涼鞋,Sandals\n,empty\n", encoding="utf-8")
    (tmp_path / "p.jsonl").write_text(
        '{"id": "a", "source": "涼鞋", "reference": "Sandals"}\n', encoding="utf-8"
    )
    assert load_pairs(tmp_path / "p.csv") == [Pair("1", "涼鞋", "Sandals")]
    assert load_pairs(tmp_path / "p.jsonl") == [Pair("a", "涼鞋", "Sandals")]


def test_unknown_columns_say_how_to_name_them(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("a,b\n涼鞋,Sandals\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="source and reference columns") as info:
        load_pairs(tmp_path / "p.csv")
    assert "--source-column" in (info.value.hint or "")
    assert load_pairs(tmp_path / "p.csv", source_column="a", reference_column="b") == [
        Pair("1", "涼鞋", "Sandals")
    ]


def test_codes_are_latin_tokens_with_digits_and_full_width_ones_count() -> None:
    assert codes("雷鳥 LT-234 桌墊 45 x 60 cm 【49146】 500ml 2pcs ＳＣ１２ 4K") == [
        "LT-234",
        "49146",
        "500ml",
        "2pcs",
        "SC12",
    ]


def test_a_code_counts_as_kept_whatever_its_case_and_spacing() -> None:
    assert codes_kept("DVD VOL-08 500ml B45729", "DVD Vol-08 500 ml") == (3, ["B45729"])


def test_identical_outputs_score_full_marks() -> None:
    refs = ["Colgate Dual Clean Toothbrush", "Hello Kitty Sandals"]
    assert corpus_scores(refs, refs) == {"chrf": 100.0, "bleu": 100.0}
    assert corpus_scores(["colgate dual clean toothbrush", "hello kitty sandals"], refs)["chrf"] == 100.0


def test_a_leftover_fragment_is_counted_and_flagged_by_the_recipe() -> None:
    pairs = [Pair("1", "PAPAGO 368miniHD 行車記錄器", "PAPAGO 368miniHD Driving Recorder")]
    report = run(pairs, ['{"title": "PAPAGO 368miniHD row-car recording器"}'])
    item = report["items"][0]
    assert item["leftover"] == ["器"] and item["status"] == "flagged"
    assert report["scores"]["leftover"] == 1 and report["scores"]["leftover_unflagged"] == 0
    assert any("器" in note for note in item["notes"])


def test_a_clean_translation_is_done_and_scored() -> None:
    pairs = [Pair("1", "高露潔 雙效潔淨牙刷 B45729", "Colgate Dual Clean Toothbrush B45729")]
    report = run(pairs, ['{"title": "Colgate Dual Clean Toothbrush B45729"}'])
    assert report["items"][0]["status"] == "done" and report["items"][0]["leftover"] == []
    assert report["scores"]["codes_kept_share"] == 1.0 and report["scores"]["chrf"] == 100.0


def test_a_broken_answer_fails_that_pair_only() -> None:
    pairs = [Pair("1", "涼鞋", "Sandals"), Pair("2", "牙刷", "Toothbrush")]
    report = run(pairs, ["not json", "still not json", '{"title": "Toothbrush"}'])
    assert [i["status"] for i in report["items"]] == ["failed", "done"]
    assert report["errors"][0]["id"] == "1" and report["items"][0]["output"] == ""


def test_the_request_budget_is_sized_from_the_title_not_a_fixed_1200() -> None:
    provider = FakeProvider()
    asyncio.run(translate_all([Pair("1", "高露潔 雙效潔淨牙刷單支", "x")], provider, chain()))
    budget = provider.requests[0].max_tokens
    assert budget is not None and 48 < budget < 200


def test_eval_translation_with_the_fake_model_writes_both_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.html"
    argv = [
        "eval",
        "translation",
        "--pairs",
        str(PAIRS),
        "--model",
        "fake:",
        "--limit",
        "4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    page = out.read_text(encoding="utf-8")
    assert "Translation: evaluation" in page and "<script" not in page and "<link" not in page
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["meta"]["items"] == 4 and len(data["items"]) == 4
    # the fake model echoes the Chinese back: every output keeps the source script, and every one is flagged
    assert data["scores"]["leftover"] == 4 and data["scores"]["leftover_unflagged"] == 0
    printed = capsys.readouterr().out
    assert "chrF" in printed and "not flagged" in printed


def test_eval_translation_with_a_missing_pairs_file_says_what_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "translation", "--pairs", str(tmp_path / "nope.tsv"), "--model", "fake:"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_an_unknown_recipe_parameter_is_refused_with_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["eval", "translation", "--pairs", str(PAIRS), "--model", "fake:", "--set", "glosary=Anker"]
    assert main(argv) == 2
    assert "glossary" in capsys.readouterr().err
