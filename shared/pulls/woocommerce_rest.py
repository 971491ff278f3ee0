"""WooCommerce REST API: the orders (and the refunds inside them) a store changed since a time, oldest
change first, for reconciliation.

``GET <store>/wp-json/wc/v3/orders?modified_after=…&dates_are_gmt=true&orderby=modified&order=asc
&per_page=100&page=…`` with the REST API key as HTTP Basic auth (``consumer_key:consumer_secret``, over
HTTPS only; WooCommerce 5.8+ for ``modified_after``). An order from this API is the same object as the
``order.updated`` webhook's body (refunds included), so the webhook normaliser reads it unchanged.

Page numbers over a list that moves under us skip records: an order modified while we page jumps to the
end, and every order after its old place moves up one, so the first order of the next page would be
missed. So the pager pages by key instead: after each page it asks again from one second before the
newest modification it got (``modified_after`` is exclusive and has one-second steps), page 1, dropping
orders it already handed over (id and modification time); only a page whose orders all share one second
(a bulk edit) is followed by the next page number. A 429 is throttling (``Retry-After`` kept); a 401 or
403 means the key was revoked or lacks read permission.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, retry_after

PER_PAGE = 100  # the REST API's largest page


class HttpGet(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...


class WooCommerceOrders:
    """The reconcile pager for one store: ``credentials`` is the pull secret ``{"consumer_key",
    "consumer_secret"}`` (a REST API key with read access)."""

    def __init__(self, job: ReconcileJob, credentials: Mapping[str, Any], http: HttpGet, timeout: float = 10.0) -> None:
        key, secret = credentials.get("consumer_key"), credentials.get("consumer_secret")
        if not isinstance(key, str) or not key or not isinstance(secret, str) or not secret:
            raise PullFailed("woocommerce: the pull secret needs consumer_key and consumer_secret")
        self.job, self.http, self.timeout = job, http, timeout
        self.base = job.endpoint.rstrip("/")
        self.authorization = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()

    def url(self, after: datetime, page: int) -> str:
        query = urlencode(
            {
                "modified_after": after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "dates_are_gmt": "true",
                "orderby": "modified",
                "order": "asc",
                "per_page": PER_PAGE,
                "page": page,
            }
        )
        return f"{self.base}/wp-json/wc/v3/orders?{query}"

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        # changed at or after ``since``: modified_after is exclusive, so from the second before it
        after, page = since.replace(microsecond=0) - timedelta(seconds=1), 1
        seen: set[tuple[str, str]] = set()
        before: list[tuple[str, str]] = []
        while True:
            orders = self._get(self.url(after, page))
            pulled = [self._pulled(o) for o in orders]
            keys = [(str(o.get("id")), str(o.get("date_modified_gmt"))) for o in orders]
            if page > 1 and keys == before:  # a page number that does not move on would be followed forever
                raise PullFailed("woocommerce: the next page answered the same orders as the one before; the run stops")
            before = keys
            fresh = [p for p, k in zip(pulled, keys, strict=True) if k not in seen]
            seen |= set(keys)
            if fresh:
                yield fresh
            if len(orders) < PER_PAGE:
                return
            newest = max(p.changed_at for p in pulled) - timedelta(seconds=1)
            if fresh and newest > after:
                after, page = newest, 1  # from the newest change got (its second again: exclusive bound)
            else:
                page += 1  # a page of one second (a bulk edit): the next page of it

    def _get(self, url: str) -> list[dict[str, Any]]:
        response = self.http.get(url, {"Authorization": self.authorization, "Accept": "application/json"}, self.timeout)
        if response.status == 429:
            after = (response.headers or {}).get("retry-after")
            raise Throttled("woocommerce: 429 Too Many Requests", retry_after(after))
        if response.status in (401, 403):
            raise PullFailed(f"woocommerce {answered(response)}: the REST API key was revoked or cannot read orders")
        if response.status != 200:
            raise PullFailed(f"woocommerce {answered(response)}")
        try:
            orders = json.loads(response.text)
            if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
                raise TypeError("the answer is not a list of orders")
            return orders
        except (ValueError, TypeError) as exc:
            raise PullFailed(f"woocommerce: the orders page is not usable ({type(exc).__name__})") from exc

    @staticmethod
    def _pulled(order: dict[str, Any]) -> Pulled:
        try:
            changed = datetime.fromisoformat(str(order["date_modified_gmt"])).replace(tzinfo=UTC)
        except (KeyError, ValueError) as exc:
            raise PullFailed(
                f"woocommerce: an order without a usable date_modified_gmt ({type(exc).__name__})"
            ) from exc
        return Pulled.of(changed, order)
