"""The OpenAI-compatible embedder, over real HTTP against the local mock server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from skuforge.errors import PermanentError, TransientError
from skuforge.knowledge import open_kb, search
from skuforge.knowledge.embedders import OpenAIEmbedder, get_embedder
from skuforge.testing.mock_openai import MockConfig, MockServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge"


@pytest.fixture
def server() -> Iterator[MockServer]:
    with MockServer(MockConfig(api_key="sk-test-123", embedding_dim=64)) as srv:
        yield srv


def test_embeddings_come_back_normalised_in_input_order_in_batches(server: MockServer) -> None:
    embedder = OpenAIEmbedder("text-embedding-3-small", base_url=server.url, api_key="sk-test-123")
    embedder.batch_size = 4
    texts = [f"product number {i}" for i in range(10)]
    vectors = embedder.passages(texts)
    assert vectors.shape == (10, 64)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[7], embedder.queries(["product number 7"])[0], atol=1e-6)
    assert server.stats.endpoints["/v1/embeddings"] == 4  # 3 batches, then the single query


def test_the_embedder_works_inside_a_running_event_loop(server: MockServer) -> None:
    embedder = OpenAIEmbedder("m", base_url=server.url, api_key="sk-test-123")

    async def inside() -> np.ndarray:
        return embedder.queries(["called from async code"])

    assert asyncio.run(inside()).shape == (1, 64)


def test_a_wrong_key_fails_at_once_without_echoing_the_key(server: MockServer) -> None:
    embedder = OpenAIEmbedder("m", base_url=server.url, api_key="sk-wrong-999")
    with pytest.raises(PermanentError, match="HTTP 401") as info:
        embedder.passages(["x"])
    assert "sk-wrong-999" not in str(info.value)
    assert server.stats.endpoints["/v1/embeddings"] == 0  # refused before counting, and not retried
    assert "API key" in (info.value.hint or "")


def test_an_unreachable_endpoint_is_a_transient_error_after_retries() -> None:
    embedder = OpenAIEmbedder("m", base_url="http://127.0.0.1:9/v1", api_key=None)
    embedder.retries = 1
    with pytest.raises(TransientError, match="failed after 2 tries"):
        embedder.passages(["x"])


def test_a_knowledge_base_can_be_built_and_searched_with_the_endpoint(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    kb = open_kb("remote", create=True, embedder="openai:text-embedding-3-small")
    kb.add_paths([FIXTURES / "style-guide.md"])
    hits = search("remote", "replace the brush head every three months", k=1, mode="vector")
    assert hits[0].heading.endswith("Electric toothbrushes")
    assert get_embedder("openai:text-embedding-3-small").dim == 64
    assert kb.info()["embedder"] == "openai:text-embedding-3-small"
