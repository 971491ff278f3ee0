"""Outbound HTTP for deliveries, safe against SSRF, bounded by a deadline and a size cap.

A target URL comes from config, but its host name resolves at run time, and a redirect can point
anywhere. So every connection is checked at the moment it is made: the host is resolved once, every
address it resolves to must be a public one, and the connection then goes to exactly that checked
address (TLS still verifies the host name), so a DNS answer cannot change between the check and the
connect. "Public" is decided by an explicit table (the IANA special-purpose registries of RFC 6890 and
its updates, plus the cloud metadata endpoints), not by ``ipaddress`` flags, which differ between
Python patch levels; an IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4,
Teredo) is judged by the IPv4 address too. Only HTTPS is allowed. A 307/308 redirect is followed (at
most 3) through the same checks, within the target's origin only: every header of the call would go
along, and which of them are secrets is not ours to know. Other redirects are not followed. Any URL
problem (a malformed Location too) is a ``TargetRefused`` with a fixed reason. Deliveries POST, PUT or PATCH;
scheduled pulls GET. The sandbox alone lists loopback ports that may be called (its own fake servers
on 127.0.0.1, not moto's or any other local service), over plain HTTP too; with no ports listed, as
deployed, there is no loopback and no plain HTTP at all. Link-local, metadata and private addresses
stay refused whatever is listed.

A call's ``timeout`` is a wall-clock deadline for all of it (name resolution, connect, TLS, send, the
whole answer, across redirects), not a bound per socket read: a watchdog shuts the call's sockets down
when it passes, so a target that trickles one byte a second cannot hold the call, and a resolution
still pending then is left behind in its own thread. A caller may pass an earlier
``deadline`` (e.g. ``deadline_from(lambda_context)``: the invocation's end minus a reserve to record
the failure). An answer larger than ``max_response_bytes`` is not read further. Both come back as the
"no answer" status 599 (retriable) with ``failure`` saying which.

One client serves a container's threads (deliver's batch on threads): its pools are made under a lock,
and each keeps as many idle connections per host as the caller says calls run at once
(``connections``): a call beyond what a pool keeps opens a connection (and a TLS handshake) of its own
and drops it afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import urllib3
import urllib3.connection

MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 1024 * 1024
RESERVE_SECONDS = 2.0  # of an invocation's remaining time, kept to record a failure (circuit, hide, DLQ)
NO_ANSWER = 599
_CHUNK = 64 * 1024
Resolver = Callable[[str, int], list[str]]
Failure = Literal["deadline", "too_large", "connection"]

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
# IPv4 special-purpose blocks (IANA registry, RFC 6890 and updates): none of them is a target. Some are
# "globally reachable" anycast services (192.0.0.9, AS112, AMT); no webhook receiver lives there either.
DENIED_V4 = (
    _V4("0.0.0.0/8"),  # "this network"
    _V4("10.0.0.0/8"),  # private
    _V4("100.64.0.0/10"),  # shared address space (carrier-grade NAT; Alibaba Cloud metadata 100.100.100.200)
    _V4("127.0.0.0/8"),  # loopback
    _V4("169.254.0.0/16"),  # link-local (AWS/GCP/Azure metadata 169.254.169.254, ECS 169.254.170.2)
    _V4("172.16.0.0/12"),  # private
    _V4("192.0.0.0/24"),  # IETF protocol assignments (Oracle Cloud metadata 192.0.0.192)
    _V4("192.0.2.0/24"),  # documentation TEST-NET-1
    _V4("192.31.196.0/24"),  # AS112-v4
    _V4("192.52.193.0/24"),  # AMT
    _V4("192.88.99.0/24"),  # deprecated 6to4 relay anycast
    _V4("192.168.0.0/16"),  # private
    _V4("192.175.48.0/24"),  # AS112 direct delegation
    _V4("198.18.0.0/15"),  # benchmarking
    _V4("198.51.100.0/24"),  # documentation TEST-NET-2
    _V4("203.0.113.0/24"),  # documentation TEST-NET-3
    _V4("224.0.0.0/4"),  # multicast
    _V4("240.0.0.0/4"),  # reserved, and the limited broadcast 255.255.255.255
    _V4("168.63.129.16/32"),  # Azure wire server (a public address serving platform metadata)
)
# IPv6: only global unicast (2000::/3) can be public, less the special-purpose blocks inside it. Outside
# it the table below is what the rule refuses anyway, listed so that the intent is explicit.
GLOBAL_UNICAST = _V6("2000::/3")
DENIED_V6 = (
    _V6("::/96"),  # unspecified, loopback, IPv4-compatible (deprecated)
    _V6("64:ff9b:1::/48"),  # NAT64 local-use (RFC 8215)
    _V6("100::/64"),  # discard-only
    _V6("2001::/23"),  # IETF protocol assignments (Teredo, 2001::/32, is judged by what it embeds)
    _V6("2001:db8::/32"),  # documentation
    _V6("3fff::/20"),  # documentation
    _V6("5f00::/16"),  # SRv6 SIDs
    _V6("fc00::/7"),  # unique local (AWS metadata fd00:ec2::254, DNS fd00:ec2::253, NTP fd00:ec2::123)
    _V6("fe80::/10"),  # link-local
    _V6("fec0::/10"),  # site-local (deprecated)
    _V6("ff00::/8"),  # multicast
)
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
_MAPPED = _V6("::ffff:0:0/96")
_NAT64 = _V6("64:ff9b::/96")
_NAT64_LOCAL = _V6("64:ff9b:1::/96")  # the /96 form within the local-use /48
_COMPATIBLE = _V6("::/96")
_SIX_TO_FOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")
_LOOPBACK = (_V4("127.0.0.0/8"), _V6("::1/128"))


class TargetRefused(Exception):
    """The request was not made: the URL or an address it leads to is not allowed."""


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host!r}: {exc.strerror}") from exc
    except (UnicodeError, ValueError) as exc:  # IDNA, an embedded NUL: parse_url refuses these first
        raise TargetRefused(BAD_HOST) from exc
    return sorted({str(info[4][0]) for info in infos})


BAD_PORT = "the URL's port is not a number from 1 to 65535"
BAD_HOST = "the URL's host name is not valid"
MALFORMED = "the URL is malformed"
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def parse_url(url: str, allow_http: bool = False) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path)`` of a URL a call may be made to, or ``TargetRefused`` with a fixed
    reason (never the URL, which may carry a key): https only (http when allowed), no credentials, a
    port from 1 to 65535, a host that is an IP address or a DNS name of valid labels (IDNA encoded, at
    most 63 characters each). ``urllib.parse`` raises ValueError for a bad port or a broken IPv6 literal
    and the IDNA codec UnicodeError for a long label: a redirect's Location is the target's to choose,
    so each of those is a refusal here, before anything is resolved."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise TargetRefused(MALFORMED) from exc
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise TargetRefused(f"only https targets are allowed (got {parts.scheme or 'no scheme'})")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed (use the target's secret)")
    try:
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(BAD_PORT) from exc
    if port == 0:
        raise TargetRefused(BAD_PORT)
    host = parts.hostname
    if not _valid_host(host):
        raise TargetRefused(BAD_HOST)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def _valid_host(host: str) -> bool:
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return True
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.split("%", 1)[0])


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 one carries: IPv4-mapped and -compatible and NAT64 (well-known and
    local-use /96) in the last 32 bits, 6to4 in bits 16-47, Teredo its server in bits 32-63 and its
    client, inverted, in the last 32 bits."""
    n = int(ip)
    low = ipaddress.IPv4Address(n & 0xFFFFFFFF)
    if ip in _TEREDO:
        return ipaddress.IPv4Address((n >> 64) & 0xFFFFFFFF), ipaddress.IPv4Address(~n & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return (ipaddress.IPv4Address((n >> 80) & 0xFFFFFFFF),)
    if ip in _MAPPED or ip in _NAT64 or ip in _COMPATIBLE or ip in _NAT64_LOCAL:
        return (low,)
    return ()


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip not in METADATA and not any(ip in block for block in DENIED_V4)


def is_public(address: str) -> bool:
    """Whether an address may be a target: public unicast, by the explicit tables above."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    if ip in METADATA:
        return False
    carried = embedded_ipv4(ip)
    if ip in _MAPPED or ip in _NAT64 or ip in _TEREDO or ip in _SIX_TO_FOUR:
        return all(_public_v4(inner) for inner in carried)  # the IPv4 address is where it leads
    if ip not in GLOBAL_UNICAST or any(ip in block for block in DENIED_V6):
        return False
    return all(_public_v4(inner) for inner in carried)


def is_loopback(address: str) -> bool:
    ip = _ip(address)
    return any(ip in block for block in _LOOPBACK if block.version == ip.version)


def deadline_from(context: Any, reserve_seconds: float = RESERVE_SECONDS) -> float:
    """The deadline for calls in a Lambda invocation (``time.monotonic()`` based): its remaining time
    less ``reserve_seconds`` to record a failure (the circuit, the message's next visibility, its
    dead-letter reason) before the invocation is killed."""
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - reserve_seconds


@dataclass(frozen=True)
class Response:
    status: int
    text: str
    headers: dict[str, str]
    failure: Failure | None = None  # set with status 599: why there is no (whole) answer


class _Watchdog:
    """Shuts a call's sockets down when its deadline passes, so whatever the call is blocked on (a
    connect, a TLS handshake, a send, a read of one trickled byte) ends then. It holds duplicates of the
    sockets' descriptors: ``shutdown`` acts on the connection itself, whichever descriptor names it, and
    closing a duplicate never closes the connection."""

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    @classmethod
    def watch(cls, sock: socket.socket | None) -> None:
        """Called by the connections of a call in progress on this thread, for each socket they use."""
        watchdog: _Watchdog | None = getattr(cls._current, "watchdog", None)
        if watchdog is None or sock is None:
            return
        try:
            handle = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:
            return
        with watchdog._lock:
            watchdog._handles.append(handle)
            if watchdog.fired:
                _shutdown(handle)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for handle in self._handles:
                _shutdown(handle)

    def __enter__(self) -> _Watchdog:
        _Watchdog._current.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _Watchdog._current.watchdog = None
        with self._lock:
            for handle in self._handles:
                handle.close()
            self._handles.clear()


def _shutdown(handle: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the other side
        handle.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _Watchdog.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _Watchdog.watch(self.sock)  # a kept-alive connection: its socket exists already
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # before the TLS handshake: a trickled handshake is cut too
        _Watchdog.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        _Watchdog.watch(self.sock)
        super().request(*args, **kwargs)


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _TlsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Cut(Exception):
    def __init__(self, failure: Failure, text: str) -> None:
        super().__init__(text)
        self.failure, self.text = failure, text


class SafeHttp:
    def __init__(
        self,
        allow_loopback: Collection[int] = frozenset(),
        resolver: Resolver = _resolve,
        address_allowed: Callable[[str], bool] = is_public,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        connections: int = 2,
    ) -> None:
        """``allow_loopback``: the loopback ports that may be called (the sandbox's own fake servers),
        over plain HTTP too; empty (as deployed): no loopback address and no plain HTTP. Never
        link-local, metadata or private addresses. ``resolver`` and ``address_allowed`` are replaceable
        for tests. ``connections``: the connections kept per host, as many as the calls made at once."""
        if isinstance(allow_loopback, bool) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in allow_loopback
        ):
            raise TypeError("allow_loopback takes the loopback ports that may be called (1-65535), not a flag")
        if connections < 1:
            raise ValueError("connections must be at least 1")
        self.loopback_ports = frozenset(allow_loopback)
        self.allow_http = bool(self.loopback_ports)
        self.resolver = resolver
        self.address_allowed = address_allowed
        self.max_response_bytes = max_response_bytes
        self.connections = connections
        self.clock = time.monotonic
        self._pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
        self._pools_lock = threading.Lock()

    def _allowed(self, address: str, port: int) -> bool:
        return self.address_allowed(address) or (port in self.loopback_ports and is_loopback(address))

    def check(self, url: str, end: float | None = None) -> tuple[str, str, int, str, str]:
        """``(scheme, host, port, address, path)`` of an allowed URL; ``TargetRefused`` otherwise. With
        ``end`` (``time.monotonic()`` based), a host that does not resolve by then ends the call (``_Cut``)."""
        scheme, host, port, path = parse_url(url, self.allow_http)
        addresses = self.resolver(host, port) if end is None else self._resolve_by(host, port, end)
        if not addresses:
            raise TargetRefused(f"{host!r} resolves to no address")
        refused = [a for a in addresses if not self._allowed(a, port)]
        if refused:
            raise TargetRefused(f"{host!r} resolves to a non-public address ({refused[0]})")
        if scheme == "http" and not all(port in self.loopback_ports and is_loopback(a) for a in addresses):
            raise TargetRefused("plain http is allowed to the sandbox's loopback ports only")
        return scheme, host, port, addresses[0], path

    def _resolve_by(self, host: str, port: int, end: float) -> list[str]:
        """The resolver's answer if it comes by ``end``. Resolution happens before there is a socket for
        the watchdog to shut, and a thread blocked in ``getaddrinfo`` cannot be interrupted: so it runs
        in a thread of its own, and at the deadline the call ends without it. The thread is left to
        finish on its own (the system resolver's own timeouts end it); its answer is never used."""
        answer: list[list[str]] = []
        failed: list[BaseException] = []
        done = threading.Event()

        def resolve() -> None:
            try:
                answer.append(self.resolver(host, port))
            except BaseException as exc:  # handed to the caller's thread and raised there
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=resolve, name="safehttp-resolve", daemon=True).start()
        if not done.wait(max(end - self.clock(), 0.0)):
            raise _Cut("deadline", "the host did not resolve within the deadline")
        if failed:
            raise failed[0]
        return answer[0]

    def _pool(self, scheme: str, host: str, port: int, address: str) -> urllib3.HTTPConnectionPool:
        key = (scheme, host, port, address)
        with self._pools_lock:  # one pool a host and address, whichever thread asks first
            if key not in self._pools:
                if scheme == "https":
                    self._pools[key] = _TlsPool(
                        address,
                        port,
                        server_hostname=host,
                        assert_hostname=host,
                        retries=False,
                        maxsize=self.connections,
                    )
                else:
                    self._pools[key] = _Pool(address, port, retries=False, maxsize=self.connections)
            return self._pools[key]

    def within(self, deadline: float | None) -> BoundedHttp:
        """This client with every call bounded by ``deadline`` too, for code whose port has no
        deadline parameter (e.g. ``deliver_change(..., http.within(deadline_from(context)), ...)``)."""
        return BoundedHttp(self, deadline)

    def get(self, url: str, headers: dict[str, str], timeout: float, deadline: float | None = None) -> Response:
        return self.post(url, b"", headers, timeout, method="GET", deadline=deadline)

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        method: str = "POST",
        deadline: float | None = None,
    ) -> Response:
        """One call, all of it (every hop) within ``timeout`` seconds and before ``deadline`` (a
        ``time.monotonic()`` value). ``TargetRefused`` if a URL or address is not allowed; a 599
        ``Response`` with ``failure`` set when there is no whole answer in time or within the cap."""
        start = self.clock()
        end = start + timeout if deadline is None else min(start + timeout, deadline)
        if end <= start:
            return Response(NO_ANSWER, "no time left before the deadline", {}, "deadline")
        with _Watchdog(end - start) as watchdog:
            try:
                return self._follow(url, body, headers, method, end)
            except _Cut as cut:
                return Response(NO_ANSWER, cut.text, {}, cut.failure)
            except (urllib3.exceptions.HTTPError, HTTPException, OSError) as exc:
                if watchdog.fired or self.clock() >= end:
                    return Response(NO_ANSWER, "no complete answer within the deadline", {}, "deadline")
                return Response(NO_ANSWER, f"connection failed: {type(exc).__name__}", {}, "connection")

    def _follow(self, url: str, body: bytes, headers: dict[str, str], method: str, end: float) -> Response:
        origin: tuple[str, str, int] | None = None
        for _ in range(MAX_REDIRECTS + 1):
            if origin is not None and parse_url(url, self.allow_http)[:3] != origin:
                # Every header of the call (Authorization, API keys: which of them are secrets is not ours
                # to know) would go to the new host: a redirect stays within the target's origin
                raise TargetRefused(f"{origin[1]!r} redirects to another origin (scheme, host or port)")
            scheme, host, port, address, path = self.check(url, end)
            origin = (scheme, host, port)
            default_port = port == (443 if scheme == "https" else 80)
            left = max(end - self.clock(), 0.001)
            response = self._pool(scheme, host, port, address).urlopen(
                method,
                path,
                body=body,
                headers={**headers, "Host": host if default_port else f"{host}:{port}"},
                timeout=urllib3.Timeout(connect=left, read=left),
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            data = self._read(response, end)
            found = {k.lower(): v for k, v in response.headers.items()}
            if response.status in (307, 308) and found.get("location"):
                try:
                    url = urljoin(url, found["location"])  # checked again at the top, like the first hop
                except ValueError as exc:
                    raise TargetRefused(MALFORMED) from exc
                continue
            return Response(response.status, data.decode("utf-8", "replace"), found)
        raise TargetRefused(f"more than {MAX_REDIRECTS} redirects")

    def _read(self, response: urllib3.BaseHTTPResponse, end: float) -> bytes:
        """The whole answer, or ``_Cut`` at the deadline or the size cap (the connection is then dropped,
        never reused with unread data on it)."""
        data = bytearray()
        watchdog: _Watchdog | None = getattr(_Watchdog._current, "watchdog", None)
        try:
            for chunk in response.stream(_CHUNK):
                data += chunk
                if len(data) > self.max_response_bytes:
                    raise _Cut("too_large", f"the answer is larger than {self.max_response_bytes} bytes")
            if (watchdog is not None and watchdog.fired) or self.clock() > end:
                raise _Cut("deadline", "no complete answer within the deadline")  # cut short: not whole
        except BaseException:
            response.close()
            response.release_conn()
            raise
        response.release_conn()
        return bytes(data)


@dataclass(frozen=True)
class BoundedHttp:
    """A ``SafeHttp`` whose every call also ends by ``deadline`` (see ``SafeHttp.within``)."""

    http: SafeHttp
    deadline: float | None

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float, method: str = "POST") -> Response:
        return self.http.post(url, body, headers, timeout, method=method, deadline=self.deadline)

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Response:
        return self.http.get(url, headers, timeout, deadline=self.deadline)
