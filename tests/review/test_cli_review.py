"""`skuforge review ...` and `skuforge export --approved-only`, through the real CLI entry point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from openpyxl import load_workbook

from skuforge import review
from skuforge.cli.main import main
from skuforge.review.excel import DECISION, EDITED


def _export(job_id: str, out: Path) -> dict[str, dict[str, str]]:
    assert main(["export", job_id, "--approved-only", "-o", str(out)]) == 0
    with out.open(encoding="utf-8-sig", newline="") as handle:
        return {row["sku"]: row for row in csv.DictReader(handle)}


def test_nothing_flagged_reaches_an_approved_only_export_unless_approved(make_job, tmp_path):
    job = make_job()
    flagged = {i.row_id for i in job.items("flagged")}
    rows = _export(job.job_id, tmp_path / "before.csv")
    assert all(rows[r]["seo_title"] == "" and rows[r]["skuforge_status"] == "withheld" for r in flagged)
    assert main(["review", "approve", job.job_id, "A1"]) == 0
    assert main(["review", "edit", job.job_id, "A3", "Northwind Hooded Jacket"]) == 0
    assert main(["review", "reject", job.job_id, "A6", "--comment", "injection"]) == 0
    rows = _export(job.job_id, tmp_path / "after.csv")
    assert rows["A1"]["seo_title"] == job.item("A1").output["title"]
    assert rows["A3"]["seo_title"] == "Northwind Hooded Jacket"
    assert rows["A6"]["seo_title"] == "" and rows["A2"]["seo_title"] == ""


def test_review_list_json_shows_counts_and_the_pending_items(make_job, capsys):
    job = make_job()
    capsys.readouterr()
    assert main(["review", "list", job.job_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["pending"] == len(data["items"]) == len(job.items("flagged"))
    assert data["items"][0]["reasons"][0].endswith("the limit is at most 20.")


def test_history_json_lists_each_decision_with_its_previous_value(make_job, capsys):
    job = make_job()
    old = job.item("A1").output["title"]
    assert main(["review", "edit", job.job_id, "A1", "Acme Trail Shoe", "--who", "eve"]) == 0
    capsys.readouterr()
    assert main(["review", "history", job.job_id, "A1", "--json"]) == 0
    trail = json.loads(capsys.readouterr().out)
    assert [(e["field"], e["before"], e["after"], e["who"]) for e in trail] == [
        ("title", old, "Acme Trail Shoe", "eve"),
        ("review", "pending", "edited", "eve"),
    ]


def test_rollback_from_the_cli_restores_the_output_before_the_edit(make_job):
    job = make_job()
    old = job.item("A1").output
    assert main(["review", "edit", job.job_id, "A1", "Acme Trail Shoe"]) == 0
    assert main(["review", "rollback", job.job_id, "A1"]) == 0
    assert job.item("A1").output == old
    assert [e.action for e in review.history(job.store, job.job_id, "A1")][-1] == "rollback"
    assert main(["review", "rollback", job.job_id, "A1"]) == 2


def test_a_schema_breaking_edit_from_the_cli_exits_2_with_the_reason(make_job, capsys):
    job = make_job("listing")
    capsys.readouterr()
    code = main(["review", "edit", job.job_id, "A1", '{"bullets": 3}'])
    err = capsys.readouterr().err
    assert code == 2
    assert "bullets" in err and "not of type 'array'" in err and "Edited output" in err


def test_an_unknown_step_names_the_steps_the_row_has(make_job, capsys):
    job = make_job()
    capsys.readouterr()
    assert main(["review", "approve", job.job_id, "A1", "--step", "nope"]) == 2
    assert "Its items: short_title." in capsys.readouterr().err


def test_export_and_import_from_the_cli_report_rows_not_applied(make_job, tmp_path, capsys):
    job = make_job()
    sheet_path = tmp_path / "review.xlsx"
    assert main(["review", "export", job.job_id, "--out", str(sheet_path)]) == 0
    workbook = load_workbook(sheet_path)
    sheet = workbook["Review"]
    header = [c.value for c in sheet[1]]
    sheet.cell(row=2, column=header.index(DECISION) + 1, value="edit")
    sheet.cell(row=2, column=header.index(EDITED) + 1, value="ab")
    sheet.cell(row=3, column=header.index(DECISION) + 1, value="approve")
    workbook.save(sheet_path)
    capsys.readouterr()
    code = main(["review", "import", job.job_id, str(sheet_path), "--who", "fay"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Applied 1 decisions" in err and "1 rows not applied" in err and "import it again" in err
    assert "row 2 (" in err and "the limit is at least 3" in err


def test_run_review_sample_is_kept_on_the_job(make_job):
    job = make_job("short_title", "--review-sample", "0.5")
    assert job.store.get_job(job.job_id).settings["review_sample"] == 0.5
