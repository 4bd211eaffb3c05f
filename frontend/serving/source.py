"""The predict `source` field: an http(s) URL to fetch, or a base64-encoded image (with or without a
`data:image/...;base64,` prefix), at most 4,096 characters.

Fetching a URL someone else chose is server-side request forgery waiting to happen, so:

- only http and https; every address the host resolves to must be global unicast (no loopback,
  private, link-local such as 169.254.169.254, multicast, reserved, unspecified; IPv4 inside IPv6
  judged as the IPv4) unless `TRIDENT_SOURCE_ALLOW_PRIVATE`; one refused address refuses the host;
- the connection goes to the very address that was checked (the URL's host replaced by the IP, the
  original `Host` header, TLS verified against the original name through `sni_hostname`), so a DNS
  answer that changes between check and connect cannot redirect it; no proxy from the environment;
- redirects are followed by hand, at most 3, each target checked from scratch;
- the body is streamed and abandoned past `max_upload_bytes`; one deadline covers the wait for a
  fetch slot, resolution, redirects and the body; at most `source_max_concurrent` fetches per worker.

Content sniffing is not done here: the caller hands the bytes to `frontend.serving.imaging.decode_image`.
Errors carry what was refused in `detail`, never the path or query of the URL (they may hold secrets).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import ipaddress
import re
import socket
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from core.settings import Settings
from frontend.errors import InvalidRequest, PayloadTooLarge, ServingError
from frontend.metrics import record_source_fetch
from pipeline.contract import MAX_SOURCE_CHARS

__all__ = ["read_source"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
MAX_ADDRESSES_TRIED = 3  # a host with several addresses: the next one after a failed connect
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the last 32 bits are the IPv4 address
USER_AGENT = "Trident-source/1"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DATA_IMAGE = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_URLSAFE = str.maketrans("-_", "+/")


class _Refusal(Exception):
    """An error for the client plus the metric outcome it counts as (counted once, in read_source)."""

    def __init__(self, outcome: str, error: ServingError) -> None:
        super().__init__(error.detail)
        self.outcome = outcome
        self.error = error


async def read_source(value: str, settings: Settings) -> bytes:
    """The image bytes a `source` field names (URL fetched, or base64 decoded)."""
    try:
        data, outcome = await _read(value, settings)
    except _Refusal as refusal:
        record_source_fetch(refusal.outcome)
        raise refusal.error from None
    record_source_fetch(outcome)
    return data


async def _read(value: str, settings: Settings) -> tuple[bytes, str]:
    if len(value) > MAX_SOURCE_CHARS:
        raise _Refusal(
            "invalid", InvalidRequest(f"source: {len(value)} characters; the limit is {MAX_SOURCE_CHARS}")
        )
    text = value.strip()
    if not text:
        raise _Refusal("invalid", InvalidRequest("source: empty; send an http(s) URL or a base64 image"))
    prefix = _DATA_IMAGE.match(text)
    if prefix:
        return _decode_base64(text[prefix.end() :], settings.max_upload_bytes), "base64"
    scheme = _SCHEME.match(text)  # base64 has no ':', so anything with a scheme is meant as a URL
    if scheme is None:
        return _decode_base64(text, settings.max_upload_bytes), "base64"
    if scheme.group(1).lower() == "data":
        raise _Refusal("invalid", InvalidRequest("source: only data:image/...;base64, URIs are accepted"))
    return await _fetch(_parse_url(text), settings), "ok"


def _decode_base64(text: str, limit: int) -> bytes:
    """Standard or URL-safe alphabet, whitespace and missing padding forgiven (clients differ)."""
    compact = _WHITESPACE.sub("", text).translate(_URLSAFE)
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _Refusal(
            "invalid_base64",
            InvalidRequest("source: invalid base64 (a URL must start with http:// or https://)"),
        ) from None
    if not data:
        raise _Refusal("invalid_base64", InvalidRequest("source: the base64 decodes to nothing"))
    if len(data) > limit:
        raise _Refusal(
            "too_large",
            PayloadTooLarge(f"source: the decoded image is {len(data)} bytes; the limit is {limit} bytes"),
        )
    return data


def _parse_url(text: str) -> httpx.URL:
    """An http(s) URL with a host, or a refusal (the scheme is checked first: it is what matters)."""
    scheme = text.split(":", 1)[0].lower()
    if scheme not in ("http", "https"):
        raise _Refusal("refused_scheme", InvalidRequest("source: only http and https URLs are accepted"))
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        raise _Refusal("invalid", InvalidRequest("source: not a valid URL")) from None
    if not url.raw_host:
        raise _Refusal("invalid", InvalidRequest("source: the URL has no host"))
    return url


def address_refusal(address: IPAddress) -> str | None:
    """Why `address` may not be fetched ("loopback", "private", ...), or None for a global unicast one.

    IPv4 carried in IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) is judged as the
    IPv4 address it reaches: Python 3.11 calls 64:ff9b::7f00:1 and 2002:7f00:1:: global.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded, form = _embedded_ipv4(address)
        if embedded is not None:
            reason = address_refusal(embedded)
            return None if reason is None else f"{reason} ({form} {embedded})"
    for reason, flagged in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),  # fec0::/10
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if flagged:
            return reason
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    return None, ""


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in getaddrinfo's order (the loop's executor: never blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_addresses(host: str, port: int, allow_private: bool) -> list[IPAddress]:
    """The addresses of `host` to connect to, all of them allowed; any refused one refuses the host."""
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise _Refusal("unresolvable", InvalidRequest(f"source: the host {host} could not be resolved"))
    if not allow_private:
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                raise _Refusal(
                    "refused_address",
                    InvalidRequest(
                        f"source: the address {address} is {reason}; private addresses are refused"
                    ),
                )
    return addresses


