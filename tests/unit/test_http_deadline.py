"""A timeout is a deadline: a call ends when its wall-clock budget does, however slowly the target
answers, and it never reads more than the response cap. Real local servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shared.adapters.http import Response, SafeHttp

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
BODY = b'{"ok": true, "padding": "' + b"x" * 13 + b'"}'
assert len(BODY) == 40


class Server:
    """One connection: reads the request head, then answers ``fast`` at once and ``slow`` one byte
    every ``interval`` seconds (a target that trickles), stopping when the client hangs up."""

    def __init__(self, fast: bytes, slow: bytes = b"", interval: float = 0.2) -> None:
        self.fast, self.slow, self.interval = fast, slow, interval
        self.sent = 0  # bytes the server managed to hand to the client's socket
        self.connections = 0
        self.peer_ports: list[int] = []  # of the connection it accepted (the first one waiting, FIFO)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/in"

    def _run(self) -> None:
        try:
            conn, peer = self.listener.accept()
        except OSError:
            self.done.set()
            return
        self.connections += 1
        self.peer_ports.append(peer[1])
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            try:
                view = memoryview(self.fast)
                while view:  # fast part: as fast as the client reads
                    n = conn.send(view[:65536])
                    self.sent += n
                    view = view[n:]
                for byte in self.slow:
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(self.interval)
            except OSError:
                pass  # the client hung up: what it did not read was never sent
        self.done.set()

    def close(self) -> None:
        self.listener.close()
        self.done.wait(30)


def local(server: Server) -> SafeHttp:
    return SafeHttp(allow_loopback=frozenset({server.port}))  # the sandbox's allowance: this port on loopback


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def test_a_target_that_trickles_its_answer_is_cut_at_the_deadline(servers: list[Server]) -> None:
    # Each byte comes well within the per-read timeout, so only a wall-clock deadline can end the call
    server = Server(HEAD, BODY, interval=0.2)
    servers.append(server)
    response = local(server).post(server.url, b"{}", {}, 1.0)
    assert response.status == 599
    assert response.failure == "deadline"
    assert response.text == "no complete answer within the deadline"
    server.close()
    assert server.sent < len(HEAD) + len(BODY)  # the client stopped reading before the answer ended


def test_a_target_that_trickles_its_status_line_and_headers_is_cut_at_the_deadline(servers: list[Server]) -> None:
    server = Server(b"", HEAD + BODY, interval=0.2)
    servers.append(server)
    response = local(server).post(server.url, b"{}", {}, 1.0)
    assert response.status == 599
    assert response.failure == "deadline"
    server.close()
    assert server.sent < len(HEAD)  # cut while the headers were still coming


def test_the_invocation_deadline_bounds_a_call_with_a_longer_timeout(servers: list[Server]) -> None:
    server = Server(HEAD, BODY, interval=0.2)
    servers.append(server)
    response = local(server).post(server.url, b"{}", {}, 30.0, deadline=time.monotonic() + 1.0)
    assert (response.status, response.failure) == (599, "deadline")
    server.close()
    assert server.sent < len(HEAD) + len(BODY)


def test_no_call_is_started_when_the_deadline_has_passed(servers: list[Server]) -> None:
    server = Server(HEAD + BODY)
    servers.append(server)
    response = local(server).post(server.url, b"{}", {}, 5.0, deadline=time.monotonic() - 0.1)
    assert (response.status, response.failure) == (599, "deadline")
    assert response.text == "no time left before the deadline"
    # A connection of our own after the call: the server accepts the first one waiting (the queue is
    # FIFO), so it is ours only if the call made none. (Closing the listener instead left accept()
    # blocked until its 30 s timeout: Linux does not wake it.)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as ours:
        our_port = ours.getsockname()[1]
    assert server.done.wait(30)
    assert (server.connections, server.peer_ports) == (1, [our_port])


def test_a_huge_response_is_cut_at_the_size_cap(servers: list[Server]) -> None:
    total = 64 * 1024 * 1024
    server = Server(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total + b"0" * total)
    servers.append(server)
    response = local(server).post(server.url, b"{}", {}, 30.0)  # the default cap: 1 MiB
    assert response.status == 599
    assert response.failure == "too_large"
    assert response.text == "the answer is larger than 1048576 bytes"
    server.close()
    assert server.sent < total // 2  # the rest was never read (only socket buffers filled)


def test_an_answer_within_budget_and_cap_is_read_whole(servers: list[Server]) -> None:
    server = Server(HEAD + BODY)
    servers.append(server)
    response = local(server).post(server.url, b"{}", {}, 5.0, deadline=time.monotonic() + 5.0)
    assert (response.status, response.text, response.failure) == (200, BODY.decode(), None)
    assert response.headers["content-type"] == "application/json"


class Context:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_the_deadline_from_a_lambda_context_leaves_the_reserve(servers: list[Server]) -> None:
    from shared.adapters.http import deadline_from

    # 2.5 s left in the invocation, 2 s kept back to record the failure: 0.5 s for the call
    server = Server(HEAD, BODY, interval=0.2)
    servers.append(server)
    response = local(server).post(
        server.url, b"{}", {}, 30.0, deadline=deadline_from(Context(2500), reserve_seconds=2.0)
    )
    assert (response.status, response.failure) == (599, "deadline")
    server.close()
    assert server.sent < len(HEAD) + len(BODY)
    late = deadline_from(Context(1500), reserve_seconds=2.0)  # less left than the reserve: no call at all
    assert local(server).post(server.url, b"{}", {}, 30.0, deadline=late).text == "no time left before the deadline"


def test_a_tls_handshake_that_trickles_is_cut_at_the_deadline(servers: list[Server]) -> None:
    # The server answers the ClientHello one junk byte at a time: the handshake itself must be bounded
    server = Server(b"", b"\x16" * 60, interval=0.2)
    servers.append(server)
    http = SafeHttp(resolver=lambda host, port: ["127.0.0.1"], address_allowed=lambda a: a == "127.0.0.1")
    response = http.post(f"https://erp.shop.example:{server.port}/in", b"{}", {}, 1.0)
    assert (response.status, response.failure) == (599, "deadline")
    server.close()
    assert server.sent < 60


def test_a_name_that_does_not_resolve_in_time_is_cut_at_the_deadline() -> None:
    # DNS runs before there is a socket for the watchdog to shut: a resolver that hangs (here until the
    # test lets it go) must not hold the call. The call returns the deadline failure while the resolver
    # is still blocked.
    release, resolving, resolved = threading.Event(), threading.Event(), threading.Event()

    def hanging(host: str, port: int) -> list[str]:
        resolving.set()
        release.wait(60)
        resolved.set()
        return ["127.0.0.1"]

    http = SafeHttp(resolver=hanging, address_allowed=lambda a: a == "127.0.0.1")
    outcome: list[object] = []
    caller = threading.Thread(
        target=lambda: outcome.append(http.post("https://erp.shop.example/in", b"{}", {}, 0.5)), daemon=True
    )
    caller.start()
    caller.join(30)  # a liveness bound, not a timing: the call must not wait for the resolver
    try:
        assert resolving.is_set() and not resolved.is_set()
        assert len(outcome) == 1, "the call is still waiting for the resolver"
        response = outcome[0]
        assert isinstance(response, Response)
        assert (response.status, response.failure) == (599, "deadline")
        assert response.text == "the host did not resolve within the deadline"
    finally:
        release.set()
    assert resolved.wait(30)  # the resolver finished on its own; nobody used its answer
