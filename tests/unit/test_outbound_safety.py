"""SSRF guards on every outbound connection and every redirect, each refusal by its own test."""

from __future__ import annotations

import json
from http.server import ThreadingHTTPServer

import pytest

from infra.sandbox.http_servers import _Quiet, serve
from shared.adapters.http import SafeHttp, TargetRefused, _resolve, is_public


def resolving(mapping: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    return lambda host, port: mapping.get(host, [])


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "IPv6 loopback"),
        ("10.1.2.3", "private 10/8"),
        ("172.20.0.5", "private 172.16/12"),
        ("192.168.1.10", "private 192.168/16"),
        ("169.254.169.254", "AWS/GCP/Azure instance metadata (link-local)"),
        ("fd00:ec2::254", "AWS IPv6 metadata (unique local)"),
        ("100.100.100.200", "Alibaba Cloud metadata (shared 100.64/10)"),
        ("fe80::1", "IPv6 link-local"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address to refuse, not one to bind
        ("224.0.0.1", "multicast"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ],
)
def test_a_host_resolving_to_a_non_public_address_is_refused_before_connecting(address: str, what: str) -> None:
    http = SafeHttp(resolver=resolving({"erp.shop.example": [address]}))
    with pytest.raises(TargetRefused, match=r"'erp\.shop\.example' resolves to a non-public address"):
        http.post("https://erp.shop.example/in", b"{}", {}, 1)
    assert not is_public(address), what


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    # DNS round robin mixing a public and an internal address must not slip through
    http = SafeHttp(resolver=resolving({"crm.example": ["93.184.216.34", "10.0.0.7"]}))
    with pytest.raises(TargetRefused, match=r"non-public address \(10\.0\.0\.7\)"):
        http.post("https://crm.example/in", b"{}", {}, 1)


def test_plain_http_is_refused_outside_the_sandbox() -> None:
    with pytest.raises(TargetRefused, match="only https targets are allowed"):
        SafeHttp(resolver=resolving({"crm.example": ["93.184.216.34"]})).post("http://crm.example/in", b"{}", {}, 1)


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(TargetRefused, match="credentials in the URL are not allowed"):
        SafeHttp(resolver=resolving({"crm.example": ["93.184.216.34"]})).post(
            "https://user:pw@crm.example/in", b"{}", {}, 1
        )


def test_a_literal_metadata_address_in_the_url_is_refused() -> None:
    http = SafeHttp()  # the real resolver: a literal address resolves to itself
    with pytest.raises(TargetRefused, match=r"'169\.254\.169\.254' resolves to a non-public address"):
        http.post("https://169.254.169.254/latest/meta-data/", b"{}", {}, 1)


