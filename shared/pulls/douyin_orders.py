"""Douyin shop (抖店): the orders a shop changed since a time, oldest change first, through the Doudian open
platform's ``order.searchList``, for reconciliation (a push that Doudian gave up on is not sent again).

Every call is a signed GET to ``https://openapi-fxg.jinritemai.com/<method with / for .>`` with the common
parameters ``app_key``, ``method``, ``param_json`` (the call's own parameters as JSON, keys sorted, no
spaces), ``timestamp`` (``yyyy-MM-dd HH:mm:ss``, China Standard Time), ``v=2``, ``sign_method`` and
``sign``: ``md5`` is MD5 of ``secret + "app_key" + key + "method" + method + "param_json" + json +
"timestamp" + timestamp + "v" + "2" + secret``; ``hmac-sha256`` is HMAC-SHA256 of the same string keyed with
the secret; lower-case hex. Calls other than ``token.create`` carry ``access_token``.

A self-use app (自用型应用) gets its token with ``token.create`` (``grant_type=authorization_self`` and the
``shop_id``), so the pull secret holds only ``{"app_key", "app_secret", "shop_id"}`` and each run asks for
a token once; an app that needs the shop's authorisation code (an ISV's) is not supported yet.

``order.searchList`` takes ``update_time_start``/``update_time_end`` (epoch seconds), ``order_by=
update_time``, ``order_asc=true``, ``page`` (from 0) and ``size`` (≤ 100) and answers ``{"code": 10000,
"data": {"shop_order_list", "total", "page", "size"}}``. Pages over a list that moves under us skip a
record (one changed while we page moves to the end, the rest move up), so the pager pages by key: after
each page it asks again from the newest ``update_time`` it got (inclusive), page 0, dropping orders it
already handed over; only a page of one second is followed by the next page number. Errors come as
``code`` ≠ 10000 with HTTP 200: a call-frequency limit is throttling; an invalid or expired token, a
wrong signature or a missing permission fails the run with "the shop must authorise the app again".
The codes follow Doudian's public documentation and are **unconfirmed against a live shop**.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, unquoted
from shared.sources.douyin import API_ORDER
from shared.sources.tracking import CHINA

PAGE_SIZE = 100
OK = 10000
# call frequency limited (isv.access-limited / 调用过于频繁)
THROTTLED = {50002, 40017}
# invalid, expired or missing token; a wrong signature or app key; no permission for the app or the shop
AUTHORISATION = {30001, 30002, 40004, 40005, 40006, 50001}
SignMethod = Literal["md5", "hmac-sha256"]


def doudian_sign(app_key: str, secret: str, method: str, param_json: str, timestamp: str, how: SignMethod) -> str:
    """Doudian's ``sign`` over the common parameters (see the module's docstring)."""
    text = f"app_key{app_key}method{method}param_json{param_json}timestamp{timestamp}v2"
    if how == "md5":
        return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest()  # noqa: S324 (the platform's scheme)
    return hmac.new(secret.encode(), f"{secret}{text}{secret}".encode(), hashlib.sha256).hexdigest()


def param_json(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class HttpGet(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...


class DouyinOrders:
    """The reconcile pager for one shop: ``credentials`` is the pull secret ``{"app_key", "app_secret",
    "shop_id"}`` of a self-use app."""

    def __init__(
        self,
        job: ReconcileJob,
        credentials: Mapping[str, Any],
        http: HttpGet,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        missing = [k for k in ("app_key", "app_secret", "shop_id") if not credentials.get(k)]
        if missing:
            raise PullFailed(f"douyin: the pull secret lacks {missing}")
        self.job, self.http, self.clock, self.timeout = job, http, clock, timeout
        self.app_key, self.secret = str(credentials["app_key"]), str(credentials["app_secret"])
        self.shop_id = str(credentials["shop_id"])
        self.how: SignMethod = "hmac-sha256" if job.sign_method == "hmac-sha256" else "md5"
        self.base = job.endpoint.rstrip("/")
        self._token: str | None = None

    def url(self, method: str, params: Mapping[str, Any], token: str | None) -> str:
        body = param_json(params)
        timestamp = self.clock().astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
        query = {
            "app_key": self.app_key,
            "method": method,
            "param_json": body,
            "timestamp": timestamp,
            "v": "2",
            "sign_method": self.how,
            "sign": doudian_sign(self.app_key, self.secret, method, body, timestamp, self.how),
            **({"access_token": token} if token is not None else {}),
        }
        return f"{self.base}/{method.replace('.', '/')}?{urlencode(query)}"

    def call(self, method: str, params: Mapping[str, Any], token: str | None) -> dict[str, Any]:
        response = self.http.get(self.url(method, params, token), {"Accept": "application/json"}, self.timeout)
        if response.status == 429:
            raise Throttled(f"douyin {method}: 429 Too Many Requests")
        if response.status != 200:
            raise PullFailed(f"douyin {method} {answered(response)}")
        try:
            document = json.loads(response.text)
            code = int(document.get("code"))
        except (ValueError, TypeError, AttributeError) as exc:
            raise PullFailed(f"douyin {method}: the answer is not usable ({type(exc).__name__})") from exc
        if code == OK:
            data = document.get("data")
            if not isinstance(data, dict):
                raise PullFailed(f"douyin {method}: the answer has no data object")
            return data
        said = "; ".join(
            unquoted(str(document[k]), token, self._token, self.secret)[:100]
            for k in ("msg", "sub_code", "sub_msg")
            if document.get(k)
        )
        if code in THROTTLED:
            raise Throttled(f"douyin {method}: call limit (code {code}: {said})")
        if code in AUTHORISATION:
            raise PullFailed(
                f"douyin {method}: not authorised (code {code}: {said}); the shop must authorise the app again"
            )
        raise PullFailed(f"douyin {method}: error (code {code}: {said})")

    def token(self) -> str:
        if self._token is None:
            grant = {"code": "", "grant_type": "authorization_self", "shop_id": self.shop_id}
            data = self.call("token.create", grant, None)
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise PullFailed("douyin token.create: the answer has no access_token")
            self._token = token
        return self._token

    def page(self, start: datetime, page: int) -> list[dict[str, Any]]:
        params = {
            "update_time_start": int(start.timestamp()),
            "update_time_end": int(self.clock().timestamp()),
            "order_by": "update_time",
            "order_asc": True,
            "page": page,
            "size": PAGE_SIZE,
        }
        data = self.call("order.searchList", params, self.token())
        orders = data.get("shop_order_list") or []
        if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
            raise PullFailed("douyin order.searchList: shop_order_list is not a list of objects")
        return orders

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        start, number = since.replace(microsecond=0), 0
        seen: set[tuple[str, str]] = set()
        before: list[tuple[str, str]] = []
        while True:
            orders = self.page(start, number)
            pulled = [self._pulled(o) for o in orders]
            keys = [(str(o.get("order_id")), str(o.get("update_time"))) for o in orders]
            if number > 0 and keys == before:  # a page number that does not move on would be followed forever
                raise PullFailed(
                    "douyin order.searchList: the next page answered the same orders as the one before; the run stops"
                )
            before = keys
            fresh = [p for p, k in zip(pulled, keys, strict=True) if k not in seen]
            seen |= set(keys)
            if fresh:
                yield fresh
            if len(orders) < PAGE_SIZE:
                return
            newest = max(p.changed_at for p in pulled)
            if fresh and newest > start:
                start, number = newest, 0  # from the newest change got (inclusive: its second again)
            else:
                number += 1  # a page of one second: the next page of it

    @staticmethod
    def _pulled(order: dict[str, Any]) -> Pulled:
        try:
            changed = datetime.fromtimestamp(int(order["update_time"]), UTC)
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise PullFailed(f"douyin: an order without a usable update_time ({type(exc).__name__})") from exc
        return Pulled.of(changed, order, API_ORDER)
