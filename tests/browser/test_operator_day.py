"""An operator's whole day in the console, in a real headless Chromium, against the mock OpenAI server.

Upload -> trial -> launch in provider batch mode -> results side by side -> review by Excel round trip
(download the workbook, decide in it with openpyxl, upload it back) -> roll back one edit -> export; then a
nightly schedule: plain-language cron preview, next runs, edit, pause, run now, history, resume, delete.
Each page is photographed at 1280x800 into artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from skuforge.testing.mock_batch import BatchConfig, MockBatches
from skuforge.testing.mock_openai import MockConfig, MockServer
from tests.browser.conftest import REPO, LiveServer, shot
from tests.browser.test_console import login

pytestmark = pytest.mark.browser
SAMPLE = REPO / "examples" / "catalog.xlsx"
MODEL = "openai:gpt-4o-mini"
ATTRIBUTES = ("brand", "color", "material", "size", "weight")
JOB_DONE = 180_000
"""ms a job may take to finish on a loaded machine (a failure bound, not a speed requirement)."""


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[MockBatches]:
    batches = MockBatches(BatchConfig())
    with MockServer(MockConfig(), routes=batches.routes()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("SKUFORGE_BATCH_POLL_S", "0.05")
        yield batches


@pytest.fixture
def day_server(provider: MockBatches) -> Iterator[LiveServer]:
    with LiveServer(models=[MODEL, "fake:"]) as server:
        yield server


def decide_in_excel(path: Path) -> dict[str, str]:
    """Approve the first row, edit the second, reject the third, as a reviewer does in Excel."""
    workbook = load_workbook(path)
    sheet = workbook["Review"]
    header = [c.value for c in sheet[1]]
    rows = list(sheet.iter_rows(min_row=2))
    assert len(rows) >= 3, "the run should leave at least three items to review"
    col = {name: header.index(name) for name in ("Decision", "Edited output", "Output", "key:row_id")}
    rows[0][col["Decision"]].value = "approve"
    first_field = str(rows[1][col["Output"]].value).splitlines()[0].split(":")[0]
    rows[1][col["Decision"]].value = "edit"
    several = first_field in ATTRIBUTES  # 'color: Black' lines; a one-field output is shown as its text
    rows[1][col["Edited output"]].value = json.dumps({first_field: "Crimson"}) if several else "Crimson"
    rows[2][col["Decision"]].value = "reject"
    workbook.save(path)
    return {
        "approved": rows[0][col["key:row_id"]].value,
        "edited": rows[1][col["key:row_id"]].value,
        "field": first_field,
    }


def test_an_operators_day_from_upload_to_a_nightly_schedule(
    page: Any, day_server: LiveServer, provider: MockBatches, tmp_path: Path
) -> None:
    url = day_server.url
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{url}/login")
    shot(page, "day-01-login")
    login(page, day_server)

    # -- upload and trial ---------------------------------------------------------------------------
    page.set_input_files("input[type=file]", str(SAMPLE))
    page.click("form.upload button[type=submit]")
    page.wait_for_url("**/catalogs/c-*")
    page.select_option("select[name=recipe]", "attributes")
    page.fill("input[name=model]", MODEL)
    shot(page, "day-02-catalog")
    page.click("form.setup button[type=submit]")
    page.wait_for_url("**/jobs/j-*")
    page.wait_for_selector("#launch", timeout=JOB_DONE)  # the page reloads itself when the trial is done

    # -- launch in batch mode: the projection is redrawn at the batch price, within 24 h ----------------
    online_cost = page.text_content('[data-choice="cost"]')
    assert not page.text_content('[data-choice="time"]').startswith("within")
    page.check("input[name=mode][value=batch]")
    page.wait_for_selector('#launch-form[data-mode="batch"]')
    assert page.text_content('[data-choice="time"]').startswith("within 24 h")
    batch_cost = page.text_content('[data-choice="cost"]')
    assert dollars(batch_cost) == pytest.approx(dollars(online_cost) / 2, abs=1e-4)  # shown to 4 places
    choices = {(c["mode"], c["executor"]): c for c in json.loads(page.text_content("#launch-choices"))}
    online, batch = choices[("online", "local")], choices[("batch", "local")]
    assert batch["cost_expected"] == pytest.approx(online["cost_expected"] / 2)
    page.fill("input[name=max_cost]", "5")
    shot(page, "day-03-trial-launch-batch", full=False)
    page.click("#launch")
    page.wait_for_selector("#run-mode")
    assert "Provider batch" in page.text_content("#run-mode")
    page.wait_for_selector('#job[data-state="done"]', timeout=JOB_DONE)
    assert provider.lines_received >= 15 and provider.batches
    assert page.text_content('[data-field="rows"]') == "20"
    assert page.text_content('[data-live="budget"]') == "$5.00"
    shot(page, "day-04-run-done")
    run_url = page.url

    # -- results: original beside generated, changes and flags marked -------------------------------------
    page.click("#results-link")
    page.wait_for_selector("#results")
    assert page.locator("td.generated.cell-changed").count() > 0
    flagged = page.locator("td.generated.cell-flagged").first
    assert ":" in flagged.get_attribute("title")  # 'check: reason' on hover
    shot(page, "day-05-results")
    page.select_option("select[name=status]", "flagged")
    page.wait_for_url("**status=flagged**")
    assert page.locator("tbody.item.status-done").count() == 0 and page.locator("tbody.item").count() > 0

    # -- review in Excel: download, decide, upload back -------------------------------------------------
    page.goto(run_url)
    with page.expect_download() as info:
        page.click("#workbook-download")
    workbook = tmp_path / "review.xlsx"
    info.value.save_as(workbook)
    chosen = decide_in_excel(workbook)
    page.set_input_files("#workbook-upload input[type=file]", str(workbook))
    page.click("#workbook-upload button[type=submit]")
    page.wait_for_selector("#import-report")
    counts = {
        k: page.text_content(f'#import-report [data-field="{k}"]') for k in ("approve", "edit", "reject")
    }
    assert counts == {"approve": "1", "edit": "1", "reject": "1"}
    assert page.text_content('#import-report [data-field="problems"]') == "0"
    shot(page, "day-06-review-imported")

    # -- roll back the edit --------------------------------------------------------------------------
    page.click("#to-review")
    page.click('[data-tab="edited"]')
    page.wait_for_url("**status=edited**")
    card = page.locator(f'.review-item[data-row="{chosen["edited"]}"]')
    assert "Crimson" in card.text_content() and "by Mei" in card.text_content()
    shot(page, "day-07-review-edited")
    card.locator('button[data-act="rollback"]').click()
    card.locator(".decision.rolled").wait_for()
    assert card.locator('button[data-act="rollback"]').count() == 0

    # -- export: the rolled-back edit is gone, the approved item is there ------------------------------------
    page.goto(run_url)
    page.select_option("select[name=format]", "csv")
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / "final.csv"
    info.value.save_as(target)
    with target.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert "Crimson" not in target.read_text(encoding="utf-8-sig")

    # -- a nightly schedule ------------------------------------------------------------------------------
    page.click('nav a[href="/schedules"]')
    page.wait_for_selector("#schedule-form")
    page.fill("input[name=name]", "nightly attributes")
    page.fill("#cron-input", "30 6 * * 1-5")
    page.wait_for_selector('#cron-preview[data-cron="30 6 * * 1-5"]')
    assert page.text_content('#cron-preview [data-field="description"]') == (
        "every weekday (Monday to Friday) at 06:30 (UTC)"
    )
    page.fill("#cron-input", "0 2 * * *")
    page.wait_for_selector('#cron-preview[data-cron="0 2 * * *"]')
    assert page.text_content('#cron-preview [data-field="description"]') == "every day at 02:00 (UTC)"
    runs = page.locator('#cron-preview [data-field="next"] li').all_text_contents()
    assert len(runs) == 3 and all(r.endswith("02:00 UTC") for r in runs)
    page.fill("input[name=model]", "fake:")
    shot(page, "day-08-schedule-new")
    page.click("#schedule-save")
    page.wait_for_url("**/schedules/s-*")
    assert page.locator("#next-runs li").count() == 3
    assert "every day at 02:00 (UTC)" in page.text_content("#schedule")

    page.fill("#schedule-form input[name=cron]", "0 3 * * 6,0")
    page.click("#schedule-save")
    page.wait_for_selector("text=every Saturday and Sunday at 03:00 (UTC)")
    page.click('#schedule button[data-act="pause"]')
    page.wait_for_selector('#schedule [data-field="state"].paused')
    assert page.locator("#next-runs li").all_text_contents() == ["Paused: no run until it is resumed."]
    page.click('#schedule button[data-act="run"]')
    page.wait_for_selector("#history")
    page.click("#history a[href^='/jobs/']")
    page.wait_for_selector('#job[data-state="done"]', timeout=JOB_DONE)
    page.go_back()
    page.reload()
    first = page.locator("#history tbody tr").first
    assert "run now" in first.text_content() and "done" in first.text_content()
    page.click('#schedule button[data-act="resume"]')
    page.wait_for_selector('#schedule [data-field="state"].running')
    assert page.locator("#next-runs li").count() == 3
    shot(page, "day-09-schedule")
    page.goto(f"{url}/schedules")
    shot(page, "day-10-schedules")
    page.click('#schedules button[data-act="delete"]')
    page.wait_for_selector("#no-schedules")


def dollars(text: str | None) -> float:
    return float((text or "").strip().lstrip("$").replace(",", ""))
