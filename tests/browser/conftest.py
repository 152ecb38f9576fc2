"""A real service on a free local port (uvicorn in a thread, fake model) and headless Debian Chromium.

Screenshots are saved at 1280x800 under artifacts/screenshots/ (gitignored) for people to look at; the
README shows two of them, copied to docs/.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from skuforge.service import ServiceOptions, create_app

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TOKEN = "browser-test-token-42"
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving the app in a background thread; `url` is its base address."""

    def __init__(self, provider_factory: Any = None, **options: Any) -> None:
        import uvicorn

        opts: dict[str, Any] = dict(
            token=TOKEN, worker_poll_s=0.1, lease_s=5.0, trial_rows=5, models=["fake:"]
        )
        opts.update(options)
        self.app = create_app(ServiceOptions(**opts), provider_factory=provider_factory)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120  # a bound for a hang only
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                pytest.fail("the service did not start within 120 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def live_server() -> Iterator[LiveServer]:
    with LiveServer() as server:
        yield server


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run scripts/setup.sh all,dev "
            "(it runs apt-get install chromium)."
        )
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, reduced_motion="reduce")
    tab = context.new_page()
    tab.set_default_timeout(120_000)  # a bound for hangs only: a passing step never waits it
    yield tab
    context.close()


def shot(tab: Any, name: str, full: bool = False) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=full)
    return path
