"""Shopify Admin REST API: the orders changed since a time, oldest change first, with their refunds and
fulfilments, for reconciliation.

``GET /admin/api/<version>/orders.json?status=any&updated_at_min=…&order=updated_at asc&limit=250``
with the app's ``X-Shopify-Access-Token``; the next page is the ``Link: <…>; rel="next"`` URL (cursor
pagination with ``page_info``). The token travels only to the shop's own origin: a next-page link to
any other origin is refused. An order from this API is the same object as the ``orders/updated``
webhook's body, so the webhook normaliser reads it unchanged; so are the entries of its ``refunds``
(``refunds/create``'s body) and ``fulfillments`` (``fulfillments/update``'s body), which are handed over
beside it: a refund or a shipment whose webhook was lost comes in with its order's next change. A
fulfilment without a tracking number makes no shipment (its webhook is quarantined for that), so it is
not handed over. Returns are not in the REST API (GraphQL only): a lost ``returns/*`` webhook is not
pulled yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, retry_after

PAGE_SIZE = 250
REFUND_TOPIC = "refunds/create"  # an order's refunds[] entry is that webhook's body
FULFILLMENT_TOPIC = "fulfillments/update"  # an order's fulfillments[] entry is that webhook's body
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class HttpGet(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...


def next_link(header: str | None) -> str | None:
    match = _NEXT.search(header or "")
    return match.group(1) if match else None


class ShopifyOrders:
    def __init__(self, job: ReconcileJob, token: str, http: HttpGet, timeout: float = 10.0) -> None:
        self.job, self.token, self.http, self.timeout = job, token, http, timeout
        self.base = job.endpoint.rstrip("/")

    @classmethod
    def from_credentials(cls, job: ReconcileJob, credentials: Mapping[str, Any], http: HttpGet) -> ShopifyOrders:
        """The pager for the pull secret ``{"access_token"}`` (an Admin API token with read_orders)."""
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise PullFailed('shopify: the pull secret needs "access_token"')
        return cls(job, token, http)

    def first_url(self, since: datetime) -> str:
        query = urlencode(
            {"status": "any", "updated_at_min": since.isoformat(), "order": "updated_at asc", "limit": PAGE_SIZE}
        )
        return f"{self.base}/admin/api/{self.job.api_version}/orders.json?{query}"

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        url: str | None = self.first_url(since)
        origin = urlsplit(self.base)[:2]
        while url:
            if urlsplit(url)[:2] != origin:
                raise PullFailed(f"shopify: a next-page link leaves the shop ({urlsplit(url).netloc}); not followed")
            response = self.http.get(
                url, {"X-Shopify-Access-Token": self.token, "Accept": "application/json"}, self.timeout
            )
            if response.status == 429:
                after = (response.headers or {}).get("retry-after")
                raise Throttled("shopify: 429 Too Many Requests", retry_after(after))
            if response.status != 200:
                raise PullFailed(f"shopify {answered(response)}")
            yield self._page(response.text)
            url = next_link((response.headers or {}).get("link"))

    @staticmethod
    def _page(text: str) -> list[Pulled]:
        try:
            orders = json.loads(text)["orders"]
            if not isinstance(orders, list):
                raise TypeError("orders is not a list")
            pulled: list[Pulled] = []
            for order in orders:
                changed = datetime.fromisoformat(order["updated_at"])
                if changed.tzinfo is None:
                    raise ValueError("an updated_at without a UTC offset")
                pulled.append(Pulled.of(changed, order))
                pulled += [Pulled.of(changed, r, REFUND_TOPIC) for r in order.get("refunds") or []]
                pulled += [
                    Pulled.of(changed, f, FULFILLMENT_TOPIC)
                    for f in order.get("fulfillments") or []
                    if f.get("tracking_number") or f.get("tracking_numbers")
                ]
            return pulled
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PullFailed(f"shopify: the orders page is not usable ({type(exc).__name__})") from exc
