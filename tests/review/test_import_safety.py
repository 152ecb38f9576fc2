"""Review import is safe to repeat, refuses edits outside the step's output, and turns any file it cannot
read into one clear error."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from openpyxl import load_workbook

from skuforge import review
from skuforge.cli.main import main
from skuforge.errors import CatalogError
from skuforge.review.excel import DECISION, EDITED
from skuforge.store.schema import reviews

ATTRIBUTES = """\
name: attrs
version: "1"
description: Per-row targets, like the built-in attributes recipe; the fake model's long colours are flagged.
targets: {from: "['color', 'pattern']", when: missing}
input: {fields: [title]}
instruction: Fill in the missing attributes.
checks:
  - {check: length, field: color, max_chars: 3, on_fail: flag}
columns: {only_missing: true}
max_tokens: 60
"""


def decide_in_workbook(path: Path, decisions: dict[str, tuple[str, str | None]]) -> None:
    workbook = load_workbook(path)
    sheet = workbook["Review"]
    header = [c.value for c in sheet[1]]
    for cells in sheet.iter_rows(min_row=2):
        row_id = cells[header.index("key:row_id")].value
        if row_id in decisions:
            decision, edited = decisions[row_id]
            cells[header.index(DECISION)].value = decision
            cells[header.index(EDITED)].value = edited
    workbook.save(path)


def audit_rows(job: object) -> int:
    with job.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return len(conn.execute(reviews.select()).all())


def test_importing_the_same_workbook_twice_changes_nothing_the_second_time(make_job, tmp_path):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    decide_in_workbook(
        path, {"A1": ("approve", None), "A3": ("edit", "Northwind Jacket"), "A6": ("reject", None)}
    )
    first = review.import_xlsx(job.store, job.job_id, path, who="dee")
    assert first.applied == {"approve": 1, "edit": 1, "reject": 1} and first.skipped == []
    states = {r: (job.item(r).review, job.item(r).output) for r in ("A1", "A3", "A6")}
    trail = audit_rows(job)

    again = review.import_xlsx(job.store, job.job_id, path, who="dee")

    assert again.applied == {"approve": 0, "edit": 0, "reject": 0} and again.problems == []
    assert sorted((p.row_id, p.reason) for p in again.skipped) == [
        ("A1", "already approved; skipped"),
        ("A3", "already edited with this text; skipped"),
        ("A6", "already rejected; skipped"),
    ]
    assert {r: (job.item(r).review, job.item(r).output) for r in states} == states  # A3 stays 'edited'
    assert audit_rows(job) == trail


def test_the_cli_says_which_rows_were_already_applied(make_job, tmp_path, capsys):
    job = make_job()
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    decide_in_workbook(path, {"A1": ("approve", None)})
    assert main(["review", "import", job.job_id, str(path)]) == 0
    capsys.readouterr()
    assert main(["review", "import", job.job_id, str(path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "Applied 0 decisions" in err and "Skipped 1 rows whose decision was already applied" in err


def test_an_edit_with_a_field_outside_the_steps_output_is_refused(make_job):
    job = make_job("attrs", recipe_text=ATTRIBUTES)
    item = job.items("flagged")[0]
    before = (item.output, item.review)
    with pytest.raises(review.EditRejected) as caught:
        review.decide(
            job.store, job.job_id, item.row_id, item.step, "", "edit", edited='{"color": "red", "evil": "x"}'
        )
    assert caught.value.message == (
        f"The edit of row '{item.row_id}', step 'attrs' was not applied: 'evil' is not a field of the "
        "step's output."
    )
    assert caught.value.hint == "The step outputs: 'color', 'pattern'. Remove the other fields."
    assert (job.item(item.row_id).output, job.item(item.row_id).review) == before
    done = review.decide(job.store, job.job_id, item.row_id, item.step, "", "edit", edited='{"color": "red"}')
    assert done.review == "edited" and job.item(item.row_id).output["color"] == "red"


def test_a_workbook_edit_with_a_field_outside_the_output_is_reported_not_applied(make_job, tmp_path):
    job = make_job("attrs", recipe_text=ATTRIBUTES)
    item = job.items("flagged")[0]
    path = review.export_xlsx(job.store, job.job_id, tmp_path / "review.xlsx").path
    decide_in_workbook(path, {item.row_id: ("edit", '{"color": "red", "price": "0"}')})
    report = review.import_xlsx(job.store, job.job_id, path)
    assert report.total_applied == 0
    assert [p.reason for p in report.problems] == [
        f"The edit of row '{item.row_id}', step 'attrs' was not applied: 'price' is not a field of the "
        "step's output."
    ]


def _damaged_workbook(tmp_path: Path, job: object) -> Path:
    good = review.export_xlsx(job.store, job.job_id, tmp_path / "good.xlsx").path  # type: ignore[attr-defined]
    path = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[:60] if info.filename.startswith("xl/worksheets/") else data)
    return path


@pytest.mark.parametrize(
    ("name", "content", "seems"),
    [
        ("review.csv", b"Row,Step,Decision\nA1,title,approve\n", "It is not an Excel workbook at all"),
        ("review.xlsx", b"Row,Step,Decision\nA1,title,approve\n", "It is not an Excel workbook at all"),
        ("review.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, "old binary .xls"),
        ("truncated.xlsx", None, "zip container or a sheet in it is damaged"),
        ("damaged.xlsx", "damaged", "zip container or a sheet in it is damaged"),
    ],
)
def test_a_file_that_is_not_a_readable_review_workbook_is_one_clear_error(
    make_job, tmp_path, capsys, name, content, seems
):
    job = make_job()
    if content == "damaged":
        path = _damaged_workbook(tmp_path, job)
    else:
        path = tmp_path / name
        if content is None:
            good = review.export_xlsx(job.store, job.job_id, tmp_path / "good.xlsx").path
            content = good.read_bytes()[:500]
        path.write_bytes(content)
    with pytest.raises(CatalogError) as caught:
        review.import_xlsx(job.store, job.job_id, path)
    assert caught.value.message.startswith(f"{path.name} is not a review workbook skuforge can read (")
    assert seems in caught.value.message
    assert "skuforge review export" in (caught.value.hint or "")
    capsys.readouterr()
    assert main(["review", "import", job.job_id, str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is not a review workbook" in " ".join(err.split())


def test_a_folder_given_as_the_review_file_is_a_clear_error(make_job, tmp_path):
    job = make_job()
    with pytest.raises(CatalogError, match="is a folder, not a review workbook"):
        review.import_xlsx(job.store, job.job_id, tmp_path)
