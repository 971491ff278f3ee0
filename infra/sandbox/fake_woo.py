"""A fake of the WooCommerce REST API's order list (``GET /wp-json/wc/v3/orders``) for reconciliation.

As WooCommerce answers it: HTTP Basic auth with the REST API key (else 401
``woocommerce_rest_cannot_view``); ``modified_after`` (exclusive, GMT with ``dates_are_gmt=true``),
``orderby=modified`` and ``order=asc`` (ties by id), ``per_page`` (≤ 100) and ``page``; the total in
``X-WP-Total`` and ``X-WP-TotalPages``. ``status`` makes it answer 429 (``Retry-After: 2``) or another
error instead; ``before_page`` runs before a page is cut (a test edits an order there, as a store does
while we page). ``requests`` lists each call's (modified_after, page).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from infra.sandbox.http_servers import _Quiet

CANNOT_VIEW = {
    "code": "woocommerce_rest_cannot_view",
    "message": "Sorry, you cannot list resources.",
    "data": {"status": 401},
}


class FakeWoo:
    def __init__(self, consumer_key: str, consumer_secret: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.authorization = "Basic " + base64.b64encode(f"{consumer_key}:{consumer_secret}".encode()).decode()
        self.orders: dict[int, dict[str, Any]] = {}
        self.status: int | None = None
        self.before_page: Callable[[int], None] | None = None
        self.requests: list[tuple[str, int]] = []
        self.lock = threading.RLock()
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:  # a sandbox in another process adds or replaces orders
                if self.path != "/_orders":
                    return self._reply(404, b'{"code":"rest_no_route"}')
                outer.put(*json.loads(self._body()))
                self._reply(200, b'{"ok":true}')

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/wp-json/wc/v3/orders":
                    return self._reply(404, b'{"code":"rest_no_route","data":{"status":404}}')
                if self.headers.get("Authorization") != outer.authorization:
                    return self._reply(401, json.dumps(CANNOT_VIEW).encode())
                if outer.status is not None:
                    headers = {"Content-Type": "application/json", "Retry-After": "2"} if outer.status == 429 else None
                    return self._reply(outer.status, b'{"code":"unavailable"}', headers)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, body, headers = outer.page(query)
                self._reply(status, json.dumps(body).encode(), headers)

        self.server = ThreadingHTTPServer((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def put(self, *orders: dict[str, Any]) -> None:
        with self.lock:
            for order in orders:
                self.orders[int(order["id"])] = order

    def page(self, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if query.get("orderby") != "modified" or query.get("order") != "asc" or query.get("dates_are_gmt") != "true":
            return 400, {"code": "rest_invalid_param"}, {"Content-Type": "application/json"}
        after, page, size = (
            query.get("modified_after", ""),
            int(query.get("page", "1")),
            min(int(query.get("per_page", "10")), 100),
        )
        with self.lock:
            self.requests.append((after, page))
            if self.before_page is not None:
                self.before_page(page)
            changed = sorted(
                (o for o in self.orders.values() if o["date_modified_gmt"] > after),
                key=lambda o: (o["date_modified_gmt"], o["id"]),
            )
        total = len(changed)
        headers = {
            "Content-Type": "application/json",
            "X-WP-Total": str(total),
            "X-WP-TotalPages": str(-(-total // size)),
        }
        return 200, changed[(page - 1) * size : page * size], headers
