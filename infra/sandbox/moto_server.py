"""moto's server, as the sandbox runs it: the fidelity fixes, and connections kept open between calls.

``python -m infra.sandbox.moto_server -H 127.0.0.1 -p PORT`` runs moto's own server (its command line)
with the fidelity fixes; the benchmarks start it so.

``KeepAliveMotoServer`` is moto's ``ThreadedMotoServer`` (same app, same request handler, same
answers) except that it keeps a connection open for the next call, as AWS's endpoints do. Werkzeug's
development server answers every request with ``Connection: close``, because it cannot tell where a
request's body ends before the next request line; so botocore opened a new TCP connection for every
AWS call and the server a new thread to serve it (a share of the sandbox's CPU under load, and of its
interpreter lock). Here the handler reads each request's body whole (its ``Content-Length``) before
moto sees it, so the next request starts exactly where the body ends, and the connection stays open;
a connection's thread serves its calls one after another until the client closes it or it is idle for
``IDLE_SECONDS``. Nagle's algorithm is off on its connections (werkzeug sends an answer's head and body
separately; on a kept-open connection the body would wait for the client's delayed acknowledgement,
~40 ms a call). A request whose body is chunked (no length) is answered as werkzeug answers it, and
that connection closed.
"""

from __future__ import annotations

import io
import sys
from threading import Event, Thread
from typing import Any

from moto import server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from infra.sandbox import moto_fidelity

IDLE_SECONDS = 120.0  # an idle kept-open connection is closed after this (botocore opens a new one)


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, HTTP/1.1 with keep-alive: the body read by its length, no ``Connection: close``."""

    protocol_version = "HTTP/1.1"
    # werkzeug writes an answer's head and body in separate sends: on a connection kept open, Nagle's
    # algorithm holds the body back until the client acknowledges the head, which a client delays ~40 ms
    disable_nagle_algorithm = True
    timeout = IDLE_SECONDS  # socketserver: the connection's socket timeout, between requests too

    def run_wsgi(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # werkzeug reads it to the end of the stream: nothing may follow
            super().run_wsgi()
            return
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            del self.headers["Expect"]  # (werkzeug would send it again)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # werkzeug gives the app ``self.rfile`` as wsgi.input, and afterwards discards whatever is left
        # in it ("any remaining data in the read socket"): here that is this request's body, never the
        # next request on the connection.
        connection_stream, self.rfile = self.rfile, io.BytesIO(body)
        try:
            super().run_wsgi()
        finally:
            self.rfile = connection_stream

    def log_error(self, format: str, *args: Any) -> None:
        if not format.startswith("Request timed out"):  # (an idle kept-open connection closing: not an error)
            super().log_error(format, *args)

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
            return  # werkzeug's blanket close: this connection stays open for the next request
        super().send_header(keyword, value)


class KeepAliveMotoServer:
    """``moto.server.ThreadedMotoServer`` with ``KeepAliveRequestHandler``: start, stop, get_host_and_port."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        self._ip_address = ip_address
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: Thread | None = None
        self._ready = Event()

    def _serve(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=KeepAliveRequestHandler)
        self._ready.set()
        self._server.serve_forever()

    def start(self) -> KeepAliveMotoServer:
        self._thread = Thread(target=self._serve, name="moto-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._ready.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()


def main(argv: Any = None) -> None:
    moto_fidelity.apply()
    server.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
