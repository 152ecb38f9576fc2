"""Fixtures for the image engine: real sample photos, synthetic packshots with known masks, a local server."""

from __future__ import annotations

import asyncio
import io
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "images"
FIXTURES = REPO / "tests" / "fixtures" / "images"


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


def make_packshot(size: int = 256, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """A product-like object (rounded box + ellipse, textured) on a light studio background, with its mask."""
    rng = np.random.default_rng(seed)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    s = size
    draw.rounded_rectangle((0.3 * s, 0.25 * s, 0.7 * s, 0.85 * s), radius=int(0.05 * s), fill=255)
    draw.ellipse((0.35 * s, 0.1 * s, 0.65 * s, 0.35 * s), fill=255)
    m = np.asarray(mask) > 127
    yy = np.linspace(0, 1, s)[:, None, None]
    background = (235 + 15 * yy + rng.normal(0, 1.5, (s, s, 3))).clip(0, 255)
    color = np.array(rng.integers(20, 200, 3), dtype=np.float64)
    texture = rng.normal(0, 6, (s, s, 1))
    shade = np.linspace(0.8, 1.1, s)[None, :, None]
    product = (color * shade + texture).clip(0, 255)
    rgb = np.where(m[..., None], product, background).astype(np.uint8)
    return Image.fromarray(rgb, "RGB"), m


@pytest.fixture
def packshot() -> Callable[..., tuple[Image.Image, np.ndarray]]:
    return make_packshot


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims a huge image: the classic decompression-bomb shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def png() -> Callable[[Image.Image], bytes]:
    return png_bytes


@pytest.fixture
def bomb() -> bytes:
    return bomb_png()


class LocalServer:
    """A real aiohttp server on 127.0.0.1 in a background thread; tests add routes before start()."""

    def __init__(self) -> None:
        from aiohttp import web

        self.app = web.Application()
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.requests: list[str] = []

    def route(self, method: str, path: str, handler: Callable) -> None:  # type: ignore[type-arg]
        self.app.router.add_route(method, path, handler)

    def start(self) -> None:
        from aiohttp import web

        @web.middleware
        async def log(request, handler):  # type: ignore[no-untyped-def]
            self.requests.append(request.path)
            return await handler(request)

        self.app.middlewares.append(log)
        ready = threading.Event()

        async def serve() -> None:
            self.runner = web.AppRunner(self.app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self.loop)
        assert ready.wait(10), "local test server did not start"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    yield srv
    if srv.port:
        srv.stop()
