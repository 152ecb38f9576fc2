"""The whole console workflow in a real headless Chromium: login, upload, trial, run, review, download."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import REPO, TOKEN, LiveServer, shot

pytestmark = pytest.mark.browser
SAMPLE = REPO / "examples" / "catalog.xlsx"


def login(page: Any, server: LiveServer, lang: str = "en") -> None:
    page.goto(f"{server.url}/?lang={lang}")
    assert "/login" in page.url
    page.fill("input[name=token]", TOKEN)
    page.fill("input[name=user]", "Mei")
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_operator_completes_the_workflow_from_upload_to_download(
    page: Any, live_server: LiveServer, tmp_path: Path
) -> None:
    login(page, live_server)
    shot(page, "01-home-empty")
    page.set_input_files("input[type=file]", str(SAMPLE))
    page.click("form.upload button[type=submit]")
    page.wait_for_url("**/catalogs/c-*")
    assert page.locator("table.grid.compact tbody tr").count() == 6
    page.select_option("select[name=recipe]", "attributes")
    page.fill("input[name=model]", "fake:")
    shot(page, "02-catalog-setup")
    page.click("form.setup button[type=submit]")
    page.wait_for_url("**/jobs/j-*")
    page.wait_for_selector("#launch")  # the page reloads itself when the trial is done
    assert page.locator("table.results tbody tr").count() == 5
    shot(page, "03-trial-preview", full=True)
    page.click("#launch")
    page.wait_for_selector("#download")
    page.wait_for_selector('[data-field="state"].done, .state.done', timeout=180_000)
    page.wait_for_selector('[data-field="rows"]:text-is("20")')
    shot(page, "04-run-done")
    page.click("#review-link")
    page.wait_for_url("**/review")
    cards = page.locator(".review-item")
    pending = cards.count()
    assert pending > 0
    shot(page, "05-review")
    page.keyboard.press("a")
    page.wait_for_selector(".review-item:nth-child(1) .decision.approved")
    if pending > 1:
        page.keyboard.press("r")
        page.wait_for_selector(".review-item:nth-child(2) .decision.rejected")
    shot(page, "06-review-decided")
    page.go_back()
    page.wait_for_selector("#download")
    page.select_option("select[name=format]", "csv")
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / "enriched.csv"
    info.value.save_as(target)
    with target.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20
    assert "skuforge_status" in rows[0]


def test_review_edit_with_keyboard_saves_the_new_output(page: Any, live_server: LiveServer) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with SAMPLE.open("rb") as handle:
        catalog = httpx.post(
            f"{live_server.url}/api/catalogs", files={"file": ("c.xlsx", handle)}, headers=headers
        ).json()
    job = httpx.post(
        f"{live_server.url}/api/jobs?kind=run",
        headers=headers,
        json={"catalog": catalog["id"], "recipe": "attributes", "model": "fake:", "review_sample": 1.0},
    ).json()
    login(page, live_server)
    page.goto(f"{live_server.url}/jobs/{job['id']}")
    page.wait_for_selector(".state.done")
    page.goto(f"{live_server.url}/jobs/{job['id']}/review")
    first = page.locator(".review-item").first
    row_id = first.get_attribute("data-row")
    page.keyboard.press("e")
    page.fill(".review-item.current textarea", '{"color": "Crimson"}')
    page.click(".review-item.current .editor button")
    page.wait_for_selector(".review-item:nth-child(1) .decision.edited")
    history = httpx.get(f"{live_server.url}/api/jobs/{job['id']}/review/history", headers=headers).json()
    edits = [h for h in history if h["row_id"] == row_id and h["action"] == "edit"]
    assert any(h["after"] == "Crimson" for h in edits)
    assert all(h["who"] == "Mei" for h in edits)


def test_console_speaks_chinese_and_try_one_streams_tokens(page: Any, live_server: LiveServer) -> None:
    login(page, live_server, lang="zh")
    assert "上传商品表" in page.content()
    page.set_input_files("input[type=file]", str(SAMPLE))
    page.click("form.upload button[type=submit]")
    page.wait_for_url("**/catalogs/c-*")
    assert "选择配方和模型" in page.content()
    page.goto(f"{live_server.url}/")
    shot(page, "08-home-zh")
    page.goto(f"{live_server.url}/try")
    page.select_option("select[name=recipe]", "attributes")
    page.fill("input[name=model]", "fake:")
    page.click("#try button[type=submit]")
    page.wait_for_selector("#try-parsed:not(:empty)")
    assert page.locator("#try-answer").text_content().strip().startswith("{")
    assert "[user]" in page.locator("#try-prompt").text_content()
    shot(page, "07-try-one-zh")
