"""Recipes (list, show, validate, save), schedules (cron, firing, incremental runs) and 'try one product'."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from skuforge.service import schedules
from tests.service.conftest import SAMPLE_CSV, SAMPLE_XLSX, upload, wait_for

GOOD_RECIPE = """\
name: short_title
version: "1"
description: A short title.
instruction: Write a short title for this product.
input: {fields: [title]}
output: {fields: {title: string}}
"""


def test_recipes_are_listed_shown_validated_and_saved(client: TestClient) -> None:
    names = {r["name"] for r in client.get("/api/recipes").json()}
    assert {"attributes", "title", "translate"} <= names
    shown = client.get("/api/recipes/title").json()
    assert shown["name"] == "title" and "instruction" in shown["yaml"]
    bad = client.post(
        "/api/recipes/validate",
        content="name: x\ninstruction: '{{ oops'\n",
        headers={"Content-Type": "text/plain"},
    ).json()
    assert bad["valid"] is False and bad["problems"][0]["line"]
    refused = client.put("/api/recipes/x", content="name: x\n", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_recipe"
    saved = client.put(
        "/api/recipes/short_title", content=GOOD_RECIPE, headers={"Content-Type": "text/plain"}
    )
    assert saved.status_code == 200
    assert "short_title" in {r["name"] for r in client.get("/api/recipes").json()}
    assert (client.app.state.ctx.home / "recipes" / "short_title.yaml").read_text() == GOOD_RECIPE


def test_recipe_names_cannot_escape_the_recipes_folder(client: TestClient) -> None:
    for name in ("..%2F..%2Fconfig", ".hidden", "a/b"):
        response = client.put(
            f"/api/recipes/{name}", content=GOOD_RECIPE, headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 404, name
    assert not (client.app.state.ctx.home / "config.yaml").exists()


def test_a_schedule_fires_when_due_and_reruns_only_changed_rows(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV)
    body = {
        "name": "nightly",
        "cron": "0 2 * * *",
        "catalog": stored["id"],
        "recipe": "attributes",
        "model": "fake:",
    }
    entry = client.post("/api/schedules", json=body).json()
    assert entry["next_run_at"] > entry["created_at"]
    store = client.app.state.ctx.store
    assert schedules.fire_due(store, now=entry["created_at"] + 60) == []
    first = schedules.fire_due(store, now=entry["next_run_at"] + 1)
    assert len(first) == 1
    assert schedules.fire_due(store, now=entry["next_run_at"] + 2) == []  # fired once per slot
    wait_for(client, first[0])
    before = {
        i["row_id"]: i["updated_at"]
        for i in client.get(f"/api/jobs/{first[0]}/items?limit=100").json()["items"]
    }
    raw = SAMPLE_CSV.read_bytes().replace(
        b"AmazonBasics 6W LED Light Bulb", b"AmazonBasics 7W LED Light Bulb"
    )
    client.put(f"/api/catalogs/{stored['id']}", files={"file": ("catalog.csv", raw)})
    second = schedules.fire_due(store, now=entry["next_run_at"] + 86400 + 1)
    assert second == first  # the same run continues
    wait_for(client, second[0])
    after = {
        i["row_id"]: i["updated_at"]
        for i in client.get(f"/api/jobs/{first[0]}/items?limit=100").json()["items"]
    }
    regenerated = {row for row in after if after[row] != before[row]}
    assert regenerated == {"EN-1001"}  # only the changed row was sent again
    listed = client.get("/api/schedules").json()
    assert listed[0]["last_job_id"] == first[0]
    assert client.post(f"/api/schedules/{entry['id']}/disable").json()["enabled"] is False
    assert client.delete(f"/api/schedules/{entry['id']}").status_code == 204


def test_a_bad_cron_expression_is_refused_with_an_example(client: TestClient) -> None:
    stored = upload(client, SAMPLE_CSV)
    body = {
        "name": "x",
        "cron": "every night",
        "catalog": stored["id"],
        "recipe": "attributes",
        "model": "fake:",
    }
    response = client.post("/api/schedules", json=body)
    assert response.status_code == 400 and "0 2 * * *" in response.json()["error"]["hint"]


def test_try_one_product_streams_tokens_then_the_parsed_output(client: TestClient) -> None:
    stored = upload(client, SAMPLE_XLSX)
    body = {"recipe": "attributes", "model": "fake:", "catalog": stored["id"], "row_index": 1}
    events: list[tuple[str, Any]] = []
    with client.stream("POST", "/api/try", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[0] == "prompt" and kinds[-1] == "done" and kinds.count("token") > 1
    answer = "".join(v for k, v in events if k == "token")
    assert json.loads(answer) == events[-1][1]["output"]
    assert "Starter Yoga Bag" in json.dumps(events[0][1])


def test_try_one_with_an_unknown_model_reports_the_error_in_the_stream(client: TestClient) -> None:
    body = {"recipe": "attributes", "model": "nosuch:model", "row": {"title": "Red shoe"}}
    text = client.post("/api/try", json=body).text
    assert "event: error" in text and "Unknown model" in text


def test_no_provider_key_ever_reaches_a_page_or_a_response(make_client: Any, monkeypatch: Any) -> None:
    secret = "sk-test-SECRET-4242424242"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret + "-a")
    client = make_client(models=["openai:gpt-4o-mini", "fake:"])
    stored = upload(client, SAMPLE_XLSX)
    job = wait_for(
        client,
        client.post(
            "/api/jobs?kind=trial", json={"catalog": stored["id"], "recipe": "attributes", "model": "fake:"}
        ).json()["id"],
    )
    client.post("/login", data={"token": client.headers["Authorization"].split()[1]})
    responses = [
        client.get(p)
        for p in (
            "/api/health",
            "/api/jobs",
            f"/api/jobs/{job['id']}",
            f"/api/jobs/{job['id']}/items",
            "/api/recipes",
            "/api/catalogs",
            "/openapi.json",
            "/",
            "/jobs",
            f"/jobs/{job['id']}",
            f"/catalogs/{stored['id']}",
            "/try",
            "/schedules",
            "/docs",
            "/api/recipes/attributes",
        )
    ]
    responses.append(
        client.post(
            "/api/try", json={"recipe": "attributes", "model": "openai:gpt-4o-mini", "row": {"title": "x"}}
        )
    )
    for response in responses:
        assert response.status_code in (200,), (response.url, response.status_code)
        assert secret not in response.text, response.url
