"""`skuforge run` as a new user meets it: the sample catalog, and every kind of bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest

from skuforge.cli.main import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE_XLSX = REPO / "examples" / "catalog.xlsx"
SAMPLE_GB18030 = REPO / "examples" / "catalog.csv"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_sample_catalog_gets_one_output_row_per_input_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.xlsx"
    code, text = run_cli(
        capsys, "run", str(SAMPLE_XLSX), "--recipe", "attributes", "--model", "fake:", "--out", str(out)
    )
    assert code == 0, text
    source = list(openpyxl.load_workbook(SAMPLE_XLSX, read_only=True).active.iter_rows(values_only=True))
    book = openpyxl.load_workbook(out)
    rows = list(book["Enriched"].iter_rows(values_only=True))
    assert len(rows) == len(source)
    header = rows[0]
    assert list(header[: len(source[0])]) == list(source[0])
    assert "skuforge_status" in header
    generated = [i for i, name in enumerate(header) if str(name).endswith("_generated")]
    assert generated and any(row[i] for row in rows[1:] for i in generated)


def test_a_second_run_of_the_same_command_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", str(SAMPLE_XLSX), "--model", "fake:", "--out", str(tmp_path / "o.csv"), "--no-cache"]
    assert run_cli(capsys, *args)[0] == 0
    code, text = run_cli(capsys, *args, "--json")
    assert code == 0
    import json

    summary, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    assert summary["requests"] == 0 and summary["reused"] > 0


def test_a_gb18030_csv_runs_without_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.csv"
    code, text = run_cli(capsys, "run", str(SAMPLE_GB18030), "--model", "fake:", "--out", str(out))
    assert code == 0, text
    written = out.read_text(encoding="utf-8-sig")
    assert "无线" in written or "蓝牙" in written or "不锈钢" in written


def assert_user_error(code: int, text: str, *needles: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    for needle in needles:
        assert needle in text, text


def test_a_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_user_error(*run_cli(capsys, "run", str(tmp_path / "nope.xlsx"), "--model", "fake:"), "nope.xlsx")


def test_a_corrupt_xlsx_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04 this is not really a workbook" * 10)
    assert_user_error(*run_cli(capsys, "run", str(bad), "--model", "fake:"), "bad.xlsx")


def test_a_truncated_xlsx_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cut.xlsx"
    bad.write_bytes(SAMPLE_XLSX.read_bytes()[:3000])
    assert not zipfile.is_zipfile(bad)
    assert_user_error(*run_cli(capsys, "run", str(bad), "--model", "fake:"), "cut.xlsx")


def test_a_column_the_recipe_needs_is_named_when_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.csv"
    path.write_text("sku,name\nA1,Kettle\n", encoding="utf-8")
    assert_user_error(*run_cli(capsys, "run", str(path), "--model", "fake:"), "'title'", "attributes")


def test_a_template_syntax_error_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(
        "name: broken\nversion: '1'\ninstruction: Write a title.\ninput:\n  fields: [title]\n"
        "output:\n  fields: {title: string}\nrequirements:\n  - 'Keep {{ brand '\n",
        encoding="utf-8",
    )
    code, text = run_cli(capsys, "run", str(SAMPLE_XLSX), "--recipe", str(recipe), "--model", "fake:")
    assert_user_error(code, text, "broken.yaml:9")
    code, text = run_cli(capsys, "recipes", "validate", str(recipe))
    assert_user_error(code, text, "broken.yaml:9")


def test_an_unknown_model_suggests_the_right_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(capsys, "run", str(SAMPLE_XLSX), "--model", "openai:gpt4o-mini")
    assert_user_error(code, text, "gpt-4o-mini")


def test_a_missing_api_key_says_which_variable_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(capsys, "run", str(SAMPLE_XLSX), "--model", "openai:gpt-4o-mini")
    assert_user_error(code, text, "OPENAI_API_KEY")


def test_a_bad_where_lists_the_columns(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(capsys, "run", str(SAMPLE_XLSX), "--model", "fake:", "--where", "colour = 'Black'")
    assert_user_error(code, text, "color")


def test_jobs_show_and_export_work_after_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run_cli(capsys, "run", str(SAMPLE_XLSX), "--model", "fake:", "--out", str(tmp_path / "a.xlsx"))[0]
        == 0
    )
    code, text = run_cli(capsys, "jobs", "--json")
    assert code == 0
    import json

    (job,) = json.loads(text)
    code, text = run_cli(capsys, "show", job["id"])
    assert code == 0 and job["id"] in text
    out = tmp_path / "again.parquet"
    code, text = run_cli(capsys, "export", job["id"], "--out", str(out))
    assert code == 0 and out.exists()


def test_recipes_list_shows_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run_cli(capsys, "recipes", "list", "--json")
    assert code == 0
    for name in ("attributes", "selling_points", "faq", "title", "description", "translate"):
        assert f'"{name}"' in text


def test_recipes_show_a_recipe_with_a_required_parameter_and_its_preferred_local_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text = run_cli(capsys, "recipes", "show", "translate")
    assert code == 0
    assert "title@<locales>" in text and "local:qwen2.5-1.5b" in text
