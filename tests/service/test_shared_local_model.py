"""One loaded local model per service process: "try one product" and the jobs the worker runs share it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.service.conftest import SAMPLE_XLSX, upload, wait_for

MODEL = "local:qwen2.5-0.5b"


@pytest.fixture
def no_model_loaded() -> Iterator[None]:
    from skuforge.providers.local import loaded_models, unload_models

    unload_models()
    assert loaded_models() == {}
    yield
    unload_models()


def try_one(client: TestClient, catalog_id: str) -> dict[str, Any]:
    body = {"recipe": "attributes", "model": MODEL, "catalog": catalog_id, "row_index": 0}
    events = []
    with client.stream("POST", "/api/try", json=body) as response:
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    assert events[-1][0] == "done", events[-1]
    return dict(events[-1][1])


@pytest.mark.local_model
def test_the_playground_and_the_jobs_share_one_loaded_model(
    client: TestClient, no_model_loaded: None
) -> None:
    from skuforge.providers.local import loaded_models

    stored = upload(client, SAMPLE_XLSX)
    assert "output" in try_one(client, stored["id"])
    after_try = loaded_models()
    assert len(after_try) == 1  # loaded once, and still loaded after the request closed its provider
    (model,) = after_try.values()

    body = {"catalog": stored["id"], "recipe": "attributes", "model": MODEL, "sample": 1}
    trial = wait_for(client, client.post("/api/jobs?kind=trial", json=body).json()["id"], timeout=600)
    assert trial["progress"]["rows"] == 1 and trial["progress"]["requests"] == 1
    after_job = loaded_models()
    assert list(after_job.values()) == [model]  # the same object: the job did not load its own copy
    assert client.get("/api/health").json()["local_models"] == ["qwen2.5-0.5b.iq4_nl.gguf"]  # its CPU copy
