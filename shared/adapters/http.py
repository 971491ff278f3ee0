"""Outbound HTTP for deliveries, safe against SSRF.

A target URL comes from config, but its host name resolves at run time, and a redirect can point
anywhere. So every connection is checked at the moment it is made: the host is resolved once, every
address it resolves to must be a public one (no private, loopback, link-local — the cloud metadata
endpoints 169.254.169.254 / fd00:ec2::254 / 100.100.100.200 among them — shared, reserved, multicast
or unspecified address), and the connection then goes to exactly that checked address (TLS still
verifies the host name), so a DNS answer cannot change between the check and the connect. Only
HTTPS is allowed. A 307/308 redirect is followed (at most 3) through the same checks; other
redirects are not followed. Deliveries POST, PUT or PATCH; scheduled pulls GET. The sandbox alone may allow plain
HTTP to private addresses (its fake targets on 127.0.0.1), by an explicit setting.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urljoin, urlsplit

import urllib3

MAX_REDIRECTS = 3
Resolver = Callable[[str, int], list[str]]


class TargetRefused(Exception):
    """The request was not made: the URL or an address it leads to is not allowed."""


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host!r}: {exc.strerror}") from exc
    return sorted({str(info[4][0]) for info in infos})


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    headers: dict[str, str]


class SafeHttp:
    def __init__(
        self,
        allow_private: bool = False,
        resolver: Resolver = _resolve,
        allow_http: bool | None = None,
        address_allowed: Callable[[str], bool] = is_public,
    ) -> None:
        """``allow_private`` (the sandbox's explicit setting) also allows plain HTTP unless
        ``allow_http`` says otherwise; ``resolver`` and ``address_allowed`` are replaceable for tests."""
        self.allow_private = allow_private
        self.allow_http = allow_private if allow_http is None else allow_http
        self.resolver = resolver
        self.address_allowed = address_allowed

    @cached_property
    def _pools(self) -> dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool]:
        return {}

    def check(self, url: str) -> tuple[str, str, int, str, str]:
        """``(scheme, host, port, address, path)`` of an allowed URL; ``TargetRefused`` otherwise."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (self.allow_http and parts.scheme == "http"):
            raise TargetRefused(f"only https targets are allowed (got {parts.scheme or 'no scheme'})")
        if not parts.hostname:
            raise TargetRefused("the URL has no host")
        if parts.username or parts.password:
            raise TargetRefused("credentials in the URL are not allowed (use the target's secret)")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = self.resolver(parts.hostname, port)
        if not addresses:
            raise TargetRefused(f"{parts.hostname!r} resolves to no address")
        if not self.allow_private:
            refused = [a for a in addresses if not self.address_allowed(a)]
            if refused:
                raise TargetRefused(f"{parts.hostname!r} resolves to a non-public address ({refused[0]})")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return parts.scheme, parts.hostname, port, addresses[0], path

    def _pool(self, scheme: str, host: str, port: int, address: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, host, port, address)
        if key not in self._pools:
            if scheme == "https":
                self._pools[key] = urllib3.HTTPSConnectionPool(
                    address, port, server_hostname=host, assert_hostname=host, retries=False, maxsize=2
                )
            else:
                self._pools[key] = urllib3.HTTPConnectionPool(address, port, retries=False, maxsize=2)
        return self._pools[key]

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Response:
        return self.post(url, b"", headers, timeout, method="GET")

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float, method: str = "POST") -> Response:
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port, address, path = self.check(url)
            default_port = port == (443 if scheme == "https" else 80)
            try:
                response = self._pool(scheme, host, port, address).urlopen(
                    method,
                    path,
                    body=body,
                    headers={**headers, "Host": host if default_port else f"{host}:{port}"},
                    timeout=urllib3.Timeout(total=timeout),
                    redirect=False,
                    assert_same_host=False,
                )
            except urllib3.exceptions.HTTPError as exc:
                return Response(599, f"connection failed: {type(exc).__name__}", {})
            text = response.data.decode("utf-8", "replace")
            found = {k.lower(): v for k, v in response.headers.items()}
            if response.status in (307, 308) and found.get("location"):
                url = urljoin(url, found["location"])  # checked again at the top, like the first hop
                continue
            return Response(response.status, text, found)
        raise TargetRefused(f"more than {MAX_REDIRECTS} redirects")
