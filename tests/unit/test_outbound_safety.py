"""SSRF guards on every outbound connection and every redirect, each refusal by its own test."""

from __future__ import annotations

import json
from http.server import ThreadingHTTPServer

import pytest

from infra.sandbox.http_servers import _Quiet, serve
from shared.adapters.http import SafeHttp, TargetRefused, is_public


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
    """A local server standing in for a public target that redirects (307) somewhere."""

    def __init__(self, location: str) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                self._body()
                outer.requests.append(self.path)
                if self.path == "/in":
                    self._reply(307, b"", {"Location": location})
                else:
                    self._reply(200, json.dumps({"ok": True}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve(self.server)

    @property
    def port(self) -> int:
        return int(self.server.server_port)


def _via_local(mapping: dict[str, list[str]]) -> SafeHttp:
    # The local server plays a public host: only 127.0.0.1 counts as "public" here, and every
    # other address is judged by the real rule
    return SafeHttp(
        resolver=resolving(mapping),
        allow_http=True,
        address_allowed=lambda a: a == "127.0.0.1" or is_public(a),
    )


def test_a_redirect_to_the_metadata_endpoint_is_refused_on_the_redirect() -> None:
    server = _Redirecting("http://metadata.internal/latest/meta-data/iam")
    try:
        http = _via_local({"crm.example": ["127.0.0.1"], "metadata.internal": ["169.254.169.254"]})
        with pytest.raises(TargetRefused, match=r"'metadata\.internal' resolves to a non-public address"):
            http.post(f"http://crm.example:{server.port}/in", b"{}", {}, 2)
        assert server.requests == ["/in"]  # the first hop was made, the second never
    finally:
        server.server.shutdown()


def test_an_allowed_redirect_is_followed_with_the_same_checks() -> None:
    server = _Redirecting("/moved")
    try:
        http = _via_local({"crm.example": ["127.0.0.1"]})
        response = http.post(f"http://crm.example:{server.port}/in", b"{}", {}, 2)
        assert (response.status, server.requests) == (200, ["/in", "/moved"])
    finally:
        server.server.shutdown()


def test_the_sandbox_setting_alone_allows_its_local_fake_targets() -> None:
    server = _Redirecting("/moved")
    try:
        response = SafeHttp(allow_private=True).post(f"http://127.0.0.1:{server.port}/moved", b"{}", {}, 2)
        assert response.status == 200
        with pytest.raises(TargetRefused):
            SafeHttp().post(f"http://127.0.0.1:{server.port}/moved", b"{}", {}, 2)
    finally:
        server.server.shutdown()
