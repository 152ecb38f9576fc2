"""Jobs through the API: trial with projection, launch, control, results, events, export, review."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from tests.service.conftest import SAMPLE_XLSX, upload, wait_for


def trial(client: TestClient, **extra: Any) -> dict[str, Any]:
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": "fake:", **extra}
    response = client.post("/api/jobs?kind=trial", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_trial_runs_a_sample_and_projects_the_full_run(client: TestClient) -> None:
    job = wait_for(client, trial(client, sample=4)["id"])
    assert job["kind"] == "trial" and job["progress"]["rows"] == 4
    projection = client.get(f"/api/jobs/{job['id']}/projection").json()
    assert projection["full_rows"] == 20
    assert projection["projected_cost"] > job["progress"]["cost"] > 0


def test_trial_honours_the_filter(client: TestClient) -> None:
    job = wait_for(client, trial(client, where="category = 'Sports & Outdoors'", sample=50)["id"])
    rows = client.get(f"/api/catalogs/{upload_id(client)}?rows=100").json()["rows"]
    sports = {r["data"]["sku"] for r in rows if r["data"]["category"] == "Sports & Outdoors"}
    items = client.get(f"/api/jobs/{job['id']}/items").json()["items"]
    assert {i["row_id"] for i in items} == sports
    assert client.get(f"/api/jobs/{job['id']}/projection").json()["full_rows"] == len(sports)


def upload_id(client: TestClient) -> str:
    return str(client.get("/api/catalogs").json()[0]["id"])


def test_launching_a_trial_runs_every_row_and_results_page_in_order(client: TestClient) -> None:
    done_trial = wait_for(client, trial(client)["id"])
    run = client.post(f"/api/jobs/{done_trial['id']}/launch").json()
    assert run["kind"] == "run" and run["parent_id"] == done_trial["id"]
    run = wait_for(client, run["id"])
    assert run["progress"]["rows"] == 20
    first = client.get(f"/api/jobs/{run['id']}/items?limit=7").json()
    second = client.get(f"/api/jobs/{run['id']}/items?limit=7&offset={first['next_offset']}").json()
    indexes = [i["row_index"] for i in first["items"] + second["items"]]
    assert indexes == sorted(indexes) and len(set(indexes)) == 14
    assert "key" not in first["items"][0]


def test_running_the_same_spec_again_continues_the_same_job(client: TestClient) -> None:
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": "fake:"}
    first = wait_for(client, client.post("/api/jobs?kind=run", json=body).json()["id"])
    again = client.post("/api/jobs?kind=run", json=body).json()
    assert again["id"] == first["id"]
    again = wait_for(client, again["id"])
    assert again["progress"]["requests"] == first["progress"]["requests"]  # nothing sent twice


def test_a_draft_job_waits_until_started(client: TestClient) -> None:
    job = trial(client, start=False)
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "draft"
    assert client.post(f"/api/jobs/{job['id']}/start").json()["state"] in ("queued", "running", "done")
    wait_for(client, job["id"])


class GatedFake:
    """fake: answers that wait for a gate, so a test sees the job running however loaded the machine is."""

    def __init__(self) -> None:
        import threading

        self.gate = threading.Event()

    def __call__(self, name: str) -> Any:
        from skuforge.providers.fake import FakeProvider

        gate = self.gate

        class Gated(FakeProvider):
            async def generate(self, request: Any) -> Any:
                while not gate.is_set():
                    await asyncio.sleep(0.01)
                return await super().generate(request)

        return Gated()


def test_pause_resume_and_cancel_a_running_job(make_client: Any) -> None:
    provider = GatedFake()
    client = make_client(provider_factory=provider)
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": "fake:"}
    job = client.post("/api/jobs?kind=run", json=body).json()
    wait_for(client, job["id"], ("running",))
    client.post(f"/api/jobs/{job['id']}/pause")
    paused = wait_for(client, job["id"], ("paused",))
    assert paused["progress"]["rows"] < 20
    assert client.post(f"/api/jobs/{job['id']}/pause").status_code == 409
    client.post(f"/api/jobs/{job['id']}/resume")
    wait_for(client, job["id"], ("running",))
    client.post(f"/api/jobs/{job['id']}/cancel")
    cancelled = wait_for(client, job["id"], ("cancelled",))
    provider.gate.set()
    client.post(f"/api/jobs/{job['id']}/resume")
    finished = wait_for(client, job["id"])
    assert finished["progress"]["rows"] == 20
    items = client.get(f"/api/jobs/{job['id']}/items?limit=100").json()["items"]
    assert all(i["attempts"] == 1 for i in items)  # paused and resumed twice, nothing sent twice
    assert cancelled["progress"]["rows"] <= 20


def test_events_stream_progress_until_the_job_ends(client: TestClient) -> None:
    job = trial(client)
    events = []
    with client.stream("GET", f"/api/jobs/{job['id']}/events?interval=0.1") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            if line.startswith("data: ") and events[-1] == "progress":
                last = json.loads(line[6:])
    assert events[0] == "progress" and events[-1] == "end"
    assert last["state"] == "done" and last["progress"]["rows"] == 5


def test_export_in_every_supported_format(client: TestClient) -> None:
    run = wait_for(
        client, client.post(f"/api/jobs/{wait_for(client, trial(client)['id'])['id']}/launch").json()["id"]
    )
    for fmt in ("xlsx", "csv", "tsv", "jsonl", "parquet"):
        response = client.get(f"/api/jobs/{run['id']}/export?format={fmt}")
        assert response.status_code == 200, (fmt, response.text)
        assert f".{fmt}" in response.headers["content-disposition"]
        data = response.content
        if fmt == "xlsx":
            rows = list(
                load_workbook(io.BytesIO(data), read_only=True).worksheets[0].iter_rows(values_only=True)
            )
            assert len(rows) == 21 and "skuforge_status" in rows[0]
        elif fmt == "parquet":
            assert pq.read_table(io.BytesIO(data)).num_rows == 20
        elif fmt == "jsonl":
            assert len(data.decode().strip().splitlines()) == 20
        else:
            assert len(data.decode("utf-8-sig").strip().splitlines()) == 21
    assert client.get(f"/api/jobs/{run['id']}/export?format=xls").status_code == 422


def test_review_approve_reject_edit_with_an_audit_trail_and_approved_only_export(client: TestClient) -> None:
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": "fake:", "review_sample": 1.0}
    run = wait_for(client, client.post("/api/jobs?kind=run", json=body).json()["id"])
    queue = client.get(f"/api/jobs/{run['id']}/review").json()["items"]
    assert len(queue) >= 3 and queue[0]["source"]["sku"] == queue[0]["row_id"]
    a, r, e = queue[:3]
    key = lambda i: {"row_id": i["row_id"], "step": i["step"], "variant": i["variant"]}  # noqa: E731
    assert (
        client.post(f"/api/jobs/{run['id']}/review", json={**key(a), "action": "approve"}).json()["review"]
        == "approved"
    )
    assert (
        client.post(f"/api/jobs/{run['id']}/review", json={**key(r), "action": "reject"}).json()["review"]
        == "rejected"
    )
    edit = {**key(e), "action": "edit", "output": {"color": "Red"}, "comment": "checked the photo"}
    assert client.post(f"/api/jobs/{run['id']}/review", json=edit).json()["review"] == "edited"
    history = client.get(f"/api/jobs/{run['id']}/review/history").json()
    assert list(dict.fromkeys(h["action"] for h in history)) == ["approve", "reject", "edit"]
    color = [h for h in history if h["action"] == "edit" and h["field"] and "color" in h["field"]]
    assert color and color[0]["after"] == "Red" and color[0]["who"] == "api"
    assert color[0]["comment"] == "checked the photo"
    remaining = {i["row_id"] for i in client.get(f"/api/jobs/{run['id']}/review").json()["items"]}
    assert not remaining & {a["row_id"], r["row_id"], e["row_id"]}
    response = client.get(f"/api/jobs/{run['id']}/export?format=jsonl&approved_only=true")
    rows = {json.loads(line)["sku"]: json.loads(line) for line in response.text.splitlines()}
    assert rows[e["row_id"]].get("color_generated", rows[e["row_id"]].get("color")) == "Red"
    assert rows[r["row_id"]]["skuforge_status"] == "withheld"


def test_a_job_cannot_be_deleted_while_it_runs_but_can_afterwards(client: TestClient) -> None:
    job = wait_for(client, trial(client)["id"])
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 204
    assert client.get(f"/api/jobs/{job['id']}").status_code == 404


def test_a_job_that_cannot_run_is_refused_before_it_is_queued(client: TestClient, monkeypatch: Any) -> None:
    stored = upload(client, SAMPLE_XLSX)
    no_rows = {
        "catalog": stored["id"],
        "recipe": "attributes",
        "model": "fake:",
        "where": "category = 'Nope'",
    }
    refused = client.post("/api/jobs?kind=trial", json=no_rows)
    assert refused.status_code == 400 and "no row matches" in refused.json()["error"]["message"]
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    unreachable = {"catalog": stored["id"], "recipe": "attributes", "model": "openai:gpt-4o-mini"}
    answer = client.post("/api/jobs?kind=trial", json=unreachable)
    assert answer.status_code >= 400 and "cannot reach" in answer.json()["error"]["message"].lower()
    listed = client.get("/api/jobs").json()
    assert not (listed["jobs"] if isinstance(listed, dict) else listed)  # neither was created
