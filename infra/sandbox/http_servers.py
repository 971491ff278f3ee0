"""Two small local HTTP servers: the API Gateway stand-in and the recording fake target."""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

LOOKUP_RESOURCE = "/v1/{tenant}/lookup"
WEBHOOK_RESOURCE = "/webhooks/{source}/{tenant}"
SIDEBAR_RESOURCES = ("/v1/{tenant}/sidebar", "/v1/{tenant}/sidebar/jsapi", "/v1/{tenant}/sidebar/data")


def function_for(resource: str) -> str:
    """The function behind an API resource, as the stack integrates them."""
    if resource == LOOKUP_RESOURCE:
        return "lookup"
    if resource in SIDEBAR_RESOURCES:
        return "sidebar"
    return "ingest"


def api_gateway_event(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event for the stack's routes, ``/webhooks/{source}/{tenant}``,
    ``/v1/{tenant}/lookup`` and ``/v1/{tenant}/sidebar[/jsapi|/data]`` (with the query string). The stack
    sets binary media type ``*/*``, so the body always arrives base64-encoded, as here."""
    raw_path, _, raw_query = path.partition("?")
    parts = raw_path.strip("/").split("/")
    resource, path_parameters = raw_path, None
    if len(parts) == 3 and parts[0] == "webhooks":
        resource, path_parameters = WEBHOOK_RESOURCE, {"source": parts[1], "tenant": parts[2]}
    elif len(parts) == 3 and parts[0] == "v1" and parts[2] == "lookup":
        resource, path_parameters = LOOKUP_RESOURCE, {"tenant": parts[1]}
    elif len(parts) in (3, 4) and parts[0] == "v1" and parts[2] == "sidebar" and parts[3:] in ([], ["jsapi"], ["data"]):
        resource, path_parameters = "/v1/{tenant}/" + "/".join(parts[2:]), {"tenant": parts[1]}
        headers = {"X-Forwarded-Proto": "http", **headers}  # as API Gateway says how the client came (https)
    query = parse_qs(raw_query, keep_blank_values=True) if raw_query else {}
    return {
        "resource": resource,
        "path": raw_path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/local{raw_path}",
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has headers only
            self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class Server(ThreadingHTTPServer):
    """A thread per request (daemon threads: a stuck request never holds the process) and a real listen
    backlog: ``socketserver``'s default of 5 refuses (resets) connections once a burst of clients
    outruns ``accept``, which API Gateway never does."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: Any, backlog: int = 128) -> None:
        self.request_queue_size = backlog  # read by server_activate(), called by the constructor
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up waiting (its own timeout): nothing to report here
        super().handle_error(request, client_address)


def serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=f"http-{server.server_port}", daemon=True)
    thread.start()
    return thread


WEBHOOK_METHODS = ("POST",)


def gateway(
    host: str, port: int, invoke: Callable[[dict[str, Any]], dict[str, Any]], backlog: int = 128
) -> ThreadingHTTPServer:
    """The API's routes: ``POST /webhooks/{source}/{tenant}`` goes to the ingest handler and ``GET
    /v1/{tenant}/lookup`` to the lookup handler (``invoke`` picks by the event's resource); another method
    on a webhook path is answered 405 here, before any handler runs (API Gateway itself answers such a
    request 403 ``Missing Authentication Token``: the stack defines no other method there). An
    invocation that fails (the handler raised, its environment died or timed out) is answered 502
    ``Internal server error``, as API Gateway answers a failed Lambda proxy integration."""

    class Gateway(_Quiet):
        def do_POST(self) -> None:
            self._handle("POST")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_PUT(self) -> None:
            self._handle("PUT")

        def do_PATCH(self) -> None:
            self._handle("PATCH")

        def do_DELETE(self) -> None:
            self._handle("DELETE")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_OPTIONS(self) -> None:
            self._handle("OPTIONS")

        def _handle(self, method: str) -> None:
            if self.path.startswith("/webhooks/") and method not in WEBHOOK_METHODS:
                self._body()  # read and drop what was sent, so the connection stays usable
                message = f"{method} is not allowed here; webhooks are POSTed to /webhooks/{{source}}/{{tenant}}"
                answer = json.dumps({"error": "method_not_allowed", "message": message}).encode()
                self._reply(405, answer, {"Content-Type": "application/json", "Allow": ", ".join(WEBHOOK_METHODS)})
                return
            if self.path.startswith("/v1/") and method != "GET":
                self._body()
                message = f"{method} is not allowed here; a lookup is GET /v1/{{tenant}}/lookup?<selector>=<value>"
                answer = json.dumps({"error": "method_not_allowed", "message": message}).encode()
                self._reply(405, answer, {"Content-Type": "application/json", "Allow": "GET"})
                return
            event = api_gateway_event(method, self.path, dict(self.headers.items()), self._body())
            try:
                result = invoke(event)
            except Exception as error:
                # API Gateway's answer carries no reason; the operator's terminal does (the path names the
                # source and tenant only: no body, no header)
                print(f"gateway: {method} {urlsplit(self.path).path} answered 502: {error}", file=sys.stderr)
                self._reply(502, b'{"message": "Internal server error"}')
                return
            body = result.get("body") or ""
            raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
            headers = {k: v for k, v in (result.get("headers") or {}).items()}
            headers.update({k: ", ".join(v) for k, v in (result.get("multiValueHeaders") or {}).items() if v})
            headers.setdefault("Content-Type", "application/json")
            self._reply(result["statusCode"], raw, headers)

    return Server((host, port), Gateway, backlog=backlog)


class FakeTarget:
    """Records every POST, PUT and PATCH to ``/<target>/…``; ``GET /_received`` lists them; ``POST
    /_control/<target>`` sets the status code it answers with (e.g. 503 to simulate an outage)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.status: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                body = self._body()
                if self.path.startswith("/_control/"):
                    outer.status[self.path.strip("/").split("/")[-1]] = int(json.loads(body)["status"])
                    self._reply(200, b"{}")
                    return
                self._record(body)

            def do_PUT(self) -> None:
                self._record(self._body())

            def do_PATCH(self) -> None:
                self._record(self._body())

            def _record(self, body: bytes) -> None:
                name = self.path.strip("/").split("/")[0]
                status = outer.status.get(name, 200)
                with outer.lock:
                    outer.received.append(
                        {
                            "target": name,
                            "method": self.command,
                            "path": self.path,
                            "at": time.time(),
                            "status": status,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(body),
                        }
                    )
                self._reply(status, json.dumps({"ok": status < 300}).encode())

            def do_GET(self) -> None:
                with outer.lock:
                    self._reply(200, json.dumps(outer.received).encode())

        self.server = Server((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def accepted(self, target: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["status"] < 300 and (target is None or r["target"] == target)]


class FakeShop:
    """The Shopify Admin REST API's orders list, for reconciliation: ``GET /admin/api/<version>/
    orders.json`` with ``updated_at_min`` (the orders changed at or after it, oldest change first),
    ``page_size`` orders a page and a ``page_info`` cursor in the ``Link: <…>; rel="next"`` header,
    as Shopify pages. The access token must match; ``status`` makes it answer 429 / 401 / 500 instead
    (429 with ``Retry-After: 2``). ``requests`` counts the pages served. ``POST /_orders`` with a JSON
    list adds or replaces orders (by id), for a sandbox in another process."""

    def __init__(self, token: str, page_size: int = 250, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token, self.page_size = token, page_size
        self.orders: dict[int, dict[str, Any]] = {}
        self.status: int | None = None
        self.requests = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                if self.path.startswith("/admin/api/") and self.path.endswith("/graphql.json"):
                    status, answer = outer.graphql(self.headers.get("X-Shopify-Access-Token"), self._body())
                    return self._reply(status, json.dumps(answer).encode())
                if self.path != "/_orders":
                    return self._reply(404, b'{"errors":"Not Found"}')
                outer.put(*json.loads(self._body()))
                self._reply(200, b'{"ok":true}')

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if not parts.path.startswith("/admin/api/") or not parts.path.endswith("/orders.json"):
                    return self._reply(404, b'{"errors":"Not Found"}')
                if self.headers.get("X-Shopify-Access-Token") != outer.token:
                    return self._reply(401, b'{"errors":"[API] Invalid API key or access token"}')
                if outer.status is not None:
                    headers = {"Content-Type": "application/json", "Retry-After": "2"} if outer.status == 429 else None
                    return self._reply(outer.status, b'{"errors":"unavailable"}', headers)
                with outer.lock:
                    outer.requests += 1
                    since = query.get("updated_at_min", "")
                    if "page_info" in query:
                        since, offset = query["page_info"].split("|")
                    changed = sorted(
                        (o for o in outer.orders.values() if _utc(o["updated_at"]) >= _utc(since)),
                        key=lambda o: (_utc(o["updated_at"]), o["id"]),
                    )
                start = int(offset) if "page_info" in query else 0
                page = [  # REST orders carry no returns: GraphQL serves them
                    {k: v for k, v in o.items() if k != "returns"} for o in changed[start : start + outer.page_size]
                ]
                headers = {"Content-Type": "application/json"}
                if start + outer.page_size < len(changed):
                    cursor = urlencode({"page_info": f"{since}|{start + outer.page_size}"})
                    host = self.headers.get("Host")
                    headers["Link"] = f'<http://{host}{parts.path}?{cursor}>; rel="next"'
                self._reply(200, json.dumps({"orders": page}).encode(), headers)

        self.server = Server((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def put(self, *orders: dict[str, Any]) -> None:
        """Add or replace orders; an order's ``returns`` (GraphQL ``Return`` nodes) are served by GraphQL
        only, as Shopify's REST orders carry none."""
        with self.lock:
            for order in orders:
                self.orders[int(order["id"])] = order

    def graphql(self, token: str | None, body: bytes) -> tuple[int, Any]:
        """The Admin GraphQL API's ``orders`` query as the returns pull asks it: ``query`` with
        ``updated_at:>='…'`` (and ``NOT return_status:no_return``: only orders with returns), ``first`` and
        ``after`` (an offset cursor), ``sortKey: UPDATED_AT``; each node's ``returns`` as put. Anything else
        is refused as Shopify refuses an unknown field."""
        if token != self.token:
            return 401, {"errors": "[API] Invalid API key or access token"}
        if self.status is not None:
            return self.status, {"errors": "unavailable"}
        asked = json.loads(body or b"{}")
        text, variables = str(asked.get("query", "")), asked.get("variables") or {}
        match = re.search(r"updated_at:>='([^']+)'", str(variables.get("query", "")))
        first = re.search(r"orders\(first: (\d+)", text)
        if "returns(" not in text or "sortKey: UPDATED_AT" not in text or not match or not first:
            return 200, {"errors": [{"message": "unsupported query", "extensions": {"code": "BAD_REQUEST"}}]}
        with self.lock:
            self.requests += 1
            listed = sorted(
                (o for o in self.orders.values() if o.get("returns") and _utc(o["updated_at"]) >= _utc(match.group(1))),
                key=lambda o: (_utc(o["updated_at"]), o["id"]),
            )
        start, size = int(variables.get("after") or 0), int(first.group(1))
        nodes = [
            {
                "id": f"gid://shopify/Order/{o['id']}",
                "updatedAt": datetime.fromtimestamp(_utc(o["updated_at"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "returns": {"nodes": o["returns"]},
            }
            for o in listed[start : start + size]
        ]
        more = start + size < len(listed)
        info = {"hasNextPage": more, "endCursor": str(start + size) if more else None}
        return 200, {"data": {"orders": {"pageInfo": info, "nodes": nodes}}}


def _utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else 0.0