class _Redirecting:
    """A local server standing in for a public target that redirects (307) somewhere (``{port}`` in
    the location: its own port)."""

    def __init__(self, location: str) -> None:
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []  # of each request, names lower-cased
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                self._body()
                outer.requests.append(self.path)
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path == "/in":
                    self._reply(307, b"", {"Location": location.replace("{port}", str(outer.port))})
                else:
                    self._reply(200, json.dumps({"ok": True}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve(self.server)

    @property
    def port(self) -> int:
        return int(self.server.server_port)


def _via_local(mapping: dict[str, list[str]], port: int) -> SafeHttp:
    # The local server plays a public host (its names resolve to 127.0.0.1, its port is the sandbox's
    # allowance); every other address is judged by the real rule
    return SafeHttp(resolver=resolving(mapping), allow_loopback=frozenset({port}))


def test_a_redirect_to_the_metadata_endpoint_is_refused_on_the_redirect() -> None:
    server = _Redirecting("http://metadata.internal/latest/meta-data/iam")
    try:
        http = _via_local({"crm.example": ["127.0.0.1"], "metadata.internal": ["169.254.169.254"]}, server.port)
        with pytest.raises(TargetRefused, match=r"'crm\.example' redirects to another origin"):
            http.post(f"http://crm.example:{server.port}/in", b"{}", {}, 2)
        assert server.requests == ["/in"]  # the first hop was made, the second never
    finally:
        server.server.shutdown()


def test_a_redirect_within_the_origin_is_refused_when_the_host_now_resolves_to_metadata() -> None:
    # DNS rebinding between hops: every hop resolves and checks the host again
    server = _Redirecting("/latest/meta-data/iam")
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    try:
        http = SafeHttp(resolver=lambda host, port: next(answers), allow_loopback=frozenset({server.port}))
        with pytest.raises(TargetRefused, match=r"'crm\.example' resolves to a non-public address"):
            http.post(f"http://crm.example:{server.port}/in", b"{}", {}, 2)
        assert server.requests == ["/in"]
    finally:
        server.server.shutdown()


def test_an_allowed_redirect_is_followed_with_the_same_checks() -> None:
    server = _Redirecting("/moved")
    try:
        http = _via_local({"crm.example": ["127.0.0.1"]}, server.port)
        response = http.post(f"http://crm.example:{server.port}/in", b"{}", {}, 2)
        assert (response.status, server.requests) == (200, ["/in", "/moved"])
    finally:
        server.server.shutdown()


def test_the_sandbox_setting_alone_allows_its_local_fake_targets() -> None:
    server = _Redirecting("/moved")
    try:
        response = SafeHttp(allow_loopback=frozenset({server.port})).post(
            f"http://127.0.0.1:{server.port}/moved", b"{}", {}, 2
        )
        assert response.status == 200
        with pytest.raises(TargetRefused):
            SafeHttp().post(f"http://127.0.0.1:{server.port}/moved", b"{}", {}, 2)
    finally:
        server.server.shutdown()


# Every way an IPv6 address can carry an IPv4 one, around three IPv4 addresses no target may reach
# (the instance metadata endpoint, a private address, loopback). Teredo carries two: the server's in
# bits 32-63 and the client's, inverted, in the last 32 bits.
EMBEDDED = {
    "169.254.169.254": {
        "IPv4-mapped": "::ffff:a9fe:a9fe",
        "IPv4-compatible": "::a9fe:a9fe",
        "NAT64 well-known": "64:ff9b::a9fe:a9fe",
        "NAT64 local-use": "64:ff9b:1::a9fe:a9fe",
        "6to4": "2002:a9fe:a9fe::1",
        "Teredo client": "2001:0:4136:e378:8000:63bf:5601:5601",
        "Teredo server": "2001:0:a9fe:a9fe:8000:63bf:a247:27dd",
    },
    "10.0.0.1": {
        "IPv4-mapped": "::ffff:a00:1",
        "IPv4-compatible": "::a00:1",
        "NAT64 well-known": "64:ff9b::a00:1",
        "NAT64 local-use": "64:ff9b:1::a00:1",
        "6to4": "2002:a00:1::1",
        "Teredo client": "2001:0:4136:e378:8000:63bf:f5ff:fffe",
        "Teredo server": "2001:0:a00:1:8000:63bf:a247:27dd",
    },
    "127.0.0.1": {
        "IPv4-mapped": "::ffff:7f00:1",
        "IPv4-compatible": "::7f00:1",
        "NAT64 well-known": "64:ff9b::7f00:1",
        "NAT64 local-use": "64:ff9b:1::7f00:1",
        "6to4": "2002:7f00:1::1",
        "Teredo client": "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "Teredo server": "2001:0:7f00:1:8000:63bf:a247:27dd",
    },
}


@pytest.mark.parametrize(
    ("inner", "how", "address"),
    [(inner, how, address) for inner, ways in EMBEDDED.items() for how, address in ways.items()],
)
def test_an_ipv6_address_embedding_a_non_public_ipv4_one_is_refused(inner: str, how: str, address: str) -> None:
    assert not is_public(address), f"{how} embedding of {inner}"
    http = SafeHttp(resolver=resolving({"erp.shop.example": [address]}))
    with pytest.raises(TargetRefused, match=r"'erp\.shop\.example' resolves to a non-public address"):
        http.post("https://erp.shop.example/in", b"{}", {}, 1)


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("100.64.0.1", "shared address space 100.64/10"),
        ("192.0.0.9", "IETF protocol assignments 192.0.0/24"),
        ("192.0.2.10", "TEST-NET-1"),
        ("198.18.0.1", "benchmarking 198.18/15"),
        ("198.51.100.7", "TEST-NET-2"),
        ("203.0.113.7", "TEST-NET-3"),
        ("240.0.0.1", "reserved 240/4"),
        ("255.255.255.255", "limited broadcast"),
        ("0.1.2.3", "this network 0/8"),
        ("169.254.170.2", "ECS task metadata (link-local)"),
        ("168.63.129.16", "Azure wire server (platform metadata)"),
        ("::", "IPv6 unspecified"),
        ("100::1", "IPv6 discard-only 100::/64"),
        ("2001:db8::1", "IPv6 documentation"),
        ("2001:2::1", "IPv6 benchmarking"),
        ("2001:10::1", "ORCHID"),
        ("3fff::1", "IPv6 documentation 3fff::/20"),
        ("fc00::1", "unique local"),
        ("fd00:ec2::23", "AWS time sync (unique local)"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "IPv6 multicast"),
        ("5f00::1", "SRv6 SIDs"),
    ],
)
def test_every_special_purpose_block_is_refused(address: str, what: str) -> None:
    assert not is_public(address), what


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("93.184.216.34", "public IPv4"),
        ("8.8.8.8", "public IPv4"),
        ("2606:2800:220:1:248:1893:25c8:1946", "public IPv6"),
        ("::ffff:5db8:d822", "IPv4-mapped public"),
        ("64:ff9b::5db8:d822", "NAT64 of a public IPv4 (an IPv6-only subnet with DNS64)"),
        ("2002:5db8:d822::1", "6to4 of a public IPv4"),
    ],
)
def test_public_addresses_are_allowed(address: str, what: str) -> None:
    assert is_public(address), what


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "10.0.0.1", "fd00:ec2::254", "100.100.100.200", "64:ff9b::a9fe:a9fe"]
)
def test_the_sandbox_allowance_admits_loopback_only_never_metadata_or_private(address: str) -> None:
    # The sandbox's setting lets the functions reach its fake servers on 127.0.0.1 over plain HTTP;
    # a target (or a redirect) naming anything else non-public is still refused
    http = SafeHttp(allow_loopback=frozenset({80}), resolver=resolving({"target.example": [address]}))
    with pytest.raises(TargetRefused, match=r"'target\.example' resolves to a non-public address"):
        http.post("http://target.example/in", b"{}", {}, 0.5)


