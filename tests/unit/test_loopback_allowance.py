"""The sandbox's allowance is a set of loopback ports (its own fake servers'), never loopback at large:
moto's server listens on loopback too, and a 307 to ``/moto-api/reset`` there would wipe the sandbox.
Plain HTTP comes with a non-empty set only, and only to those ports; link-local, metadata and private
addresses stay refused whatever the set (issue 13 review, item 13)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from infra.config import load_environment
from infra.sandbox.http_servers import _Quiet, serve
from infra.wiring import DOMAINS, ResourceRefs, change_routes, function_environment
from shared.adapters.http import SafeHttp, TargetRefused
from shared.errors import ConfigurationError
from shared.settings import AutomateSettings, DeliverSettings, NotifySettings, ReconcileSettings

VARIABLE = "ALLOWED_LOOPBACK_PORTS"
OUTBOUND = ("deliver", "automate", "notify", "reconcile")


class Local:
    """A local server answering 200 (307 to ``location`` when given) and counting its requests."""

    def __init__(self, location: str | None = None) -> None:
        self.requests = 0
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                self._body()
                outer.requests += 1
                if location:
                    self._reply(307, b"", {"Location": location})
                else:
                    self._reply(200, b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve(self.server)
        self.port = int(self.server.server_port)
        self.url = f"http://127.0.0.1:{self.port}/in"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Local]:
    server = Local()
    yield server
    server.close()


def test_a_listed_loopback_port_is_allowed_over_plain_http(fake: Local) -> None:
    assert SafeHttp(allow_loopback=frozenset({fake.port})).post(fake.url, b"{}", {}, 2).status == 200
    assert fake.requests == 1


def test_a_loopback_port_not_in_the_set_is_refused(fake: Local) -> None:
    http = SafeHttp(allow_loopback=frozenset({fake.port + 1 if fake.port < 65535 else 1}))
    with pytest.raises(TargetRefused, match=r"'127\.0\.0\.1' resolves to a non-public address \(127\.0\.0\.1\)"):
        http.post(fake.url, b"{}", {}, 2)
    assert fake.requests == 0


def test_a_fake_server_cannot_redirect_a_call_to_another_loopback_port(fake: Local) -> None:
    # e.g. moto's own server: http://127.0.0.1:<moto>/moto-api/reset
    redirecting = Local(f"http://127.0.0.1:{fake.port}/moto-api/reset")
    try:
        with pytest.raises(TargetRefused, match="redirects to another origin"):
            SafeHttp(allow_loopback=frozenset({redirecting.port})).post(redirecting.url, b"{}", {}, 2)
        assert (redirecting.requests, fake.requests) == (1, 0)
    finally:
        redirecting.close()


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "10.0.0.1", "fe80::1"]
)
def test_link_local_metadata_and_private_addresses_are_never_allowed(address: str) -> None:
    http = SafeHttp(allow_loopback=frozenset({80, 443}), resolver=lambda host, port: [address])
    with pytest.raises(TargetRefused, match=r"'target\.example' resolves to a non-public address"):
        http.post("http://target.example/in", b"{}", {}, 0.5)


def test_plain_http_goes_to_the_listed_loopback_ports_only() -> None:
    http = SafeHttp(allow_loopback=frozenset({80}), resolver=lambda host, port: ["93.184.216.34"])
    with pytest.raises(TargetRefused, match="plain http is allowed to the sandbox's loopback ports only"):
        http.post("http://crm.example/in", b"{}", {}, 0.5)
    with pytest.raises(TargetRefused, match="only https targets are allowed"):
        SafeHttp(resolver=lambda host, port: ["93.184.216.34"]).post("http://crm.example/in", b"{}", {}, 0.5)


def test_a_bool_is_no_allowance() -> None:
    with pytest.raises(TypeError, match="the loopback ports"):
        SafeHttp(allow_loopback=True)  # type: ignore[arg-type]


def _environ(settings: type, ports: str) -> dict[str, str]:
    cfg = load_environment("dev")
    refs = ResourceRefs(
        **{name: f"x-{name}" for name in ResourceRefs.__dataclass_fields__}
        | {"domain_queue_urls": {domain: f"x-{domain}" for domain in DOMAINS}}
        | {"change_queue_urls": {r.queue_purpose: f"x-{r.queue_purpose}" for r in change_routes(cfg)}}
    )
    name = {DeliverSettings: "deliver", AutomateSettings: "automate", NotifySettings: "notify"}.get(
        settings, "reconcile"
    )
    environ = dict(function_environment(name, cfg, refs))
    environ.pop("ALLOW_HTTP_TARGETS", None)
    return {**environ, VARIABLE: ports}


@pytest.mark.parametrize("settings", [DeliverSettings, AutomateSettings, NotifySettings, ReconcileSettings])
def test_the_settings_read_the_ports_from_their_variable(settings: type) -> None:
    assert settings.from_env(_environ(settings, "8080, 8081")).loopback_ports == frozenset({8080, 8081})
    assert settings.from_env(_environ(settings, "")).loopback_ports == frozenset()
    for wrong in ("0", "65536", "eighty", "true"):
        with pytest.raises(ConfigurationError, match=VARIABLE):
            settings.from_env(_environ(settings, wrong))


def test_a_plain_http_target_needs_the_ports() -> None:
    environ = _environ(DeliverSettings, "")
    environ["TARGETS_JSON"] = json.dumps([{"name": "crm", "url": "http://127.0.0.1:8080/x", "entity_types": ["order"]}])
    with pytest.raises(ConfigurationError, match="target 'crm': url must use https"):
        DeliverSettings.from_env(environ)
    assert DeliverSettings.from_env({**environ, VARIABLE: "8080"}).targets[0].name == "crm"


def test_every_outbound_function_states_its_ports_and_none_by_default() -> None:
    cfg = load_environment("dev")
    refs = ResourceRefs(
        **{name: f"x-{name}" for name in ResourceRefs.__dataclass_fields__}
        | {"domain_queue_urls": {domain: f"x-{domain}" for domain in DOMAINS}}
        | {"change_queue_urls": {r.queue_purpose: f"x-{r.queue_purpose}" for r in change_routes(cfg)}}
    )
    for name in OUTBOUND:
        assert function_environment(name, cfg, refs)[VARIABLE] == "", name
        assert function_environment(name, cfg, refs, loopback_ports=(8081, 8080))[VARIABLE] == "8080,8081", name
        assert "ALLOW_HTTP_TARGETS" not in function_environment(name, cfg, refs, loopback_ports=(8080,)), name


def test_one_client_s_threads_keep_a_connection_each_and_make_no_more() -> None:
    # Given a server that answers a round of calls only when all 8 are in flight at once, over kept-alive
    # connections, and notes the connection each call came on
    calls, rounds = 8, 3
    in_flight = threading.Barrier(calls, timeout=30)
    connections: set[tuple[str, int]] = set()

    class Handler(_Quiet):
        protocol_version = "HTTP/1.1"  # keep-alive, as a target's HTTPS server

        def do_POST(self) -> None:
            self._body()
            connections.add(self.client_address)
            in_flight.wait()
            self._reply(200, b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serve(server)
    port = int(server.server_port)
    http = SafeHttp(allow_loopback=frozenset({port}), connections=calls)  # deliver's: one a worker
    statuses: list[int] = []

    def worker() -> None:
        for _ in range(rounds):
            statuses.append(http.post(f"http://127.0.0.1:{port}/in", b"{}", {}, 20).status)

    threads = [threading.Thread(target=worker) for _ in range(calls)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.shutdown()
        server.server_close()
    # Then every call was answered, and the 24 calls came on 8 connections: each kept for the next round
    # (with 2 kept, 6 of every round's calls would open a connection, and a TLS handshake, of their own)
    assert statuses == [200] * calls * rounds
    assert len(connections) == calls
