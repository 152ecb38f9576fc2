"""The live view of a running job in Chromium: the provider's 429s and the retries show while it runs."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from skuforge.errors import RateLimitError
from skuforge.providers.fake import FakeProvider
from tests.browser.conftest import TOKEN, LiveServer, shot
from tests.browser.test_console import SAMPLE, login

pytestmark = pytest.mark.browser


class SlowProvider:
    """fake: that answers each request's first attempt with a 429, then holds the answer until `gate` opens:
    the run stays running, with rate-limited requests and retries, for as long as the test looks."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.attempts: Counter[str] = Counter()

    def __call__(self, name: str) -> Any:
        outer = self

        class Slow(FakeProvider):
            async def generate(self, request: Any) -> Any:
                key = request.messages[-1].content
                outer.attempts[key] += 1
                if outer.attempts[key] == 1:
                    raise RateLimitError("Rate limit reached (test).", retry_after=0.01)
                while not outer.gate.is_set():
                    await asyncio.sleep(0.02)
                return await super().generate(request)

        return Slow()


@pytest.fixture
def slow() -> SlowProvider:
    return SlowProvider()


@pytest.fixture
def slow_server(slow: SlowProvider) -> Iterator[LiveServer]:
    with LiveServer(provider_factory=slow) as server:
        yield server
    slow.gate.set()


def test_the_live_view_shows_rate_limits_and_retries_while_the_run_is_running(
    page: Any, slow_server: LiveServer, slow: SlowProvider
) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with SAMPLE.open("rb") as handle:
        catalog = httpx.post(
            f"{slow_server.url}/api/catalogs", files={"file": ("c.xlsx", handle)}, headers=headers
        ).json()
    body = {"catalog": catalog["id"], "recipe": "attributes", "model": "fake:", "max_cost": 1}
    job = httpx.post(f"{slow_server.url}/api/jobs?kind=run", json=body, headers=headers).json()
    login(page, slow_server)
    page.goto(f"{slow_server.url}/jobs/{job['id']}")
    page.wait_for_selector('#job[data-state="running"], [data-field="state"].running')
    # the figures arrive over the event stream: wait for them, never for a time
    page.wait_for_function(
        "() => Number(document.querySelector('[data-live=\"retries\"]').textContent) > 0"
        " && Number(document.querySelector('[data-live=\"rate_limited\"]').textContent) > 0"
    )
    assert page.text_content('[data-live="rate_limited_share"]').endswith("%")
    assert page.text_content('[data-field="done"]') == "0"
    page.wait_for_selector('[data-field="rows_total"]:text-is("20")')  # the run's size, before any item
    assert page.text_content('[data-live="idle"]').endswith("ago")
    shot(page, "live-running")
    slow.gate.set()
    page.wait_for_selector('#job[data-state="done"]', timeout=180_000)
    assert page.text_content('[data-field="rows"]') == "20"
    assert int(page.text_content('[data-live="rate_limited"]')) >= 20  # every request's first attempt
