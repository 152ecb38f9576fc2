"""The Excel round trip: export the queue, decide in the workbook (sorted, as reviewers do), import."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from skuforge import review
from skuforge.errors import CatalogError
from skuforge.review.excel import DECISION, EDITED, KEYS


def _sheet_rows(path: Path) -> tuple[list[str], list[dict]]:
    sheet = load_workbook(path)["Review"]
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    return header, [dict(zip(header, r, strict=True)) for r in rows[1:]]


def _decide(
    path: Path, decisions: dict[str, tuple[str | None, str | None]], *, reverse: bool = False
) -> None:
    """Fill Decision / Edited output per row id, like a reviewer in Excel; optionally sort rows backwards."""
    workbook = load_workbook(path)
    sheet = workbook["Review"]
    header = [c.value for c in sheet[1]]
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=2)]
    if reverse:
        rows.reverse()
    for r, values in enumerate(rows, start=2):
        decision, edited = decisions.get(values[header.index("key:row_id")], (None, None))
        values[header.index(DECISION)] = decision
        values[header.index(EDITED)] = edited
        for c, value in enumerate(values, start=1):
            sheet.cell(row=r, column=c, value=value)
    workbook.save(path)


def test_the_export_has_keys_a_decision_drop_down_and_a_frozen_header(make_job, tmp_path):
    job = make_job()
    written = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx")
    assert written.rows == len(job.items("flagged"))
    header, rows = _sheet_rows(written.path)
    assert header[:5] == ["Row", "Step", "Variant", "title", "brand"]
    assert header[-len(KEYS) :] == list(KEYS)
    assert {r["key:row_id"] for r in rows} == {i.row_id for i in job.items("flagged")}
    assert all(r["key:item"] == job.item(r["key:row_id"]).key for r in rows)
    assert all(r[DECISION] is None and r[EDITED] is None for r in rows)
    sheet = load_workbook(written.path)["Review"]
    assert sheet.freeze_panes == "D2"
    assert all(sheet.column_dimensions[c].hidden for c in ("L", "M", "N", "O", "P"))
    assert sheet.column_dimensions["G"].width == 60
    assert sheet["G2"].alignment.wrap_text
    with zipfile.ZipFile(written.path) as xlsx:
        xml = xlsx.read("xl/worksheets/sheet1.xml").decode()
    assert f'<dataValidation sqref="I2:I{written.rows + 1}"' in xml
    assert 'type="list"' in xml and '<formula1>"approve,reject,edit"</formula1>' in xml


def test_formula_like_product_data_is_exported_as_text_exactly_as_written(make_job, tmp_path):
    job = make_job()
    written = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx")
    _, rows = _sheet_rows(written.path)
    evil = next(r for r in rows if r["key:row_id"] == "A6")
    assert evil["title"] == '=HYPERLINK("http://example.invalid","click") wool scarf'  # no apostrophe added
    sheet = load_workbook(written.path)["Review"]
    assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)
    title = next(row for row in sheet.iter_rows() if row[0].value == "A6")[3]
    assert (title.value, title.data_type) == (evil["title"], "s")


def test_decisions_made_in_a_sorted_sheet_are_applied_to_the_right_items(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    _decide(
        path,
        {"A1": ("approve", None), "A3": ("edit", "Northwind Jacket"), "A6": ("reject", None)},
        reverse=True,
    )
    report = review.import_xlsx(job.store, job.job_id, path, who="dee")
    assert report.problems == []
    assert report.applied == {"approve": 1, "edit": 1, "reject": 1}
    assert [job.item(r).review for r in ("A1", "A3", "A6")] == ["approved", "edited", "rejected"]
    assert job.item("A3").output == {"title": "Northwind Jacket"}
    assert {e.who for e in review.history(job.store, job.job_id, "A3")} == {"dee"}


def test_rows_that_cannot_be_applied_are_reported_by_sheet_row_and_leave_the_item_alone(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    _decide(path, {"A1": ("edit", '{"title": 42}'), "A3": ("maybe", None), "A6": ("approve", None)})
    report = review.import_xlsx(job.store, job.job_id, path)
    _, rows = _sheet_rows(path)
    line = {r["key:row_id"]: n for n, r in enumerate(rows, start=2)}
    problems = {p.row_id: p for p in report.problems}
    assert problems["A1"].row == line["A1"]
    assert "does not match its schema" in problems["A1"].reason and "title" in problems["A1"].reason
    assert problems["A3"].reason == "unknown decision 'maybe'; use approve, reject or edit"
    assert report.applied["approve"] == 1
    assert job.item("A1").review == "pending" and job.item("A3").review == "pending"
    assert review.history(job.store, job.job_id, "A1") == []


def test_a_row_whose_item_was_regenerated_since_the_export_is_refused(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    text = job.catalog.read_text(encoding="utf-8")
    job.catalog.write_text(text.replace("Trail running shoe", "Trail running sneaker"), encoding="utf-8")
    job.rerun()
    _decide(path, {"A1": ("approve", None), "A3": ("approve", None)})
    report = review.import_xlsx(job.store, job.job_id, path)
    assert [p.row_id for p in report.problems] == ["A1"]
    assert "regenerated since it was exported" in report.problems[0].reason
    assert job.item("A1").review != "approved" and job.item("A3").review == "approved"


def test_a_formula_typed_as_an_edit_is_refused(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    _decide(path, {"A1": ("edit", '=HYPERLINK("http://example.invalid")')})
    report = review.import_xlsx(job.store, job.job_id, path)
    assert [p.reason for p in report.problems] == ["'Edited output' is a formula; type the text itself"]


def test_an_approval_with_an_edit_filled_in_asks_which_was_meant(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    _decide(path, {"A1": ("approve", "Acme Shoe"), "A3": (None, "Northwind Jacket")})
    report = review.import_xlsx(job.store, job.job_id, path)
    assert "set the decision to edit" in report.problems[0].reason
    assert report.applied["edit"] == 1  # an edit without a decision is an edit
    assert job.item("A3").output == {"title": "Northwind Jacket"}


def test_a_sheet_from_another_job_or_without_keys_is_refused(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    _decide(path, {"A1": ("approve", None)})
    workbook = load_workbook(path)
    sheet = workbook["Review"]
    for row in sheet.iter_rows(min_row=2):
        row[-len(KEYS)].value = "j-other"
    workbook.save(path)
    report = review.import_xlsx(job.store, job.job_id, path)
    assert report.problems[0].reason == f"it was exported from job j-other, not {job.job_id}"
    bare = tmp_path / "bare.xlsx"
    shutil.copy(path, bare)
    workbook = load_workbook(bare)
    workbook["Review"].delete_cols(len(list(workbook["Review"].iter_cols())) - len(KEYS) + 1, len(KEYS))
    workbook.save(bare)
    with pytest.raises(CatalogError, match="no column 'key:job'"):
        review.import_xlsx(job.store, job.job_id, bare)


def test_export_all_includes_clean_items_and_multi_field_outputs_read_as_lines(make_job, tmp_path):
    job = make_job("listing")
    written = review.export_xlsx(job.store, job.job_id, tmp_path / "all.xlsx", status="all")
    _, rows = _sheet_rows(written.path)
    assert len(rows) == 6
    a1 = next(r for r in rows if r["key:row_id"] == "A1")
    assert a1["Output"].startswith("title: ") and "\nbullets:\n  - " in a1["Output"]


def test_a_value_the_catalog_moved_or_dropped_is_noted_beside_the_flag_for_the_reviewer(make_job, tmp_path):
    job = make_job()
    flagged, done = job.items("flagged")[0], job.items("done")[0]
    note = {"check": "catalog_values", "ok": True, "field": "title", "reason": "'Steel' as title dropped."}
    for item in (flagged, done):
        job.store.update_item(job.job_id, item.row_id, item.step, findings=[*(item.findings or []), note])
    (entry,) = [e for e in review.queue(job.store, job.job_id) if e.item.row_id == flagged.row_id]
    assert "limit is at most 20" in entry.reasons[0]
    assert entry.reasons[-1] == "note: 'Steel' as title dropped."
    queued = {e.item.row_id for e in review.queue(job.store, job.job_id)}
    assert done.row_id not in queued  # a note flags nothing
    _, rows = _sheet_rows(review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path)
    (row,) = [r for r in rows if r["key:row_id"] == flagged.row_id]
    assert row["Reasons"].endswith("\nnote: 'Steel' as title dropped.")
