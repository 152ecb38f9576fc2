"""`skuforge eval attributes` with the fake model writes an HTML and a JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skuforge.cli.main import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "eval"


@pytest.mark.parametrize("name", ["oa-mine", "ae-110k", "wdc-pave"])
def test_eval_with_the_fake_model_writes_a_report(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    argv = ["eval", "attributes", "--gold", str(FIXTURES / f"{name}.jsonl"), "--model", "fake:"]
    assert main([*argv, "--format", name, "--limit", "3", "--shots", "1", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Attribute completion" in page and "<link" not in page and "<script" not in page
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["meta"]["items"] == 3
    assert data["errors"] == []
    micro = data["scores"]["normalised"]["micro"]
    assert micro["vc"] + micro["vw"] + micro["vn"] + micro["nv"] + micro["nn"] > 0
    assert "micro P" in capsys.readouterr().out


def test_eval_with_a_missing_gold_file_says_what_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "attributes", "--gold", str(tmp_path / "nope.jsonl"), "--model", "fake:"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
