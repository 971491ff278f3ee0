"""Youzan (有赞): the trades a shop changed since a time, oldest change first, through Youzan Cloud's
``youzan.trades.sold.get``, for reconciliation (a push Youzan gave up on is not sent again).

1. A self-use app (自用型应用) asks ``POST https://open.youzanyun.com/auth/token`` with ``{"client_id",
   "client_secret", "authorize_type": "silent", "grant_id": <the shop's kdt_id>}`` for an access token
   (good for days; asked for once a run), so the pull secret holds ``{"client_id", "client_secret",
   "kdt_id"}``.
2. ``POST https://open.youzanyun.com/api/youzan.trades.sold.get/4.0.4?access_token=…`` with the JSON body
   ``{"start_update", "end_update", "page_no", "page_size"}`` (China time, ``yyyy-MM-dd HH:mm:ss``;
   100 a page) answers ``{"success": true, "code": 200, "data": {"total_results", "full_order_info_list":
   [{"full_order_info": {"order_info": {"tid", "status", "update_time", …}, "pay_info": {"payment"}}}]}}``.

The list comes newest created first, not by update, and a page number over a list that moves skips a
record, so each window of update time is read from its last page back (as TOP advises for Taobao's list)
and handed over oldest change first (``shared/pulls/windows.py``). Errors: ``success: false`` with a
``code``, or the gateway's ``{"gw_err_resp": {"err_code", "err_msg"}}``; a frequency limit (or HTTP 429)
is throttling, an invalid or expired token or a missing permission fails the run with "the shop must
authorise the app again". The codes follow Youzan Cloud's public documentation and are **unconfirmed
against a live shop**; refunds are not listed yet (a refund's push that was lost is not pulled).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled
from shared.pulls.windows import by_windows
from shared.sources.tracking import CHINA
from shared.sources.youzan import API_TRADE

API = "youzan.trades.sold.get"
VERSION = "4.0.4"
PAGE_SIZE = 100
TIME = "%Y-%m-%d %H:%M:%S"
THROTTLED = {4004, 429}  # the app's call frequency
AUTHORISATION = {4201, 4202, 4203, 4204, 4205, 4206, 4207, 4208}  # token invalid / expired / no permission


class HttpPost(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any: ...


def china(at: datetime) -> str:
    return at.astimezone(CHINA).strftime(TIME)


class YouzanTrades:
    """The reconcile pager for one shop: ``credentials`` is the pull secret ``{"client_id",
    "client_secret", "kdt_id"}`` of a self-use app."""

    def __init__(
        self,
        job: ReconcileJob,
        credentials: Mapping[str, Any],
        http: HttpPost,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        missing = [k for k in ("client_id", "client_secret", "kdt_id") if not credentials.get(k)]
        if missing:
            raise PullFailed(f"youzan: the pull secret lacks {missing}")
        self.job, self.http, self.clock, self.timeout = job, http, clock, timeout
        self.grant = {
            "client_id": str(credentials["client_id"]),
            "client_secret": str(credentials["client_secret"]),
            "authorize_type": "silent",
            "grant_id": str(credentials["kdt_id"]),
        }
        self.base = job.endpoint.rstrip("/")
        self._token: str | None = None

    def _post(self, what: str, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A call's ``data``, or the error it names (never quoting the token or the secret)."""
        response = self.http.post(
            url, json.dumps(dict(body)).encode(), {"Content-Type": "application/json"}, self.timeout
        )
        if response.status == 429:
            raise Throttled(f"youzan {what}: 429 Too Many Requests")
        if response.status != 200:
            raise PullFailed(f"youzan {what} {answered(response)}")
        try:
            document = json.loads(response.text)
            if not isinstance(document, dict):
                raise TypeError("the answer is not an object")
        except (ValueError, TypeError) as exc:
            raise PullFailed(f"youzan {what}: the answer is not usable ({type(exc).__name__})") from exc
        error = document.get("gw_err_resp")
        if isinstance(error, dict) or document.get("success") is not True:
            error = error if isinstance(error, dict) else document
            code = error.get("err_code", error.get("code"))
            code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
            said = str(error.get("err_msg") or error.get("message") or "")[:200]
            if code in THROTTLED:
                raise Throttled(f"youzan {what}: call limit (code {code}: {said})")
            if code in AUTHORISATION:
                raise PullFailed(
                    f"youzan {what}: not authorised (code {code}: {said}); the shop must authorise the app again"
                )
            raise PullFailed(f"youzan {what}: error (code {code}: {said})")
        data = document.get("data")
        if not isinstance(data, dict):
            raise PullFailed(f"youzan {what}: the answer has no data object")
        return data

    def token(self) -> str:
        if self._token is None:
            data = self._post("auth/token", f"{self.base}/auth/token", self.grant)
            token = data.get("access_token")
            if not isinstance(token, str) or not token:
                raise PullFailed("youzan auth/token: the answer has no access_token")
            self._token = token
        return self._token

    def call(self, start: datetime, end: datetime, page: int) -> tuple[int, list[dict[str, Any]]]:
        """One page of the trades updated in [start, end]: (the window's total, the page's trades)."""
        url = f"{self.base}/api/{API}/{VERSION}?access_token={self.token()}"
        body = {"start_update": china(start), "end_update": china(end), "page_no": page, "page_size": PAGE_SIZE}
        data = self._post(API, url, body)
        try:
            trades = [entry["full_order_info"] for entry in data.get("full_order_info_list") or []]
            if not all(isinstance(t, dict) and isinstance(t.get("order_info"), dict) for t in trades):
                raise TypeError("a trade has no order_info")
            return int(data.get("total_results") or 0), trades
        except (KeyError, TypeError, ValueError) as exc:
            raise PullFailed(f"youzan {API}: the page is not usable ({type(exc).__name__})") from exc

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        span = timedelta(minutes=self.job.window_minutes)
        return by_windows(since, self.clock(), span, self.job.max_pages * PAGE_SIZE, self.read, PAGE_SIZE)

    def read(self, start: datetime, end: datetime, most: int | None) -> list[Pulled] | None:
        """The window's trades (page 1 says how many; then the pages from the last back to the first);
        None when there are more than ``most``."""
        total, first = self.call(start, end, 1)
        if most is not None and total > most:
            return None
        trades, pages = list(first), -(-total // PAGE_SIZE)
        if pages > 1:  # page 1 again last: a trade that moved up onto it meanwhile is read there
            for page in range(pages, 0, -1):
                trades += self.call(start, end, page)[1]
        return [self._pulled(t) for t in trades]

    @staticmethod
    def _pulled(trade: dict[str, Any]) -> Pulled:
        try:
            changed = datetime.strptime(str(trade["order_info"]["update_time"]), TIME).replace(tzinfo=CHINA)
        except (KeyError, ValueError, TypeError) as exc:
            raise PullFailed(f"youzan: a trade without a usable update_time ({type(exc).__name__})") from exc
        return Pulled(changed, json.dumps(trade, sort_keys=True, separators=(",", ":"), ensure_ascii=False), API_TRADE)
