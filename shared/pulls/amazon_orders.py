"""Amazon SP-API: the orders a seller's marketplaces changed since a time, oldest change first, for
reconciliation (the ``ORDER_CHANGE`` notifications the ``amazon-intake`` queue takes can be lost too).

Two calls, both HTTPS and SSRF-checked:

1. Login with Amazon (LWA): ``POST https://api.amazon.com/auth/o2/token`` with ``grant_type=refresh_token``,
   the seller's ``refresh_token`` (from authorising the app) and the app's ``client_id`` and
   ``client_secret`` gives an access token good for an hour (kept for the run). A refused grant
   (``invalid_grant``, ``invalid_client``) means the seller must authorise the app again.
2. ``GET <regional endpoint>/orders/v0/orders?MarketplaceIds=…&LastUpdatedAfter=…&LastUpdatedBefore=…
   &MaxResultsPerPage=100`` with the access token in ``x-amz-access-token`` (no SigV4 since 2023), then
   ``?MarketplaceIds=…&NextToken=…`` until no ``NextToken``. The regional endpoint is the job's ``url``
   (``https://sellingpartnerapi-eu.amazon.com``, ``-na``, ``-fe``), the marketplaces its
   ``marketplace_ids``.

The list is not documented to come in change order, so each window of update time is read whole and
handed over oldest change first (``shared/pulls/windows.py``). Amazon's order data lags about two
minutes, and ``LastUpdatedBefore`` must be at least two minutes ago: the pull stops three minutes short
of now (the next run, overlapping, takes the rest). getOrders allows a burst of 20 calls and then one a
minute: a 429 (``QuotaExceeded``) stops the run (the watermark keeps its progress); a 403 means the
token lacks the Inventory and Order Tracking role or the seller withdrew the authorisation.

Each order is handed over as the topic ``api:order`` (``shared/sources/amazon.py`` reads
``AmazonOrderId``, ``OrderStatus``, ``PurchaseDate``, ``LastUpdateDate``); no buyer data is asked for
(that needs a restricted data token, and the hub does not need it to reconcile).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, iso_time
from shared.pulls.windows import by_windows
from shared.sources.amazon import API_ORDER

LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 (an endpoint, not a credential)
PAGE_SIZE = 100  # MaxResultsPerPage's largest
SETTLE = timedelta(minutes=3)  # LastUpdatedBefore must be ≥ 2 minutes ago; Amazon's data lags about 2
REPEAT = "the next page's cursor repeats an earlier one (the list would never end)"


class Http(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any: ...


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AmazonOrders:
    """The reconcile pager for one seller: ``credentials`` is the pull secret ``{"refresh_token",
    "client_id", "client_secret"}`` (the seller's LWA refresh token and the app's LWA credentials)."""

    def __init__(
        self,
        job: ReconcileJob,
        credentials: Mapping[str, Any],
        http: Http,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        missing = [k for k in ("refresh_token", "client_id", "client_secret") if not credentials.get(k)]
        if missing:
            raise PullFailed(f"amazon: the pull secret lacks {missing}")
        self.job, self.http, self.clock, self.timeout = job, http, clock, timeout
        self.credentials = {k: str(credentials[k]) for k in ("refresh_token", "client_id", "client_secret")}
        self.base = job.endpoint.rstrip("/")
        self.token_url = str(job.auth_url) if job.auth_url is not None else LWA_TOKEN_URL
        self._token: str | None = None

    def token(self) -> str:
        """An LWA access token for this run (asked for once)."""
        if self._token is None:
            body = urlencode({"grant_type": "refresh_token", **self.credentials}).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded;charset=UTF-8"}
            response = self.http.post(self.token_url, body, headers, self.timeout)
            if response.status in (400, 401):
                raise PullFailed(
                    f"amazon: Login with Amazon refused the refresh token ({answered(response)}); the seller must "
                    "authorise the app again and the pull secret hold the new refresh token"
                )
            if response.status != 200:
                raise PullFailed(f"amazon: Login with Amazon {answered(response)}")
            try:
                token = json.loads(response.text)["access_token"]
                if not isinstance(token, str) or not token:
                    raise TypeError("access_token is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                raise PullFailed(f"amazon: the LWA answer is not usable ({type(exc).__name__})") from exc
            self._token = token
        return self._token

    def url(self, start: datetime, end: datetime, next_token: str | None) -> str:
        query: dict[str, Any] = {"MarketplaceIds": ",".join(self.job.marketplace_ids)}
        if next_token is not None:
            query["NextToken"] = next_token
        else:
            query.update(LastUpdatedAfter=iso(start), LastUpdatedBefore=iso(end), MaxResultsPerPage=PAGE_SIZE)
        return f"{self.base}/orders/v0/orders?{urlencode(query)}"

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        span = timedelta(minutes=self.job.window_minutes)
        until = self.clock() - SETTLE
        return by_windows(since, until, span, self.job.max_pages * PAGE_SIZE, self.read, PAGE_SIZE)

    def read(self, start: datetime, end: datetime, most: int | None) -> list[Pulled] | None:
        """Every order updated in the window; None when there are more than ``most``."""
        orders: list[dict[str, Any]] = []
        next_token: str | None = None
        tokens: set[str] = set()
        while True:
            page, next_token = self._get(self.url(start, end, next_token))
            orders += page
            if most is not None and len(orders) > most:
                return None
            if next_token is None:
                return [self._pulled(o) for o in orders]
            if next_token in tokens:
                raise PullFailed(f"amazon: {REPEAT}")
            tokens.add(next_token)

    def _get(self, url: str) -> tuple[list[dict[str, Any]], str | None]:
        response = self.http.get(url, {"x-amz-access-token": self.token(), "Accept": "application/json"}, self.timeout)
        if response.status == 429:
            raise Throttled("amazon: 429 QuotaExceeded (getOrders allows a burst of 20, then one a minute)", 60)
        if response.status in (401, 403):
            raise PullFailed(
                f"amazon getOrders {answered(response)}: the seller withdrew the authorisation, or the app lacks "
                "the Inventory and Order Tracking role"
            )
        if response.status != 200:
            raise PullFailed(f"amazon getOrders {answered(response)}")
        try:
            payload = json.loads(response.text)["payload"]
            orders = payload["Orders"]
            if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
                raise TypeError("payload.Orders is not a list of objects")
            token = payload.get("NextToken")
            return orders, token if isinstance(token, str) and token and orders else None
        except (ValueError, KeyError, TypeError) as exc:
            raise PullFailed(f"amazon: the orders page is not usable ({type(exc).__name__})") from exc

    @staticmethod
    def _pulled(order: dict[str, Any]) -> Pulled:
        try:
            changed = iso_time(order["LastUpdateDate"])
        except (KeyError, ValueError) as exc:
            raise PullFailed(f"amazon: an order without a usable LastUpdateDate ({type(exc).__name__})") from exc
        return Pulled.of(changed, order, API_ORDER)
