"""Taobao / Tmall through the Taobao Open Platform (TOP) API: the trades and refunds a shop changed since
a time, oldest change first, for reconciliation (Taobao pushes nothing a serverless endpoint can take).

Each call is a signed POST to the gateway (``https://gw.api.taobao.com/router/rest``), form-encoded:
the common parameters ``method``, ``app_key``, ``session`` (the shop's authorisation), ``timestamp``
(``yyyy-MM-dd HH:mm:ss``, China Standard Time; TOP allows 10 minutes of skew), ``format=json``,
``v=2.0``, ``sign_method`` and ``sign``, plus the API's own. ``sign`` (``top_sign``) is over every
other parameter, sorted by name, each name followed by its value: ``md5`` is
``MD5(secret + that + secret)``, ``hmac`` HMAC-MD5 and ``hmac-sha256`` HMAC-SHA256 of it keyed with the
app secret; upper-case hex.

The two incremental APIs, each over at most a day of modification time:

- ``taobao.trades.sold.increment.get`` (``start_modified``/``end_modified``; trades, newest first);
- ``taobao.refunds.receive.get`` (the same window; refunds the shop received).

Both answer ``total_results`` and a page (``page_no``, up to 100 a page) ordered by ``modified``,
newest first. A record modified while we page leaves the window and every later record moves up a
place, so paging from the first page could skip one; TOP's advice is to page from the last page back,
which only ever reads a record twice (the compare drops it). So per window: page 1 says the totals, then
pages N..1 are read; a window that holds more than a run's pages is halved first. The window's trades
and refunds are then merged and handed over oldest change first, so the reconcile watermark (the
newest change handed over) never passes a change not yet handed over.

Errors come as ``{"error_response": {"code", "msg", "sub_code", "sub_msg"}}`` with HTTP 200: code 7
(the app's call limit) is throttling (the run stops, the watermark keeps its progress); an invalid,
expired or missing session or signature, or a missing permission, means the shop must authorise the app
again; anything else fails the run (retried, then dead-lettered). No error text carries the session or
the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, unquoted
from shared.pulls.windows import by_windows
from shared.sources.taobao import REFUND_TOPIC, TRADE_TOPIC
from shared.sources.tracking import CHINA

PAGE_SIZE = 100  # TOP's largest page for both APIs
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SignMethod = Literal["md5", "hmac", "hmac-sha256"]

# (API, its response's key, the list's two keys, the fields asked for)
APIS: dict[str, tuple[str, str, tuple[str, str], str]] = {
    TRADE_TOPIC: (
        "taobao.trades.sold.increment.get",
        "trades_sold_increment_get_response",
        ("trades", "trade"),
        "tid,type,status,payment,created,modified,pay_time,end_time,buyer_open_uid",
    ),
    REFUND_TOPIC: (
        "taobao.refunds.receive.get",
        "refunds_receive_get_response",
        ("refunds", "refund"),
        "refund_id,tid,oid,status,refund_fee,total_fee,has_good_return,good_status,reason,created,modified",
    ),
}
THROTTLED = {7}  # App Call Limited
# Invalid signature (25), missing / invalid / expired session (26, 27), invalid app key (29), no
# permission for the app (11) or the shop (12)
AUTHORISATION = {11, 12, 25, 26, 27, 29}
_BAN = re.compile(r"(\d+)\s*more seconds")


def top_sign(params: Mapping[str, str], secret: str, method: SignMethod) -> str:
    """TOP's ``sign`` over ``params`` (all but ``sign`` itself; empty values are left out)."""
    text = "".join(f"{k}{v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
    if method == "md5":
        digest = hashlib.md5((secret + text + secret).encode()).hexdigest()  # noqa: S324 - TOP's scheme
    elif method == "hmac":
        digest = hmac.new(secret.encode(), text.encode(), hashlib.md5).hexdigest()
    else:
        digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return digest.upper()


def china(at: datetime) -> str:
    return at.astimezone(CHINA).strftime(TIME_FORMAT)


class HttpPost(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any: ...


class TaobaoChanges:
    """The reconcile pager for one shop: ``credentials`` is the pull secret ``{"app_key", "app_secret",
    "session"}``."""

    def __init__(
        self,
        job: ReconcileJob,
        credentials: Mapping[str, Any],
        http: HttpPost,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        missing = [k for k in ("app_key", "app_secret", "session") if not isinstance(credentials.get(k), str)]
        if missing:
            raise PullFailed(f"taobao: the pull secret lacks {missing}")
        self.job, self.http, self.clock, self.timeout = job, http, clock, timeout
        self.app_key, self.secret, self.session = (
            credentials["app_key"],
            credentials["app_secret"],
            credentials["session"],
        )

    def signed(self, api: str, business: Mapping[str, str]) -> dict[str, str]:
        params = {
            "method": api,
            "app_key": self.app_key,
            "session": self.session,
            "timestamp": china(self.clock()),
            "format": "json",
            "v": "2.0",
            "sign_method": self.job.sign_method,
            **business,
        }
        params["sign"] = top_sign(params, self.secret, self.job.sign_method)
        return params

    def call(self, topic: str, start: datetime, end: datetime, page: int) -> tuple[int, list[dict[str, Any]]]:
        """One page of ``topic``'s changes in [start, end]: (the window's total, the page's records)."""
        api, answer_key, (outer, inner), fields = APIS[topic]
        params = self.signed(
            api,
            {
                "fields": fields,
                "start_modified": china(start),
                "end_modified": china(end),
                "page_no": str(page),
                "page_size": str(PAGE_SIZE),
                "use_has_next": "false",  # the total, to page from the back
            },
        )
        response = self.http.post(
            self.job.endpoint,
            urlencode(params).encode(),
            {"Content-Type": "application/x-www-form-urlencoded;charset=utf-8", "Accept": "application/json"},
            self.timeout,
        )
        if response.status != 200:
            raise PullFailed(f"taobao {api} {answered(response)}")
        try:
            document = json.loads(response.text)
        except ValueError as exc:
            raise PullFailed(f"taobao {api}: the answer is not JSON") from exc
        if not isinstance(document, dict):
            raise PullFailed(f"taobao {api}: the answer is not a JSON object")
        if "error_response" in document:
            raise self._error(api, document["error_response"], (self.session, self.secret))
        try:
            body = document[answer_key]
            total = int(body.get("total_results", 0))
            records = (body.get(outer) or {}).get(inner) or []
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise TypeError(f"{outer}.{inner} is not a list of objects")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # (the reason names what is wrong, never a value from the page)
            raise PullFailed(f"taobao {api}: the page is not usable ({type(exc).__name__})") from exc
        return total, records

    @staticmethod
    def _error(api: str, error: Any, credentials: tuple[str, ...] = ()) -> Exception:
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
        said = unquoted("; ".join(str(error[k]) for k in ("msg", "sub_code", "sub_msg") if error.get(k)), *credentials)
        said = said[:300]
        if code in THROTTLED:
            ban = _BAN.search(str(error.get("sub_msg") or ""))
            return Throttled(f"taobao {api}: call limit (code {code}: {said})", int(ban.group(1)) if ban else None)
        if code in AUTHORISATION:
            return PullFailed(
                f"taobao {api}: not authorised (code {code}: {said}); the shop must authorise the app again "
                "and the pull secret hold the new session"
            )
        return PullFailed(f"taobao {api}: error (code {code}: {said})")

    def window(
        self, topic: str, start: datetime, end: datetime, total: int, first: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Every record of ``topic`` in the window: the first call's page 1, then the pages from the last
        back to the first (a record read twice is one record; one that left the window meanwhile was
        modified again and comes with a later window)."""
        pages = -(-total // PAGE_SIZE)
        if pages <= 1:
            return first
        records = list(first)
        for page in range(pages, 0, -1):
            records += self.call(topic, start, end, page)[1]
        return records

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        span = timedelta(minutes=self.job.window_minutes)
        most = self.job.max_pages * PAGE_SIZE  # records a window may hold: a run's worth
        yield from by_windows(since, self.clock(), span, most, self.read, PAGE_SIZE)

    def read(self, start: datetime, end: datetime, most: int | None) -> list[Pulled] | None:
        """The window's trades and refunds, or None when together they are more than ``most``."""
        firsts = {topic: self.call(topic, start, end, 1) for topic in APIS}
        if most is not None and sum(total for total, _ in firsts.values()) > most:
            return None
        return [
            self._pulled(topic, record)
            for topic, (total, first) in firsts.items()
            for record in self.window(topic, start, end, total, first)
        ]

    @staticmethod
    def _pulled(topic: str, record: dict[str, Any]) -> Pulled:
        try:
            changed = datetime.strptime(str(record["modified"]), TIME_FORMAT).replace(tzinfo=CHINA)
        except (KeyError, ValueError) as exc:
            raise PullFailed(f"taobao: a {topic} record without a usable 'modified' ({type(exc).__name__})") from exc
        return Pulled.of(changed, record, topic)
