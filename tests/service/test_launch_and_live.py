"""Launch options (online or provider batch, local or Ray) and the live view of a running job."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from skuforge.providers.base import Usage
from skuforge.providers.prices import price_for
from skuforge.service import live
from skuforge.testing.mock_batch import BatchConfig, MockBatches
from skuforge.testing.mock_openai import MockConfig, MockServer
from tests.service.conftest import SAMPLE_XLSX, upload, wait_for

MODEL = "openai:gpt-4o-mini"


@pytest.fixture
def mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MockServer, MockBatches]]:
    """The mock OpenAI server with its batch endpoints; batches are polled every 20 ms."""
    batches = MockBatches(BatchConfig())
    with MockServer(MockConfig(), routes=batches.routes()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("SKUFORGE_BATCH_POLL_S", "0.02")
        yield server, batches


def finished_trial(client: TestClient, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": model, **extra}
    response = client.post("/api/jobs?kind=trial", json=body)
    assert response.status_code == 201, response.text
    return wait_for(client, response.json()["id"])


def choice(options: list[dict[str, Any]], mode: str, executor: str = "local") -> dict[str, Any]:
    return next(c for c in options if c["mode"] == mode and c["executor"] == executor)


def test_the_projection_is_redrawn_at_the_batch_price_with_a_24_hour_bound(
    client: TestClient, mock: tuple[MockServer, MockBatches]
) -> None:
    trial = finished_trial(client)
    options = client.get(f"/api/jobs/{trial['id']}/launch-options").json()
    online, batch = choice(options, "online"), choice(options, "batch")
    discount = price_for(MODEL).batch_discount  # type: ignore[union-attr]
    assert online["cost_expected"] > 0 and batch["available"] and discount == 0.5
    assert batch["cost_expected"] == pytest.approx(online["cost_expected"] * discount)
    assert batch["cost_high"] == pytest.approx(online["cost_high"] * discount)
    assert batch["within_s"] == 24 * 3600 and online["within_s"] is None
    assert choice(options, "online", "ray")["available"] is False


def test_a_batch_launch_runs_through_the_batch_api_at_half_price(
    client: TestClient, mock: tuple[MockServer, MockBatches]
) -> None:
    server, batches = mock
    trial = finished_trial(client)
    online_requests = server.stats.snapshot()["requests"]
    run = client.post(f"/api/jobs/{trial['id']}/launch", json={"mode": "batch", "max_cost": 5}).json()
    assert run["mode"] == "batch" and run["plan"]["budget"] == 5
    run = wait_for(client, run["id"])
    assert run["progress"]["rows"] == 20
    assert server.stats.snapshot()["requests"] == online_requests  # nothing went through the online API
    # 15 when the trial's 5 products come from the response cache; the batch runner sends them again
    # today (it does not consult the cache), which costs 5 items at the batch price
    assert batches.lines_received in (15, 20)
    price = price_for(MODEL)
    assert price is not None
    items = client.get(f"/api/jobs/{run['id']}/items?limit=100").json()["items"]
    sent = [i for i in items if (i["meta"] or {}).get("batch")]
    assert len(sent) == batches.lines_received
    for item in sent:
        usage = Usage(input_tokens=item["input_tokens"], output_tokens=item["output_tokens"])
        assert item["cost"] == pytest.approx(price.cost(usage) / 2)
    projected = client.get(f"/api/jobs/{trial['id']}/projection").json()["projected_cost"]
    assert run["plan"]["projected_cost"] == pytest.approx(projected / 2)


def test_batch_is_refused_for_a_model_without_a_batch_api_and_for_a_trial(
    client: TestClient, mock: tuple[MockServer, MockBatches]
) -> None:
    trial = finished_trial(client, model="fake:")
    refused = client.post(f"/api/jobs/{trial['id']}/launch", json={"mode": "batch"})
    assert refused.status_code == 422
    assert "'fake:' has no batch API" in refused.json()["error"]["message"]
    stored = upload(client, SAMPLE_XLSX)
    body = {"catalog": stored["id"], "recipe": "attributes", "model": MODEL, "mode": "batch"}
    as_trial = client.post("/api/jobs?kind=trial", json=body)
    assert as_trial.status_code == 422 and "trial runs online" in as_trial.json()["error"]["message"]
    assert [j["id"] for j in client.get("/api/jobs").json()] == [trial["id"]]  # nothing was queued


def test_ray_is_offered_only_when_the_service_has_a_cluster(make_client: Any) -> None:
    from skuforge.engine.spec import JobSpec

    plain = make_client()
    trial = finished_trial(plain, model="fake:")
    refused = plain.post(f"/api/jobs/{trial['id']}/launch", json={"executor": "ray"})
    assert refused.status_code == 422 and "SKUFORGE_RAY_ADDRESS" in refused.json()["error"]["hint"]

    clustered = make_client(run_worker=False, ray_address="ray://head:10001")
    options = clustered.get(f"/api/jobs/{trial['id']}/launch-options").json()
    assert choice(options, "online", "ray")["available"] is True
    run = clustered.post(f"/api/jobs/{trial['id']}/launch", json={"executor": "ray"}).json()
    assert (run["mode"], run["executor"]) == ("online", "ray")
    store = clustered.app.state.ctx.store
    spec = JobSpec.from_job(store.get_job(run["id"]))  # what the engine picks its executor from
    assert (spec.mode, spec.executor, spec.ray_address) == ("online", "ray", "ray://head:10001")
    both = clustered.post(f"/api/jobs/{trial['id']}/launch", json={"executor": "ray", "mode": "batch"})
    assert both.status_code == 422 and "cannot use --executor ray" in both.json()["error"]["message"]


def test_the_live_view_counts_429s_and_retries_from_the_provider(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MockServer(MockConfig(p429=0.3, retry_after_s=0.01, seed=7)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        stored = upload(client, SAMPLE_XLSX)
        body = {"catalog": stored["id"], "recipe": "attributes", "model": MODEL, "max_cost": 1.0}
        run = wait_for(client, client.post("/api/jobs?kind=run", json=body).json()["id"])
        limited = server.stats.snapshot()["faults"].get("429", 0)
    view = run["live"]
    assert limited > 0
    # a hedged copy answered 429 while its twin's answer was taken is cancelled before the client reads it
    assert limited - view["calls"]["hedges"] <= view["calls"]["rate_limited"] <= limited
    assert view["calls"]["retries"] >= limited
    assert view["rate_limited_share_all"] == pytest.approx(limited / view["calls"]["requests"], abs=1e-4)
    assert view["items"] == 20 and view["items_per_min_avg"] > 0
    assert run["plan"] == {
        "mode": "online", "executor": "local", "projected_cost": None, "budget": 1.0, "within_s": None,
    }  # fmt: skip
    assert view["stalled"] is False and view["idle_s"] is None  # a finished job is not stalled


def test_a_running_job_with_no_finished_item_for_long_is_shown_as_stalled() -> None:
    now = time.time()
    figures = {"last_item_at": now - live.STALLED_S - 5, "calls": {"requests": 40, "rate_limited": 40}}
    assert live.view(figures, "running")["stalled"] is True  # type: ignore[index]
    assert live.view(figures, "paused")["stalled"] is False  # type: ignore[index]
    recent = {"last_item_at": now - 3}
    assert live.view(recent, "running")["stalled"] is False  # type: ignore[index]
    never = {"last_item_at": None, "started_at": now - live.STALLED_S - 1}  # no item finished since the start
    assert live.view(never, "running")["stalled"] is True  # type: ignore[index]