_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _slots(limit: int) -> asyncio.Semaphore:
    """This event loop's fetch slots (a Semaphore belongs to one loop; tests run several)."""
    loop = asyncio.get_running_loop()
    held = _SLOTS.get(loop)
    if held is None or held[0] != limit:
        held = (limit, asyncio.Semaphore(limit))
        _SLOTS[loop] = held
    return held[1]


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Built once (tens of ms): certificate and host name verification on, as httpx's default."""
    return httpx.create_ssl_context()


async def _fetch(url: httpx.URL, settings: Settings) -> bytes:
    deadline = settings.source_timeout_s
    try:
        async with asyncio.timeout(deadline), _slots(settings.source_max_concurrent):
            return await _follow(url, settings)
    except TimeoutError:
        raise _Refusal(
            "timeout", InvalidRequest(f"source: the download took longer than {deadline:g} s")
        ) from None
    except httpx.HTTPError as exc:  # protocol errors, a connection reset mid-body
        raise _Refusal(
            "network_error", InvalidRequest(f"source: the download failed ({type(exc).__name__})")
        ) from None


async def _follow(url: httpx.URL, settings: Settings) -> bytes:
    """GET `url`, following up to MAX_REDIRECTS redirects, each target checked like the first URL."""
    client = httpx.AsyncClient(
        verify=_ssl_context(),
        trust_env=False,  # a proxy would resolve the name itself, after our check
        follow_redirects=False,
        timeout=httpx.Timeout(None, connect=settings.source_connect_timeout_s),  # the rest: _fetch's
        limits=httpx.Limits(max_keepalive_connections=0),  # never reuse a connection for another name
    )
    async with client:
        for redirects in range(MAX_REDIRECTS + 1):
            addresses = await checked_addresses(
                url.raw_host.decode("ascii"), _port(url), settings.source_allow_private
            )
            async with _open(client, url, addresses, settings) as response:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location:
                    if redirects == MAX_REDIRECTS:
                        break
                    url = _parse_url(str(url.join(location)))
                    continue
                if not 200 <= response.status_code < 300:
                    raise _Refusal(
                        "http_error", InvalidRequest(f"source: the server answered {response.status_code}")
                    )
                return await _read_body(response, settings.max_upload_bytes)
    raise _Refusal("redirects", InvalidRequest(f"source: more than {MAX_REDIRECTS} redirects"))


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    host = f"[{host}]" if ":" in host else host
    return host if url.port is None else f"{host}:{url.port}"


@asynccontextmanager
async def _open(
    client: httpx.AsyncClient, url: httpx.URL, addresses: list[IPAddress], settings: Settings
) -> AsyncIterator[httpx.Response]:
    """The response headers of GET `url` sent to one of the checked `addresses`, the body unread."""
    host = url.raw_host.decode("ascii")
    headers = {
        "Host": _host_header(url),
        "User-Agent": USER_AGENT,
        "Accept": "image/*",
        "Accept-Encoding": "identity",  # the byte limit counts what arrives, no decompression bomb
    }
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    failure: httpx.TransportError | None = None
    for address in addresses[:MAX_ADDRESSES_TRIED]:
        request = client.build_request(
            "GET", url.copy_with(host=str(address)), headers=headers, extensions=extensions
        )
        try:
            response = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc
            continue
        try:
            yield response
        finally:
            await response.aclose()  # an unread body closes the connection
        return
    raise _connect_refusal(host, failure, settings.source_connect_timeout_s)


def _connect_refusal(host: str, failure: httpx.TransportError | None, timeout_s: float) -> _Refusal:
    if isinstance(failure, httpx.ConnectTimeout):
        return _Refusal(
            "timeout", InvalidRequest(f"source: could not connect to {host} within {timeout_s:g} s")
        )
    if "CERTIFICATE_VERIFY_FAILED" in str(failure):
        return _Refusal(
            "network_error", InvalidRequest(f"source: the TLS certificate of {host} could not be verified")
        )
    return _Refusal("network_error", InvalidRequest(f"source: could not connect to {host}"))


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    """The body, chunk by chunk, abandoned as soon as it passes `limit` bytes."""
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise _Refusal(
            "too_large",
            PayloadTooLarge(f"source: the server announced {announced} bytes; the limit is {limit} bytes"),
        )
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            raise _Refusal(
                "too_large", PayloadTooLarge(f"source: the download exceeds the limit of {limit} bytes")
            )
    return bytes(body)
