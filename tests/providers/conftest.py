"""A real mock OpenAI-compatible server per test, on 127.0.0.1 and a free port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from skuforge.testing.mock_openai import MockConfig, MockServer


@pytest.fixture
def mock() -> Iterator[MockServer]:
    with MockServer(MockConfig()) as server:
        yield server