@pytest.mark.parametrize(
    "base", ["https://169.254.169.254", "https://[fd00:ec2::254]", "https://100.100.100.200", "https://10.0.0.1"]
)
def test_the_wecom_robot_client_is_guarded_like_every_outbound_client(base: str) -> None:
    from shared.adapters.wecom import WeComRobotHttp

    with pytest.raises(TargetRefused, match="resolves to a non-public address"):
        WeComRobotHttp(base, timeout=0.5).send("robot-key", {"msgtype": "text", "text": {"content": "x"}})


# A target controls the Location of its 307/308: whatever it says, the call ends in TargetRefused with a
# reason (never ValueError or UnicodeError out of URL parsing or IDNA), and the URL's host is never called.
MALFORMED = [
    ("https://x.example:99999/", "the URL's port is not a number from 1 to 65535"),
    ("https://x.example:0/", "the URL's port is not a number from 1 to 65535"),
    ("https://x.example:abc/", "the URL's port is not a number from 1 to 65535"),
    ("https://[::1/", "the URL is malformed"),
    ("https://[zz]/", "the URL is malformed"),
    (f"https://{'a' * 64}.example/", "the URL's host name is not valid"),
    ("https://a..example/", "the URL's host name is not valid"),
    ("https://crm.example\x00.evil/", "the URL's host name is not valid"),
]


def _local_and_real(host: str, port: int) -> list[str]:
    # crm.example is the local server; every other name goes to the real resolver (IDNA, getaddrinfo)
    return ["127.0.0.1"] if host == "crm.example" else _resolve(host, port)


@pytest.mark.parametrize(("location", "reason"), MALFORMED)
def test_a_malformed_redirect_location_is_refused_with_a_reason(location: str, reason: str) -> None:
    server = _Redirecting(location)
    try:
        http = SafeHttp(resolver=_local_and_real, allow_loopback=frozenset({server.port}))
        with pytest.raises(TargetRefused) as refused:
            http.post(f"http://crm.example:{server.port}/in", b"{}", {}, 2)
        assert str(refused.value) == reason
        assert server.requests == ["/in"]
    finally:
        server.server.shutdown()


@pytest.mark.parametrize(("url", "reason"), MALFORMED)
def test_a_malformed_url_is_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        SafeHttp(resolver=_local_and_real).post(url, b"{}", {}, 1)
    assert str(refused.value) == reason


class _Recording:
    """A local server that answers 200 and records what reached it."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                self._body()
                outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                self._reply(200, b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve(self.server)


@pytest.mark.parametrize(
    ("location", "why"),
    [
        ("http://other.example:{other}/steal", "another host"),
        ("http://crm.example:{other}/steal", "the same host on another port"),
        ("https://crm.example:{port}/steal", "another scheme"),
    ],
)
def test_a_redirect_to_another_origin_is_refused_and_no_credential_leaves(location: str, why: str) -> None:
    # Every header of a call (Authorization, API keys: we cannot tell which are secrets) would be sent
    # again to whatever the Location names: a redirect to another origin is refused before any request
    other = _Recording()
    server = _Redirecting(location.replace("{other}", str(other.server.server_port)))
    try:
        http = _via_local({"crm.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]}, server.port)
        with pytest.raises(TargetRefused, match="redirects to another origin"):
            http.post(f"http://crm.example:{server.port}/in", b"{}", {"Authorization": "Bearer s3cret"}, 2)
        assert other.headers == [], why
        assert server.requests == ["/in"], why
    finally:
        server.server.shutdown()
        other.server.shutdown()


@pytest.mark.parametrize("location", ["/moved", "http://crm.example:{port}/moved", "HTTP://CRM.example:{port}/moved"])
def test_a_redirect_within_the_origin_is_followed_with_the_headers(location: str) -> None:
    server = _Redirecting(location)
    try:
        http = _via_local({"crm.example": ["127.0.0.1"]}, server.port)
        response = http.post(f"http://crm.example:{server.port}/in", b"{}", {"Authorization": "Bearer t"}, 2)
        assert (response.status, server.requests) == (200, ["/in", "/moved"])
        assert [h["authorization"] for h in server.headers] == ["Bearer t", "Bearer t"]
    finally:
        server.server.shutdown()
