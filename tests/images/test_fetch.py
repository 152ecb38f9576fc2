"""URLs are fetched safely: private targets refused before connecting, limits enforced, bad files named."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest
from aiohttp import web
from PIL import Image

from skuforge.images import FetchPolicy, FetchRefused, ImageError, load_image
from skuforge.images.fetch import fetch, refusal
from skuforge.images.source import decode


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/a.jpg", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.1.2.3/a.jpg", "private"),
        ("http://[::1]/a.jpg", "loopback"),
        ("http://[::ffff:127.0.0.1]/a.jpg", "loopback"),
        ("http://[::ffff:169.254.169.254]/a.jpg", "link-local"),
        ("http://[fd00::1]/a.jpg", "private"),
        ("http://0.0.0.0/a.jpg", "unspecified"),
        ("http://224.0.0.1/a.jpg", "multicast"),
        ("http://localhost/a.jpg", "loopback"),
    ],
)
def test_private_and_special_addresses_are_refused_with_a_clear_error(url: str, kind: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        fetch(url)
    assert f" {kind} address" in caught.value.message
    assert "--allow-host" in caught.value.hint


def test_public_addresses_pass_the_address_check() -> None:
    assert refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946")) is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://x/"])
def test_only_http_and_https_are_fetched(url: str) -> None:
    with pytest.raises(FetchRefused, match="only http and https"):
        fetch(url)


def _image_route(server, png: bytes) -> None:  # type: ignore[no-untyped-def]
    async def image(request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    server.route("GET", "/img.png", image)


def test_allowed_host_is_fetched_and_decoded(server, packshot: Callable, png: Callable) -> None:  # type: ignore[no-untyped-def]
    image, _ = packshot(64)
    _image_route(server, png(image))
    server.start()
    with pytest.raises(FetchRefused, match="loopback"):
        load_image(server.url("/img.png"))
    fetched = load_image(server.url("/img.png"), policy=FetchPolicy(allow_hosts=("127.0.0.1",)))
    assert fetched.size == (64, 64)
    assert server.requests == ["/img.png"]


def test_redirect_to_a_private_address_is_checked_again_and_refused(server) -> None:  # type: ignore[no-untyped-def]
    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    server.route("GET", "/hop", hop)
    server.start()
    policy = FetchPolicy(allow_hosts=("127.0.0.1",))
    with pytest.raises(FetchRefused, match="169.254.169.254"):
        fetch(server.url("/hop"), policy)
    assert server.requests == ["/hop"]


def test_more_than_five_redirects_are_refused(server) -> None:  # type: ignore[no-untyped-def]
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/loop?n={int(request.query.get('n', 0)) + 1}")

    server.route("GET", "/loop", loop)
    server.start()
    with pytest.raises(FetchRefused, match="more than 5 redirects"):
        fetch(server.url("/loop"), FetchPolicy(allow_hosts=("127.0.0.1",)))
    assert len(server.requests) == 6


def test_size_limit_is_enforced_while_streaming(server) -> None:  # type: ignore[no-untyped-def]
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})  # no Content-Length
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"\xff" * 65536)
        return response

    server.route("GET", "/big.jpg", big)
    server.start()
    with pytest.raises(FetchRefused, match="larger than 1 MB"):
        fetch(server.url("/big.jpg"), FetchPolicy(allow_hosts=("127.0.0.1",), max_bytes=1024 * 1024))


def test_non_image_content_type_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html></html>", content_type="text/html")

    server.route("GET", "/page", page)
    server.start()
    with pytest.raises(FetchRefused, match="'text/html', not image"):
        fetch(server.url("/page"), FetchPolicy(allow_hosts=("127.0.0.1",)))


def test_http_404_is_a_clear_error(server) -> None:  # type: ignore[no-untyped-def]
    server.start()
    with pytest.raises(ImageError, match="HTTP 404"):
        fetch(server.url("/missing.jpg"), FetchPolicy(allow_hosts=("127.0.0.1",)))


def test_slow_server_hits_the_total_time_limit(server) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(body=b"", content_type="image/png")

    server.route("GET", "/slow", slow)
    server.start()
    with pytest.raises(ImageError, match="no answer within"):
        fetch(server.url("/slow"), FetchPolicy(allow_hosts=("127.0.0.1",), timeout_s=0.5))


def test_truncated_image_is_a_clear_error(examples) -> None:  # type: ignore[no-untyped-def]
    data = (examples / "B0799CK52K.jpg").read_bytes()
    with pytest.raises(ImageError, match="damaged or truncated"):
        decode(data[: len(data) // 2], "half.jpg")


def test_decompression_bomb_is_refused_before_decoding(bomb: bytes) -> None:
    with pytest.raises(ImageError) as caught:
        decode(bomb, "huge.png")
    assert "too large to decode safely" in caught.value.message
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # our limit does not leak into the process


def test_missing_file_names_where_it_looked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ImageError, match="was not found"):
        load_image("nope.jpg", tmp_path)
