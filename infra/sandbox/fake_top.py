"""A fake of the Taobao Open Platform's gateway (``POST /router/rest``) for the two incremental APIs the
hub pulls: ``taobao.trades.sold.increment.get`` and ``taobao.refunds.receive.get``.

It answers as TOP documents: a form-encoded POST with the common parameters, checked in TOP's order
(``app_key``, then ``sign`` by its own implementation of the documented algorithm — not the hub's —, then
``session`` and the ``timestamp``'s 10 minutes); the records whose ``modified`` lies in
[``start_modified``, ``end_modified``] (at most a day apart), newest first, ``page_size`` (≤ 100) a page
with ``total_results``; errors as ``{"error_response": {"code", "msg", "sub_code", "sub_msg"}}`` with
HTTP 200. ``error`` makes every call answer one (code 7: the call limit; 27: an invalid session), and
``before_page`` runs before a page is cut (a test moves a record there, as a shop does while we page).
``calls`` lists each call's (method, page_no).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from infra.sandbox.http_servers import _Quiet

CST = timezone(timedelta(hours=8))
FORMAT = "%Y-%m-%d %H:%M:%S"
LISTS = {
    "taobao.trades.sold.increment.get": ("trades_sold_increment_get_response", "trades", "trade", "tid"),
    "taobao.refunds.receive.get": ("refunds_receive_get_response", "refunds", "refund", "refund_id"),
}
ERRORS = {
    7: ("App Call Limited", "accesscontrol.limited-by-app-access-count", "This ban will last for 3 more seconds"),
    25: ("Invalid signature", "", ""),
    27: ("Invalid session", "invalid-sessionkey", "SessionKey非法"),
    29: ("Invalid app Key", "", ""),
}


def documented_sign(params: dict[str, str], secret: str, method: str) -> str:
    """TOP's signature, as its documentation states it: parameters but ``sign`` sorted by name, each name
    then its value, MD5 of secret + that + secret, or HMAC-MD5 / HMAC-SHA256 keyed by the secret;
    upper-case hex."""
    joined = ""
    for name in sorted(params):
        if name != "sign" and params[name]:
            joined += name + params[name]
    if method == "md5":
        return hashlib.md5(f"{secret}{joined}{secret}".encode()).hexdigest().upper()  # noqa: S324 - TOP's scheme
    algorithm = {"hmac": hashlib.md5, "hmac-sha256": hashlib.sha256}[method]
    return hmac.new(secret.encode(), joined.encode(), algorithm).hexdigest().upper()


class FakeTop:
    def __init__(self, app_key: str, app_secret: str, session: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app_key, self.app_secret, self.session = app_key, app_secret, session
        self.records: dict[str, dict[str, dict[str, Any]]] = {api: {} for api in LISTS}
        self.error: int | None = None
        self.before_page: Callable[[str, int], None] | None = None
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.RLock()
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                if self.path == "/_records":  # a sandbox in another process adds records
                    body = json.loads(self._body())
                    outer.put(body["method"], *body["records"])
                    return self._reply(200, b'{"ok":true}')
                if self.path.split("?")[0] != "/router/rest":
                    return self._reply(404, b"not found")
                form = {k: v[0] for k, v in parse_qs(self._body().decode(), keep_blank_values=True).items()}
                self._reply(200, json.dumps(outer.answer(form), ensure_ascii=False).encode())

        self.server = ThreadingHTTPServer((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/router/rest"

    def put(self, method: str, *records: dict[str, Any]) -> None:
        key = LISTS[method][3]
        with self.lock:
            for record in records:
                self.records[method][str(record[key])] = record

    def answer(self, form: dict[str, str], now: datetime | None = None) -> dict[str, Any]:
        """TOP's answer to one call (the JSON document; TOP answers errors with HTTP 200 too)."""
        if form.get("app_key") != self.app_key:
            return _error(29)
        method = form.get("sign_method", "")
        if method not in ("md5", "hmac", "hmac-sha256"):
            return _error(25)
        if not hmac.compare_digest(form.get("sign", ""), documented_sign(form, self.app_secret, method)):
            return _error(25)
        if form.get("session") != self.session:
            return _error(27)
        sent = datetime.strptime(form.get("timestamp", ""), FORMAT).replace(tzinfo=CST)
        if abs((now or datetime.now(CST)) - sent) > timedelta(minutes=10):
            return {"error_response": {"code": 43, "msg": "Invalid timestamp"}}
        if self.error is not None:
            return _error(self.error)
        api = form.get("method", "")
        if api not in LISTS or form.get("format") != "json" or form.get("v") != "2.0":
            return {"error_response": {"code": 22, "msg": "Invalid method"}}
        response, outer, inner, _ = LISTS[api]
        start = datetime.strptime(form["start_modified"], FORMAT)
        end = datetime.strptime(form["end_modified"], FORMAT)
        if end - start > timedelta(days=1) or end < start:
            return {"error_response": {"code": 15, "msg": "Remote service error", "sub_code": "isv.invalid-parameter"}}
        page, size = int(form.get("page_no", "1")), min(int(form.get("page_size", "40")), 100)
        with self.lock:
            self.calls.append((api, page))
            if self.before_page is not None:
                self.before_page(api, page)
            changed = sorted(
                (r for r in self.records[api].values() if start <= datetime.strptime(r["modified"], FORMAT) <= end),
                key=lambda r: r["modified"],
                reverse=True,  # newest first, as TOP lists them
            )
        cut = changed[(page - 1) * size : page * size]
        body: dict[str, Any] = {"total_results": len(changed), "request_id": f"req{len(self.calls)}"}
        if cut:
            body[outer] = {inner: cut}
        if form.get("use_has_next") == "true":
            body["has_next"] = page * size < len(changed)
        return {response: body}


def _error(code: int) -> dict[str, Any]:
    msg, sub_code, sub_msg = ERRORS[code]
    error: dict[str, Any] = {"code": code, "msg": msg, "request_id": "err"}
    if sub_code:
        error |= {"sub_code": sub_code, "sub_msg": sub_msg}
    return {"error_response": error}
