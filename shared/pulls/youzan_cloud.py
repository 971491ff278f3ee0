"""Youzan (有赞): the trades and refunds a shop changed since a time, oldest change first, through Youzan
Cloud, for reconciliation (a push Youzan gave up on is not sent again).

1. A self-use app (自用型应用) asks ``POST https://open.youzanyun.com/auth/token`` with ``{"client_id",
   "client_secret", "authorize_type": "silent", "grant_id": <the shop's kdt_id>}`` for an access token
   (good for days; asked for once a run), so the pull secret holds ``{"client_id", "client_secret",
   "kdt_id"}``.
2. ``POST https://open.youzanyun.com/api/<api>/<version>?access_token=…`` with a JSON body, per window of
   update time, 100 a page (``page_no`` from 1):
   - ``youzan.trades.sold.get`` 4.0.4: ``start_update``/``end_update`` in China time (``yyyy-MM-dd
     HH:mm:ss``); ``data.total_results`` and ``data.full_order_info_list[].full_order_info`` (``order_info``
     with ``tid``, ``status``, ``update_time``; ``pay_info.payment``);
   - ``youzan.trade.refund.search`` 3.0.1: ``update_time_start``/``update_time_end`` in epoch seconds;
     ``data.total`` and ``data.refunds[]`` (``refund_id``, ``tid``, ``status``, ``return_goods``,
     ``refund_fee`` in yuan, ``modified`` in China time). It refuses pages past 100 and ``page_no ×
     page_size`` past 3,000, so a window never holds more than 3,000 of either: a busier one is halved, down
     to a second (both lists' bounds are whole seconds), and a second with more fails the run rather than
     hand over the first 3,000 and move the watermark past the rest.

Neither list comes by update, and a page number over a list that moves skips a record, so each window is
read from its last page back and page 1 again (as TOP advises for Taobao's lists) and handed over oldest
change first (``shared/pulls/windows.py``). Errors: ``success: false`` with a ``code``, or the gateway's
``{"gw_err_resp": {"err_code", "err_msg"}}``; a frequency limit (or HTTP 429) is throttling, an invalid
or expired token or a missing permission fails the run with "the shop must authorise the app again".
The codes follow Youzan Cloud's public documentation and are **unconfirmed against a live shop**.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, unquoted
from shared.pulls.windows import by_windows
from shared.sources.tracking import CHINA
from shared.sources.youzan import API_REFUND, API_TRADE

PAGE_SIZE = 100
DEEPEST = 3000  # the refund search's page_no × page_size limit (ES depth)
SMALLEST = timedelta(seconds=1)  # the lists' bounds are whole seconds
TIME = "%Y-%m-%d %H:%M:%S"
THROTTLED = {4004, 429}  # the app's call frequency
AUTHORISATION = {4201, 4202, 4203, 4204, 4205, 4206, 4207, 4208}  # token invalid / expired / no permission


class HttpPost(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any: ...


def china(at: datetime) -> str:
    return at.astimezone(CHINA).strftime(TIME)


class YouzanChanges:
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
            said = str(error.get("err_msg") or error.get("message") or "")
            said = unquoted(said, self._token, self.grant["client_secret"])[:200]
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

    def call(self, topic: str, start: datetime, end: datetime, page: int) -> tuple[int, list[dict[str, Any]]]:
        """One page of ``topic``'s records updated in [start, end]: (the window's total, the page's records)."""
        if topic == API_TRADE:
            api = "youzan.trades.sold.get/4.0.4"
            window: dict[str, Any] = {"start_update": china(start), "end_update": china(end)}
        else:
            api = "youzan.trade.refund.search/3.0.1"
            window = {"update_time_start": int(start.timestamp()), "update_time_end": int(end.timestamp())}
        data = self._post(
            api.split("/")[0],
            f"{self.base}/api/{api}?access_token={self.token()}",
            {
                **window,
                "page_no": page,
                "page_size": PAGE_SIZE,
            },
        )
        try:
            if topic == API_TRADE:
                records = [entry["full_order_info"] for entry in data.get("full_order_info_list") or []]
                total = int(data.get("total_results") or 0)
                usable = all(isinstance(r, dict) and isinstance(r.get("order_info"), dict) for r in records)
            else:
                records, total = list(data.get("refunds") or []), int(data.get("total") or 0)
                usable = all(isinstance(r, dict) for r in records)
            if not usable:
                raise TypeError("a record is not an object")
            return total, records
        except (KeyError, TypeError, ValueError) as exc:
            raise PullFailed(f"youzan {api.split('/')[0]}: the page is not usable ({type(exc).__name__})") from exc

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        span = timedelta(minutes=self.job.window_minutes)
        most = min(self.job.max_pages * PAGE_SIZE, DEEPEST)
        return by_windows(since, self.clock(), span, most, self.read, PAGE_SIZE, smallest=SMALLEST)

    def read(self, start: datetime, end: datetime, most: int | None) -> list[Pulled] | None:
        """The window's trades and refunds (page 1 of each says how many; then each from its last page back
        to the first); None when either holds more than ``most``."""
        firsts = {topic: self.call(topic, start, end, 1) for topic in (API_TRADE, API_REFUND)}
        if most is not None and any(total > most for total, _ in firsts.values()):
            return None
        if any(total > DEEPEST for total, _ in firsts.values()):  # a second the lists cannot give whole
            raise PullFailed(
                f"youzan: more than {DEEPEST} changes in one second from {china(start)}; the lists give no more "
                "than that, so the window cannot be read whole"
            )
        pulled: list[Pulled] = []
        for topic, (total, first) in firsts.items():
            records, pages = list(first), min(-(-total // PAGE_SIZE), DEEPEST // PAGE_SIZE)
            if pages > 1:  # page 1 again last: a record that moved up onto it meanwhile is read there
                for page in range(pages, 0, -1):
                    records += self.call(topic, start, end, page)[1]
            pulled += [self._pulled(topic, r) for r in records]
        return pulled

    @staticmethod
    def _pulled(topic: str, record: dict[str, Any]) -> Pulled:
        try:
            changed = record["order_info"]["update_time"] if topic == API_TRADE else record["modified"]
            at = datetime.strptime(str(changed), TIME).replace(tzinfo=CHINA)
        except (KeyError, ValueError, TypeError) as exc:
            what = "update_time" if topic == API_TRADE else "modified"
            raise PullFailed(f"youzan: a {topic} record without a usable {what} ({type(exc).__name__})") from exc
        return Pulled.of(at, record, topic)
