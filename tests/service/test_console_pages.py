"""The console's new pages in-process: every word in English and Chinese, forms that keep their CSRF guard,
schedules driven by forms, and the review workbook uploaded from the console."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from tests.service.conftest import SAMPLE_XLSX, TOKEN, wait_for

CONSOLE = Path(__file__).resolve().parents[2] / "src" / "skuforge" / "service" / "console"
DYNAMIC = {  # keys the templates build as prefix ~ value, with every value they can take
    "state_": ["draft", "queued", "running", "paused", "done", "failed", "cancelled", "deleted"],
    "kind_": ["trial", "run"],
    "mode_": ["online", "batch", "online_help", "batch_help"],
    "executor_": ["local", "ray", "local_help", "ray_help"],
    "queue_": ["pending", "flagged", "edited", "approved", "rejected", "all"],
    "status_": ["done", "flagged", "failed", "skipped", "pending", "approved", "edited", "rejected"],
    "trigger_": ["cron", "manual"],
    "action_": ["approve", "reject", "edit", "rollback"],
}


def test_every_word_the_templates_use_exists_in_english_and_chinese() -> None:
    strings = yaml.safe_load((CONSOLE / "strings.yaml").read_text(encoding="utf-8"))
    used: set[str] = set()
    for template in (CONSOLE / "templates").glob("*.html"):
        used |= set(re.findall(r"\bt\('([a-z0-9_]+)'\s*[,)]", template.read_text(encoding="utf-8")))
    used |= {prefix + value for prefix, values in DYNAMIC.items() for value in values}
    used |= {"approved", "rejected", "edited"}  # t(i.review)
    missing = sorted(k for k in used if not (strings.get(k) or {}).get("en") or not strings[k].get("zh"))
    assert missing == []


@pytest.fixture
def console(client: TestClient) -> TestClient:
    """The same app, logged in through the console as Mei (session cookie, no bearer token)."""
    del client.headers["Authorization"]
    assert client.post("/login", data={"token": TOKEN, "user": "Mei"}).status_code == 200
    return client


def csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the page has no CSRF field"
    return match.group(1)


def test_schedules_are_made_and_run_from_console_forms(console: TestClient) -> None:
    with SAMPLE_XLSX.open("rb") as handle:
        listing = console.get("/")
        created = console.post(
            "/console/upload", data={"csrf": csrf(listing.text)}, files={"file": ("feed.xlsx", handle)}
        )
    catalog_id = created.url.path.rsplit("/", 1)[-1]
    page = console.get("/schedules?lang=zh")
    assert "每天 02:00（UTC）" in page.text  # the form's preview, rendered without JavaScript
    form = {"csrf": csrf(page.text), "name": "nightly", "cron": "30 6 * * 1-5", "catalog": catalog_id}
    form |= {"recipe": "attributes", "model": "fake:", "mode": "online", "executor": "local", "max_cost": ""}
    detail = console.post("/console/schedules", data=form)
    assert detail.url.path.startswith("/schedules/s-")
    assert "工作日（周一至周五） 06:30（UTC）" in detail.text
    schedule_id = detail.url.path.rsplit("/", 1)[-1]
    bad = console.post(f"/console/schedules/{schedule_id}", data=form | {"cron": "at night"})
    assert bad.status_code == 400 and "is not a cron expression" in bad.text
    forged = console.post(f"/console/schedules/{schedule_id}/run", data={"csrf": "forged"})
    assert forged.status_code == 403
    ran = console.post(f"/console/schedules/{schedule_id}/run", data={"csrf": form["csrf"]})
    job_id = re.search(r'href="/jobs/(j-[^"]+)"', ran.text)
    assert job_id, "the history lists the job the run started"
    wait_for(console, job_id.group(1))
    assert "手动运行" in console.get(f"/schedules/{schedule_id}?lang=zh").text
    gone = console.post(f"/console/schedules/{schedule_id}/delete", data={"csrf": form["csrf"]})
    assert gone.url.path == "/schedules" and "nightly" not in gone.text


def test_the_workbook_uploaded_from_the_console_needs_the_form_token(console: TestClient) -> None:
    with SAMPLE_XLSX.open("rb") as handle:
        catalog = console.post(
            "/api/catalogs",
            files={"file": ("c.xlsx", handle)},
            headers={"X-CSRF-Token": session_csrf(console)},
        ).json()
    body = {"catalog": catalog["id"], "recipe": "attributes", "model": "fake:", "review_sample": 1.0}
    run = console.post(
        "/api/jobs?kind=run", json=body, headers={"X-CSRF-Token": session_csrf(console)}
    ).json()
    wait_for(console, run["id"])
    page = console.get(f"/jobs/{run['id']}/review")
    assert page.status_code == 200 and "Download review workbook" in page.text
    workbook = load_workbook(io.BytesIO(console.get(f"/jobs/{run['id']}/review/workbook").content))
    sheet = workbook["Review"]
    header = [c.value for c in sheet[1]]
    sheet.cell(row=2, column=header.index("Decision") + 1, value="approve")
    data = io.BytesIO()
    workbook.save(data)
    url = f"/console/jobs/{run['id']}/review/import"
    refused = console.post(url, data={"csrf": "forged"}, files={"file": ("r.xlsx", data.getvalue())})
    assert refused.status_code == 403
    assert console.get(f"/api/jobs/{run['id']}/review?status=approved").json()["items"] == []
    report = console.post(url, data={"csrf": csrf(page.text)}, files={"file": ("r.xlsx", data.getvalue())})
    assert report.status_code == 200 and 'data-field="approve">1<' in report.text
    assert len(console.get(f"/api/jobs/{run['id']}/review?status=approved").json()["items"]) == 1
    results = console.get(f"/jobs/{run['id']}/results?status=approved&lang=zh")
    assert (
        results.status_code == 200 and "结果对比" in results.text and results.text.count('class="item ') == 1
    )


def session_csrf(client: TestClient) -> str:
    return csrf(client.get("/").text)


def test_the_job_page_offers_the_launch_options_a_trial_allows(console: TestClient, make_client: Any) -> None:
    with SAMPLE_XLSX.open("rb") as handle:
        catalog = console.post(
            "/api/catalogs",
            files={"file": ("c.xlsx", handle)},
            headers={"X-CSRF-Token": session_csrf(console)},
        ).json()
    body = {"catalog": catalog["id"], "recipe": "attributes", "model": "fake:"}
    trial = console.post(
        "/api/jobs?kind=trial", json=body, headers={"X-CSRF-Token": session_csrf(console)}
    ).json()
    wait_for(console, trial["id"])
    page = console.get(f"/jobs/{trial['id']}").text
    batch = re.search(r'<input type="radio" name="mode" value="batch"[^>]*>', page)
    ray = re.search(r'<input type="radio" name="executor" value="ray"[^>]*>', page)
    assert batch and "disabled" in batch.group(0)  # fake: has no batch API
    assert ray and "disabled" in ray.group(0)  # this service has no Ray cluster
    assert "&#39;fake:&#39; has no batch API" in page or "'fake:' has no batch API" in page
    refused = console.post(f"/console/jobs/{trial['id']}/launch", data={"csrf": csrf(page), "mode": "batch"})
    assert refused.status_code == 422 and "no batch API" in refused.text
    launched = console.post(
        f"/console/jobs/{trial['id']}/launch", data={"csrf": csrf(page), "mode": "online", "max_cost": "2.50"}
    )
    assert launched.url.path.startswith("/jobs/") and 'id="live"' in launched.text
    run = wait_for(console, launched.url.path.rsplit("/", 1)[-1])
    assert run["plan"]["budget"] == 2.5 and run["mode"] == "online"


def test_the_model_field_starts_empty_so_each_recipe_runs_on_its_own_default(console: TestClient) -> None:
    with SAMPLE_XLSX.open("rb") as handle:
        listing = console.get("/")
        created = console.post(
            "/console/upload", data={"csrf": csrf(listing.text)}, files={"file": ("feed.xlsx", handle)}
        )
    field = re.search(r'<input name="model"[^>]*>', created.text)
    assert field is not None
    assert 'value=""' in field.group(0) and "the recipe&#39;s default" in field.group(0)
    assert "required" not in field.group(0)
    on_try = re.search(r'<input name="model"[^>]*>', console.get("/try").text)
    assert on_try is not None and 'value=""' in on_try.group(0)
