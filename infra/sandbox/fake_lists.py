"""Fakes of the list APIs reconciliation pulls from: Stripe's event list, Zendesk's incremental ticket
export, AfterShip's tracking list, Amazon SP-API's getOrders (with Login with Amazon's token endpoint)
Douyin shop's order.searchList (with its token.create) and Youzan's trades.sold.get (with its
auth/token), each answering as the platform documents it
(auth, field names, page size, cursors, the order records come in, error shapes).

Each is an HTTP server the sandbox runs (``POST /_records`` with a JSON list adds records from another
process, as the demo does) and, for unit tests, an in-process client with the same ``get(url, headers,
timeout)`` a pager calls: both go through ``answer``, so a test of the pager against the fake's client
exercises the fake's paging and auth, not a second copy of them. Setting ``status`` makes every list call
answer that status instead (429 with the platform's wait header); ``before_page`` runs before a page is
cut (a test changes a record there, as a platform does while we page); ``requests`` lists each call's
query.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from infra.sandbox.http_servers import _Quiet
from shared.sources.tracking import CHINA

JSON = {"Content-Type": "application/json"}


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]


class FakeListApi:
    """The common part: records, the server, the in-process client, the injected status."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.retry_headers = {"Retry-After": "2"}  # what a 429 says of the wait
        self.records: list[dict[str, Any]] = []
        self.status: int | None = None
        self.before_page: Callable[[int], None] | None = None
        self.requests: list[dict[str, list[str]]] = []
        self.lock = threading.RLock()
        outer = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                if self.path == "/_records":
                    outer.put(*json.loads(self._body()))
                    return self._reply(200, b'{"ok":true}')
                status, body, headers = outer.respond_post(self.path, self._body())
                self._reply(status, json.dumps(body).encode(), headers)

            def do_GET(self) -> None:
                status, body, headers = outer.respond(self.path, {k.lower(): v for k, v in self.headers.items()})
                self._reply(status, json.dumps(body).encode(), headers)

        self.server = ThreadingHTTPServer((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def put(self, *records: dict[str, Any]) -> None:
        """Add records, or replace the one with the same identity (a platform's record changing)."""
        with self.lock:
            for record in records:
                self.records = [r for r in self.records if self.identity(r) != self.identity(record)] + [record]

    def identity(self, record: dict[str, Any]) -> Any:
        return record["id"]

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Answer:
        """The in-process client: what the server would answer, without a socket."""
        parts = urlsplit(url)
        status, body, answer_headers = self.respond(
            f"{parts.path}?{parts.query}", {k.lower(): v for k, v in headers.items()}
        )
        return Answer(status, json.dumps(body), {k.lower(): v for k, v in answer_headers.items()})

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        """The in-process client's POST (an OAuth token endpoint)."""
        parts = urlsplit(url)
        status, answer, answer_headers = self.respond_post(f"{parts.path}?{parts.query}", body)
        return Answer(status, json.dumps(answer), {k.lower(): v for k, v in answer_headers.items()})

    def respond_post(self, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        return 404, {"error": "not found"}, JSON

    def respond(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        with self.lock:
            if (refused := self.refuse(parts.path, headers)) is not None:
                return refused
            if self.status is not None:
                waits = self.retry_headers if self.status == 429 else {}
                return self.status, {"error": "injected"}, {**JSON, **waits}
            self.requests.append(query)
            if self.before_page is not None:
                self.before_page(len(self.requests))
            return self.answer(query)

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        raise NotImplementedError

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


class FakeStripe(FakeListApi):
    """``GET /v1/events``: bearer key, ``types[]``, ``created[gte]``/``created[lt]``, ``limit`` (1–100),
    ``starting_after``; newest first (created, then the order added); ``{"object": "list", "data",
    "has_more", "url"}``. A wrong key: 401 with Stripe's error shape."""

    def __init__(self, api_key: str, **server: Any) -> None:
        super().__init__(**server)
        self.authorization = f"Bearer {api_key}"

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if path != "/v1/events":
            return 404, {"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}, JSON
        if headers.get("authorization") != self.authorization:
            error = {"type": "invalid_request_error", "message": "Invalid API Key provided"}
            return 401, {"error": error}, JSON
        return None

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        limit = int(query.get("limit", ["10"])[0])
        if not 1 <= limit <= 100:
            return 400, {"error": {"type": "invalid_request_error", "param": "limit"}}, JSON
        types = set(query.get("types[]", [])) or None
        gte = int(query.get("created[gte]", ["0"])[0])
        lt = int(query.get("created[lt]", [str(2**62)])[0])
        order = {id(e): n for n, e in enumerate(self.records)}
        listed = sorted(
            (e for e in self.records if gte <= e["created"] < lt and (types is None or e["type"] in types)),
            key=lambda e: (e["created"], order[id(e)]),
            reverse=True,
        )
        after = query.get("starting_after", [None])[0]
        if after is not None:
            ids = [e["id"] for e in listed]
            if after not in ids:
                return 400, {"error": {"type": "invalid_request_error", "param": "starting_after"}}, JSON
            listed = listed[ids.index(after) + 1 :]
        page = listed[:limit]
        return 200, {"object": "list", "data": page, "has_more": len(listed) > limit, "url": "/v1/events"}, JSON


class FakeZendesk(FakeListApi):
    """``GET /api/v2/incremental/tickets/cursor.json``: Basic ``<email>/token:<api_token>``; ``start_time``
    (refused when less than a minute ago, as Zendesk does) or ``cursor``; ``per_page`` (≤ 1000); tickets by
    ``updated_at`` then id; ``{"tickets", "after_cursor", "after_url", "before_cursor", "end_of_stream"}``.
    The cursor is the position after the last ticket handed over (its change time and id), so a ticket
    changed meanwhile comes again at the end, as with Zendesk's."""

    def __init__(self, email: str, api_token: str, clock: Callable[[], datetime] | None = None, **server: Any) -> None:
        super().__init__(**server)
        self.authorization = "Basic " + base64.b64encode(f"{email}/token:{api_token}".encode()).decode()
        self.clock = clock or (lambda: datetime.now(UTC))

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if path != "/api/v2/incremental/tickets/cursor.json":
            return 404, {"error": "InvalidEndpoint", "description": "Not found"}, JSON
        if headers.get("authorization") != self.authorization:
            return 401, {"error": "Couldn't authenticate you"}, JSON
        return None

    @staticmethod
    def key(ticket: dict[str, Any]) -> tuple[str, int]:
        return (datetime.fromisoformat(ticket["updated_at"].replace("Z", "+00:00")).isoformat(), int(ticket["id"]))

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", ["1000"])[0]), 1000)
        if "cursor" in query:
            at, ticket_id = json.loads(base64.urlsafe_b64decode(query["cursor"][0]))
            position: tuple[str, int] = (at, ticket_id)
        elif "start_time" in query:
            start = int(query["start_time"][0])
            if start > self.clock().timestamp() - 60:
                return 422, {"error": "StartTimeTooRecent", "description": "start_time is too recent"}, JSON
            position = (datetime.fromtimestamp(start, UTC).isoformat(), -1)
        else:
            return 400, {"error": "InvalidPaginationParameter"}, JSON
        listed = sorted((t for t in self.records if self.key(t) > position), key=self.key)
        page = listed[:per_page]
        cursor = base64.urlsafe_b64encode(json.dumps(self.key(page[-1]) if page else position).encode()).decode()
        body = {
            "tickets": page,
            "after_cursor": cursor,
            "after_url": f"{self.url}/api/v2/incremental/tickets/cursor.json?{urlencode({'cursor': cursor})}",
            "before_cursor": None,
            "end_of_stream": len(listed) <= per_page,
        }
        return 200, body, JSON


class FakeAfterShip(FakeListApi):
    """``GET /tracking/2024-04/trackings``: ``as-api-key``; ``updated_at_min``/``updated_at_max`` (both
    ends included); ``limit`` (≤ 200); ``cursor``; newest created first (not by update); ``{"meta":
    {"code": 200}, "data": {"pagination": {"total", "next_cursor", "has_next_page"}, "trackings"}}``.
    A 429 says when the limit resets in ``as-rate-limit-reset``."""

    def __init__(self, api_key: str, **server: Any) -> None:
        super().__init__(**server)
        self.api_key = api_key
        self.retry_headers = {"as-rate-limit-reset": "0"}  # a test sets the epoch second it resets

    def identity(self, record: dict[str, Any]) -> Any:
        return (record["slug"], record["tracking_number"])

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if path != "/tracking/2024-04/trackings":
            return 404, {"meta": {"code": 404, "type": "NotFound", "message": "The URI requested is invalid."}}, JSON
        if headers.get("as-api-key") != self.api_key:
            meta = {"code": 401, "type": "Unauthorized", "message": "Invalid API key."}
            return 401, {"meta": meta, "data": {}}, JSON
        return None

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        limit = min(int(query.get("limit", ["100"])[0]), 200)

        def at(value: str) -> datetime:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))

        low = at(query["updated_at_min"][0]) if "updated_at_min" in query else datetime.min.replace(tzinfo=UTC)
        high = at(query["updated_at_max"][0]) if "updated_at_max" in query else datetime.max.replace(tzinfo=UTC)
        # newest created first; the cursor is the last one handed over, so a tracking updated meanwhile (out
        # of the window now) moves no other one
        listed = sorted(
            (t for t in self.records if low <= at(t["updated_at"]) <= high),
            key=lambda t: (t["created_at"], t["id"]),
            reverse=True,
        )
        total = len(listed)
        if "cursor" in query:
            last = tuple(json.loads(base64.urlsafe_b64decode(query["cursor"][0])))
            listed = [t for t in listed if (t["created_at"], t["id"]) < last]
        page = listed[:limit]
        more = len(listed) > limit
        cursor = (
            base64.urlsafe_b64encode(json.dumps([page[-1]["created_at"], page[-1]["id"]]).encode()).decode()
            if more
            else None
        )
        pagination = {"total": total, "next_cursor": cursor, "has_next_page": more}
        return 200, {"meta": {"code": 200}, "data": {"pagination": pagination, "trackings": page}}, JSON


class FakeAmazon(FakeListApi):
    """Login with Amazon's token endpoint (``POST /auth/o2/token``, form-encoded ``grant_type=refresh_token``,
    ``refresh_token``, ``client_id``, ``client_secret``; a wrong one: 400 ``invalid_grant``) and SP-API's
    ``GET /orders/v0/orders``: ``x-amz-access-token`` (an LWA token it issued, else 403 ``Unauthorized``),
    ``MarketplaceIds`` (required), ``LastUpdatedAfter``/``LastUpdatedBefore`` (the latter refused when less
    than two minutes ago) and ``MaxResultsPerPage`` (≤ 100), or ``NextToken``; orders by purchase date, not
    by update; ``{"payload": {"Orders", "NextToken", "LastUpdatedBefore"}}``. A 429 is ``QuotaExceeded``."""

    def __init__(
        self,
        refresh_token: str,
        client_id: str,
        client_secret: str,
        clock: Callable[[], datetime] | None = None,
        **server: Any,
    ) -> None:
        super().__init__(**server)
        self.grant = {"refresh_token": refresh_token, "client_id": client_id, "client_secret": client_secret}
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tokens: list[str] = []
        self.queries: dict[str, dict[str, Any]] = {}  # NextToken -> the query it continues

    def identity(self, record: dict[str, Any]) -> Any:
        return record["AmazonOrderId"]

    def respond_post(self, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        if urlsplit(path).path != "/auth/o2/token":
            return 404, {"error": "not found"}, JSON
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "refresh_token" or any(form.get(k) != v for k, v in self.grant.items()):
            return (
                400,
                {"error": "invalid_grant", "error_description": "The request has an invalid grant parameter"},
                JSON,
            )
        with self.lock:
            self.tokens.append(f"Atza|sandbox-{len(self.tokens) + 1}")
            return 200, {"access_token": self.tokens[-1], "token_type": "bearer", "expires_in": 3600}, JSON

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if path != "/orders/v0/orders":
            return 404, {"errors": [{"code": "NotFound", "message": "Resource not found"}]}, JSON
        if headers.get("x-amz-access-token") not in self.tokens:
            error = {"code": "Unauthorized", "message": "Access to requested resource is denied."}
            return 403, {"errors": [error]}, JSON
        return None

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        def invalid(what: str) -> tuple[int, Any, dict[str, str]]:
            return 400, {"errors": [{"code": "InvalidInput", "message": what}]}, JSON

        if not query.get("MarketplaceIds"):
            return invalid("MarketplaceIds is required")
        if "NextToken" in query:
            asked = self.queries.get(query["NextToken"][0])
            if asked is None:
                return invalid("Invalid NextToken")
        else:
            asked = {k: v[0] for k, v in query.items()}
            asked["offset"] = 0
        low = datetime.fromisoformat(asked["LastUpdatedAfter"].replace("Z", "+00:00"))
        high = datetime.fromisoformat(asked["LastUpdatedBefore"].replace("Z", "+00:00"))
        if high > self.clock() - timedelta(minutes=2):
            return invalid("LastUpdatedBefore must be at least 2 minutes before the time of the request")
        size = min(int(asked.get("MaxResultsPerPage", 100)), 100)
        listed = sorted(
            (
                o
                for o in self.records
                if low <= datetime.fromisoformat(o["LastUpdateDate"].replace("Z", "+00:00")) <= high
                and o["MarketplaceId"] in asked["MarketplaceIds"].split(",")
            ),
            key=lambda o: (o["PurchaseDate"], o["AmazonOrderId"]),
        )
        offset = int(asked["offset"])
        page = listed[offset : offset + size]
        payload: dict[str, Any] = {"Orders": page, "LastUpdatedBefore": asked["LastUpdatedBefore"]}
        if offset + size < len(listed):
            token = base64.urlsafe_b64encode(f"{len(self.queries)}".encode()).decode()
            self.queries[token] = {**asked, "offset": offset + size}
            payload["NextToken"] = token
        return 200, {"payload": payload}, JSON


class FakeDouyin(FakeListApi):
    """The Doudian open platform's ``GET /token/create`` and ``GET /order/searchList``. Every call's ``sign``
    is checked with the fake's own implementation of Doudian's documented algorithm (md5 or hmac-sha256
    over ``secret + app_key… method… param_json… timestamp… v2 + secret``), and the timestamp must be China
    time within 10 minutes. ``token.create`` (``grant_type=authorization_self`` for the fake's shop) issues
    a token that ``order.searchList`` then requires; the list is by ``update_time`` ascending (ties by
    order id), ``page`` from 0, ``size`` ≤ 100. Errors are HTTP 200 with a ``code`` other than 10000
    (``throttle_code`` answers every list call while set)."""

    def __init__(
        self, app_key: str, app_secret: str, shop_id: str, clock: Callable[[], datetime] | None = None, **server: Any
    ) -> None:
        super().__init__(**server)
        self.app_key, self.app_secret, self.shop_id = app_key, app_secret, str(shop_id)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tokens: list[str] = []
        self.throttle_code: int | None = None

    def identity(self, record: dict[str, Any]) -> Any:
        return record["order_id"]

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if path not in ("/token/create", "/order/searchList"):
            return 404, {"code": 40001, "msg": "method not found"}, JSON
        return None

    def checked(self, query: dict[str, list[str]]) -> dict[str, Any] | None:
        """Why the call's common parameters are refused (Doudian's error body), or None."""
        one = {k: v[0] for k, v in query.items()}
        how = one.get("sign_method", "md5")
        text = "".join(f"{k}{one.get(k, '')}" for k in ("app_key", "method", "param_json", "timestamp", "v"))
        plain = f"{self.app_secret}{text}{self.app_secret}".encode()
        if how == "md5":
            expected = hashlib.md5(plain).hexdigest()  # noqa: S324 (the platform's scheme)
        else:
            expected = hmac.new(self.app_secret.encode(), plain, hashlib.sha256).hexdigest()
        if one.get("app_key") != self.app_key or not hmac.compare_digest(expected, one.get("sign", "")):
            return {"code": 40004, "msg": "签名校验失败", "sub_code": "isv.sign-invalid"}
        sent = datetime.strptime(one.get("timestamp", ""), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
        if abs((self.clock() - sent).total_seconds()) > 600:
            return {"code": 40005, "msg": "timestamp expired"}
        return None

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        refused = self.checked(query)
        if refused is not None:
            return 200, refused, JSON
        method, params = query["method"][0], json.loads(query["param_json"][0])
        if method == "token.create":
            if params.get("grant_type") != "authorization_self" or str(params.get("shop_id")) != self.shop_id:
                return 200, {"code": 30002, "msg": "shop not authorised for this app"}, JSON
            self.tokens.append(f"sandbox-doudian-token-{len(self.tokens) + 1}")
            data = {"access_token": self.tokens[-1], "expires_in": 604800, "shop_id": self.shop_id}
            return 200, {"code": 10000, "msg": "success", "data": data}, JSON
        if query.get("access_token", [""])[0] not in self.tokens:
            return (
                200,
                {"code": 30001, "msg": "access_token不存在或已过期", "sub_code": "isv.access-token-expired"},
                JSON,
            )
        if self.throttle_code is not None:
            return 200, {"code": self.throttle_code, "msg": "调用过于频繁", "sub_code": "isv.access-limited"}, JSON
        if params.get("order_by") != "update_time" or params.get("order_asc") is not True:
            return 200, {"code": 40010, "msg": "order_by update_time ascending expected here"}, JSON
        start, end = int(params["update_time_start"]), int(params["update_time_end"])
        size, page = min(int(params.get("size", 10)), 100), int(params.get("page", 0))
        listed = sorted(
            (o for o in self.records if start <= int(o["update_time"]) <= end),
            key=lambda o: (int(o["update_time"]), str(o["order_id"])),
        )
        data = {
            "shop_order_list": listed[page * size : (page + 1) * size],
            "total": len(listed),
            "page": page,
            "size": size,
        }
        return 200, {"code": 10000, "msg": "success", "data": data}, JSON


class FakeYouzan(FakeListApi):
    """Youzan Cloud's ``POST /auth/token`` (``authorize_type=silent`` with the app's client id and secret and
    the shop's ``grant_id``), ``POST /api/youzan.trades.sold.get/4.0.4?access_token=…`` (a JSON body:
    ``start_update``/``end_update`` in China time, both ends included; ``page_no`` from 1; ``page_size`` ≤
    100; trades newest created first, not by update, each ``{"full_order_info": {"order_info", "pay_info"}}``)
    and ``POST /api/youzan.trade.refund.search/3.0.1`` (``update_time_start``/``update_time_end`` in epoch
    seconds; refunds newest created first; past page 100 or 3,000 deep refused). Records put are trades
    (``{"full_order_info": …}``) or refunds (``{"refund_id", …, "created", "modified"}``). A token it did
    not issue: ``{"gw_err_resp": {"err_code": 4203}}``;
    ``throttle_code`` answers every list call with that gateway code while set."""

    def __init__(self, client_id: str, client_secret: str, kdt_id: str, **server: Any) -> None:
        super().__init__(**server)
        self.grant = {"client_id": client_id, "client_secret": client_secret, "grant_id": str(kdt_id)}
        self.tokens: list[str] = []
        self.throttle_code: int | None = None

    def identity(self, record: dict[str, Any]) -> Any:
        if "full_order_info" in record:
            return ("trade", record["full_order_info"]["order_info"]["tid"])
        return ("refund", record["refund_id"])

    def respond_post(self, path: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        asked = json.loads(body or b"{}")
        with self.lock:
            if parts.path == "/auth/token":
                if asked.get("authorize_type") != "silent" or any(
                    str(asked.get(k)) != v for k, v in self.grant.items()
                ):
                    return 200, {"success": False, "code": 4001, "message": "client_id or client_secret invalid"}, JSON
                self.tokens.append(f"sandbox-youzan-token-{len(self.tokens) + 1}")
                data = {
                    "access_token": self.tokens[-1],
                    "expires": 1800000000000,
                    "authority_id": self.grant["grant_id"],
                }
                return 200, {"success": True, "code": 200, "data": data}, JSON
            trades = parts.path == "/api/youzan.trades.sold.get/4.0.4"
            if not trades and parts.path != "/api/youzan.trade.refund.search/3.0.1":
                return 404, {"gw_err_resp": {"err_code": 4040, "err_msg": "api not found"}}, JSON
            if parse_qs(parts.query).get("access_token", [""])[0] not in self.tokens:
                return 200, {"gw_err_resp": {"err_code": 4203, "err_msg": "access_token无效"}}, JSON
            if self.status is not None:
                return self.status, {"error": "injected"}, JSON
            if self.throttle_code is not None:
                return 200, {"gw_err_resp": {"err_code": self.throttle_code, "err_msg": "调用频率超限"}}, JSON
            self.requests.append({"api": [parts.path.split("/")[2]], **{k: [str(v)] for k, v in asked.items()}})
            if self.before_page is not None:
                self.before_page(len(self.requests))

            def at(value: str) -> datetime:
                return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)

            size, page = min(int(asked.get("page_size", 20)), 100), int(asked.get("page_no", 1))
            if trades:
                low, high = at(asked["start_update"]), at(asked["end_update"])
                listed = sorted(
                    (
                        r["full_order_info"]
                        for r in self.records
                        if "full_order_info" in r
                        and low <= at(r["full_order_info"]["order_info"]["update_time"]) <= high
                    ),
                    key=lambda t: t["order_info"]["created"],
                    reverse=True,
                )
                cut = [{"full_order_info": t} for t in listed[(page - 1) * size : page * size]]
                data: dict[str, Any] = {"total_results": len(listed), "full_order_info_list": cut}
            else:
                if page > 100 or page * size > 3000:
                    return 200, {"success": False, "code": 53003, "message": "超过ES搜索最大深度"}, JSON
                low = datetime.fromtimestamp(int(asked["update_time_start"]), UTC)
                high = datetime.fromtimestamp(int(asked["update_time_end"]), UTC)
                listed = sorted(
                    (r for r in self.records if "refund_id" in r and low <= at(r["modified"]) <= high),
                    key=lambda r: r["created"],
                    reverse=True,
                )
                data = {"total": len(listed), "refunds": listed[(page - 1) * size : page * size]}
            return 200, {"success": True, "code": 200, "data": data}, JSON

    def refuse(self, path: str, headers: Mapping[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        return 405, {"gw_err_resp": {"err_code": 4050, "err_msg": "POST only"}}, JSON

    def answer(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        raise AssertionError("unreachable: every GET is refused")


def list_fakes(secrets: Mapping[str, Any], tenant: str = "demo") -> dict[str, FakeListApi]:
    """One fake per list-API platform, taking the ``tenant``'s pull credentials from the sandbox's secrets
    (a platform without them refuses every call)."""
    pull = secrets.get("pull", {})

    def credentials(source: str) -> dict[str, str]:
        found: dict[str, str] = pull.get(source, {}).get(tenant, {})
        return found

    return {
        "stripe": FakeStripe(credentials("stripe").get("api_key", "")),
        "zendesk": FakeZendesk(credentials("zendesk").get("email", ""), credentials("zendesk").get("api_token", "")),
        "aftership": FakeAfterShip(credentials("aftership").get("api_key", "")),
        "amazon": FakeAmazon(
            credentials("amazon").get("refresh_token", ""),
            credentials("amazon").get("client_id", ""),
            credentials("amazon").get("client_secret", ""),
        ),
        "douyin": FakeDouyin(
            credentials("douyin").get("app_key", ""),
            credentials("douyin").get("app_secret", ""),
            credentials("douyin").get("shop_id", ""),
        ),
        "youzan": FakeYouzan(
            credentials("youzan").get("client_id", ""),
            credentials("youzan").get("client_secret", ""),
            credentials("youzan").get("kdt_id", ""),
        ),
    }
