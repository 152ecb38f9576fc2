"""Fetching images from URLs in a catalog without becoming a proxy into the private network (SSRF).

- http and https only;
- the host is resolved once and every address is checked: private, loopback, link-local (incl. the cloud
  metadata address 169.254.169.254), multicast, reserved and unspecified addresses are refused, IPv4 and
  IPv6 alike, IPv4-mapped IPv6 included, unless the allow-list names the host, the address or its network;
- the connection goes to the address that was checked (a pinned resolver), so DNS rebinding cannot swap it;
- redirects are followed by hand, each target checked again, at most 5;
- the body is limited while streaming (default 20 MB), the whole fetch by a total time limit, and the
  content type must be image/*.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from skuforge.images.errors import FetchRefused, ImageError

MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may do. `allow_hosts` holds host names, addresses or networks ('10.0.0.0/8')."""

    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 30.0
    user_agent: str = "skuforge-images/0.1"
    headers: dict[str, str] = field(default_factory=dict)

    def allows(self, host: str, address: IPAddress) -> bool:
        for entry in self.allow_hosts:
            entry = entry.strip().lower()
            if entry == host.lower():
                return True
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False


def refusal(address: IPAddress) -> str | None:
    """Why an address must not be fetched from, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    checks = [
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ]
    for kind, hit in checks:
        if hit:
            return kind
    if not address.is_global:
        return "not globally routable"
    return None


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or FetchRefused naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(
            f"Refused to fetch '{url}': only http and https URLs are fetched "
            f"(got '{parts.scheme or 'none'}').",
            "Give an http(s) URL or a file path relative to the catalog.",
        )
    if not parts.hostname:
        raise FetchRefused(f"Refused to fetch '{url}': the URL has no host.", "Check the image column.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchRefused(
            f"Refused to fetch '{url}': the port is not valid.", "Check the image column."
        ) from None
    return parts.scheme, parts.hostname, port


def resolve_checked(host: str, port: int, policy: FetchPolicy, url: str) -> list[IPAddress]:
    """Resolve a host and check every address; one refused address refuses the URL."""
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ImageError(
                f"Could not fetch '{url}': host '{host}' does not resolve ({exc}).", "Check the URL."
            ) from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
    for address in addresses:
        why = refusal(address)
        if why and not policy.allows(host, address):
            raise FetchRefused(
                f"Refused to fetch '{url}': host '{host}' is {'an' if why[0] in 'aeiou' else 'a'} {why} "
                f"address ({address}).",
                f"Images are fetched from public addresses only. If this host is yours, allow it with "
                f"--allow-host {host}",
            )
    return addresses


def _pinned_resolver(host: str, addresses: Iterable[IPAddress]) -> Any:
    """An aiohttp resolver that answers only with the addresses already checked (no second lookup)."""
    from aiohttp.abc import AbstractResolver

    class Pinned(AbstractResolver):
        async def resolve(  # type: ignore[override]
            self, name: str, port: int = 0, family: int = socket.AF_INET
        ) -> list[dict[str, Any]]:
            if name != host:
                raise OSError(f"unexpected host {name!r}; only {host!r} was checked")
            return [
                {
                    "hostname": host,
                    "host": str(a),
                    "port": port,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                    "family": socket.AF_INET6 if a.version == 6 else socket.AF_INET,
                }
                for a in addresses
            ]

        async def close(self) -> None:
            return None

    return Pinned()


async def _get_once(url: str, policy: FetchPolicy) -> tuple[int, str | None, str, bytes]:
    """One request to a checked address: (status, Location, content type, body)."""
    import aiohttp

    _, host, port = check_url(url)
    addresses = resolve_checked(host, port, policy, url)
    connector = aiohttp.TCPConnector(resolver=_pinned_resolver(host, addresses), use_dns_cache=False)
    headers = {"User-Agent": policy.user_agent, "Accept": "image/*", **policy.headers}
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, allow_redirects=False, headers=headers) as response,
    ):
        if response.status in REDIRECTS:
            return response.status, response.headers.get("Location"), "", b""
        if response.status >= 400:
            raise ImageError(
                f"Could not fetch '{url}': the server answered HTTP {response.status}.",
                "Check that the image URL still exists.",
            )
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not ctype.startswith("image/"):
            raise FetchRefused(
                f"Refused '{url}': content type is '{ctype or 'missing'}', not image/*.",
                "Point the image column at image files.",
            )
        declared = response.content_length
        if declared is not None and declared > policy.max_bytes:
            raise FetchRefused(_too_big(url, policy), "Raise the limit with --max-mb, or shrink the image.")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > policy.max_bytes:
                raise FetchRefused(
                    _too_big(url, policy), "Raise the limit with --max-mb, or shrink the image."
                )
        return response.status, None, ctype, bytes(body)


def _too_big(url: str, policy: FetchPolicy) -> str:
    return f"Refused '{url}': the image is larger than {policy.max_bytes / 1024 / 1024:.0f} MB."


async def fetch_async(url: str, policy: FetchPolicy | None = None) -> bytes:
    """Fetch an image's bytes under the policy, following at most 5 checked redirects."""
    import aiohttp

    policy = policy or FetchPolicy()

    async def chain() -> bytes:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            status, location, _, body = await _get_once(current, policy)
            if status not in REDIRECTS:
                return body
            if not location:
                raise ImageError(
                    f"Could not fetch '{current}': redirect without a Location.", "Check the URL."
                )
            current = urljoin(current, location)
        raise FetchRefused(
            f"Refused '{url}': more than {MAX_REDIRECTS} redirects.", "Give the final image URL."
        )

    try:
        return await asyncio.wait_for(chain(), policy.timeout_s)
    except TimeoutError:
        raise ImageError(
            f"Could not fetch '{url}': no answer within {policy.timeout_s:.0f} s.",
            "Try again later, or check the URL.",
        ) from None
    except (OSError, aiohttp.ClientError) as exc:
        raise ImageError(f"Could not fetch '{url}': {exc}.", "Check the URL and your network.") from None


def fetch(url: str, policy: FetchPolicy | None = None) -> bytes:
    """Synchronous wrapper for worker processes (each row runs its own short event loop)."""
    return asyncio.run(fetch_async(url, policy))
