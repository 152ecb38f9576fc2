"""Schedules from the API: plain-language cron previews, edit, pause and resume, run now, delete, history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from skuforge.service import cron, schedules
from tests.service.conftest import SAMPLE_CSV, upload, wait_for

MONDAY_NOON = datetime(2025, 6, 2, 12, 0, tzinfo=UTC).timestamp()


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%a %H:%M")


@pytest.mark.parametrize(
    ("expr", "english", "chinese"),
    [
        ("0 2 * * *", "every day at 02:00 (UTC)", "每天 02:00（UTC）"),
        ("*/15 * * * *", "every 15 minutes (UTC)", "每 15 分钟（UTC）"),
        (
            "30 6 * * mon-fri",
            "every weekday (Monday to Friday) at 06:30 (UTC)",
            "工作日（周一至周五） 06:30（UTC）",
        ),
        ("0 3 * * 6,0", "every Saturday and Sunday at 03:00 (UTC)", "每周六、周日 03:00（UTC）"),
        (
            "0 2 * * 1,3,5",
            "every Monday, Wednesday and Friday at 02:00 (UTC)",
            "每周一、周三、周五 02:00（UTC）",
        ),
        ("0 0 1 * *", "on day 1 of every month at 00:00 (UTC)", "每月 1 日 00:00（UTC）"),
        ("0 */4 * * *", "every 4 hours, on the hour (UTC)", "每 4 小时（整点）（UTC）"),
        ("15 * * * *", "every hour at minute 15 (UTC)", "每小时第 15 分（UTC）"),
        ("0 8,20 * * *", "every day at 08:00 and 20:00 (UTC)", "每天 08:00、20:00（UTC）"),
        ("0 9-17 * * *", "every hour from 09:00 to 17:00 (UTC)", "09:00 至 17:00 每小时一次（UTC）"),
    ],
)
def test_cron_expressions_read_as_plain_words(expr: str, english: str, chinese: str) -> None:
    assert cron.describe(expr) == english
    assert cron.describe(expr, "zh") == chinese


def test_unusual_cron_expressions_are_still_described_and_bad_ones_refused() -> None:
    assert cron.describe("0 9 * * 1#2") == "at 09:00, on the second Monday of the month (UTC)"
    assert "last day of the month" in cron.describe("0 0 L * *")
    with pytest.raises(Exception, match="is not a cron expression") as caught:
        cron.describe("every night")
    assert "0 2 * * *" in caught.value.hint  # type: ignore[attr-defined]


def test_the_next_three_runs_follow_the_expression() -> None:
    runs = cron.next_runs("30 6 * * 1-5", after=MONDAY_NOON - 6 * 86400)  # Tuesday 2025-05-27 noon
    assert [utc(t) for t in runs] == ["Wed 06:30", "Thu 06:30", "Fri 06:30"]
    assert cron.stamp(runs[0]) == "Wed 2025-05-28 06:30 UTC"


def test_the_preview_endpoint_answers_as_the_operator_types(client: TestClient) -> None:
    good = client.get("/api/schedules/preview", params={"cron": "0 2 * * *"}).json()
    assert good["valid"] and good["description"] == "every day at 02:00 (UTC)"
    assert len(good["next_runs"]) == 3 and all(t.endswith("02:00 UTC") for t in good["next_runs_text"])
    assert [b - a for a, b in zip(good["next_runs"], good["next_runs"][1:], strict=False)] == [86400, 86400]
    zh = client.get("/api/schedules/preview", params={"cron": "0 2 * * *", "lang": "zh"}).json()
    assert zh["description"] == "每天 02:00（UTC）"
    bad = client.get("/api/schedules/preview", params={"cron": "0 2 * *"}).json()
    assert bad["valid"] is False and "five fields" in bad["error"]["hint"]


def schedule_body(catalog_id: str, **extra: Any) -> dict[str, Any]:
    body = {"name": "nightly", "cron": "0 2 * * *", "catalog": catalog_id, "recipe": "attributes"}
    return body | {"model": "fake:"} | extra


def test_a_schedule_is_created_edited_paused_resumed_run_and_deleted(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV)
    entry = client.post("/api/schedules", json=schedule_body(stored["id"])).json()
    assert entry["description"] == "every day at 02:00 (UTC)" and len(entry["next_runs"]) == 3
    assert entry["catalog"] == {"id": stored["id"], "name": "catalog.csv"}
    assert "/" not in str(entry["spec"])  # no server path leaves the service

    edited = client.put(
        f"/api/schedules/{entry['id']}",
        json=schedule_body(stored["id"], name="weekday mornings", cron="30 6 * * 1-5", max_cost=2.5),
    ).json()
    assert edited["name"] == "weekday mornings" and edited["spec"]["max_cost"] == 2.5
    assert edited["description"] == "every weekday (Monday to Friday) at 06:30 (UTC)"
    assert all(datetime.fromtimestamp(t, tz=UTC).weekday() < 5 for t in edited["next_runs"])

    paused = client.post(f"/api/schedules/{entry['id']}/disable").json()
    assert paused["enabled"] is False and paused["next_runs"] == [] and paused["next_run_at"] is None
    store = client.app.state.ctx.store
    assert schedules.fire_due(store, now=entry["created_at"] + 30 * 86400) == []  # paused: never fires

    ran = client.post(f"/api/schedules/{entry['id']}/run").json()  # run now works while paused
    job = wait_for(client, ran["job_id"])
    assert job["progress"]["rows"] == 20 and job["kind"] == "run"
    resumed = client.post(f"/api/schedules/{entry['id']}/enable").json()
    assert resumed["enabled"] is True and resumed["next_run_at"] > resumed["last_run_at"]
    assert schedules.fire_due(store, now=resumed["last_run_at"] + 1) == []  # no catch-up for missed slots

    shown = client.get(f"/api/schedules/{entry['id']}").json()
    assert [(h["trigger"], h["job_id"]) for h in shown["history"]] == [("manual", job["id"])]
    assert client.delete(f"/api/schedules/{entry['id']}").status_code == 204
    assert client.get(f"/api/schedules/{entry['id']}").status_code == 404
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"  # its jobs stay


def test_each_firing_shows_what_its_job_wrote(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV)
    # title: each product's prompt reads only that product (attributes 2.0 also quotes similar products)
    entry = client.post("/api/schedules", json=schedule_body(stored["id"], recipe="title")).json()
    store = client.app.state.ctx.store
    first = schedules.fire_due(store, now=entry["next_run_at"] + 1)
    wait_for(client, first[0])
    raw = SAMPLE_CSV.read_bytes().replace(
        b"AmazonBasics 6W LED Light Bulb", b"AmazonBasics 7W LED Light Bulb"
    )
    client.put(f"/api/catalogs/{stored['id']}", files={"file": ("catalog.csv", raw)})
    second = schedules.fire_due(store, now=entry["next_run_at"] + 86400 + 1)
    assert second == first  # the same run continues: only the changed row is sent
    wait_for(client, second[0])
    history = client.get(f"/api/schedules/{entry['id']}").json()["history"]
    assert [h["trigger"] for h in history] == ["cron", "cron"]
    newest, oldest = history
    assert newest["items"] == 1  # the edited product only: it now dates from the second night
    assert oldest["items"] == 19  # the other products still carry what the first night wrote
    assert newest["job_state"] == "done" and newest["cost"] < oldest["cost"]


def test_a_schedule_with_an_unknown_catalog_model_or_mode_is_refused(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV)
    no_catalog = client.post("/api/schedules", json=schedule_body("c-000000000000"))
    assert no_catalog.status_code == 404
    batch_fake = client.post("/api/schedules", json=schedule_body(stored["id"], mode="batch"))
    assert batch_fake.status_code == 422 and "no batch API" in batch_fake.json()["error"]["message"]
    bad_cron = client.put("/api/schedules/s-000000000000", json=schedule_body(stored["id"]))
    assert bad_cron.status_code == 404
    assert client.get("/api/schedules").json() == []
