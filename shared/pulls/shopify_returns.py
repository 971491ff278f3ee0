"""Shopify returns through the GraphQL Admin API, and the Shopify pager that hands them over with the
orders (``shared/pulls/shopify_admin.py``): returns exist only in GraphQL, so a lost ``returns/*`` webhook
can only be found there.

``POST <shop>/admin/api/<version>/graphql.json`` with ``X-Shopify-Access-Token`` asks for the orders
updated since the watermark that have a return (``updated_at:>='…' AND NOT return_status:no_return``,
``sortKey: UPDATED_AT``, ten a page by ``endCursor``), each with its returns, their line items and
exchange items. The page sizes keep the query's cost under Shopify's 1,000-point limit; a ``THROTTLED``
error (HTTP 200) or a 429 is throttling, a 401/403 a token that cannot read returns (``read_returns``).

Each return is handed over in its webhook's shape (``id``, ``admin_graphql_api_id``, ``name``, ``order``,
``status`` in lower case, ``return_line_items`` with ``fulfillment_line_item.line_item``, ``return_reason``
in lower case, ``exchange_line_items``, ``decline``) as ``returns/update``, or as ``returns/process`` once
every line item is processed (GraphQL's ``OPEN`` covers approved and processed alike), with the order's
``updatedAt`` as its ``updated_at`` (a return has no update time of its own; the webhook's clock is its
trigger time).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, iso_time
from shared.pulls.shopify_admin import PAGE_SIZE, ShopifyOrders

ORDERS_A_PAGE = 10  # × 5 returns × (10 line items + 5 exchange items): under the 1,000-point query cost
QUERY = """
query Returns($query: String!, $after: String) {
  orders(first: ORDERS_A_PAGE, after: $after, query: $query, sortKey: UPDATED_AT) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id
      updatedAt
      returns(first: 5) {
        nodes {
          id
          name
          status
          decline { reason }
          returnLineItems(first: 10) {
            nodes {
              ... on ReturnLineItem {
                id
                quantity
                processedQuantity
                returnReason
                fulfillmentLineItem { lineItem { id sku title } }
              }
            }
          }
          exchangeLineItems(first: 5) { nodes { id lineItem { id sku title quantity } } }
        }
      }
    }
  }
}
""".replace("ORDERS_A_PAGE", str(ORDERS_A_PAGE))


class Http(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any: ...


def tail(gid: Any) -> str:
    return str(gid).rsplit("/", 1)[-1]


def as_webhook(order: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A GraphQL return as the topic and body its webhook would have had."""
    lines = [li for li in (node.get("returnLineItems") or {}).get("nodes") or [] if li]
    exchanges = [x for x in (node.get("exchangeLineItems") or {}).get("nodes") or [] if x]
    processed = bool(lines) and all(int(li.get("processedQuantity") or 0) >= int(li["quantity"]) for li in lines)
    status = str(node.get("status") or "").lower()
    body: dict[str, Any] = {
        "id": int(tail(node["id"])),
        "admin_graphql_api_id": node["id"],
        "name": node.get("name"),
        "order": {"id": int(tail(order["id"])), "admin_graphql_api_id": order["id"]},
        "status": status,
        "return_line_items": [
            {
                "id": int(tail(li["id"])),
                "admin_graphql_api_id": li["id"],
                "quantity": int(li["quantity"]),
                "return_reason": str(li.get("returnReason") or "").lower() or None,
                "fulfillment_line_item": {
                    "line_item": {
                        "id": int(tail(li["fulfillmentLineItem"]["lineItem"]["id"])),
                        "sku": li["fulfillmentLineItem"]["lineItem"].get("sku"),
                        "title": li["fulfillmentLineItem"]["lineItem"].get("title"),
                    }
                },
            }
            for li in lines
        ],
        "decline": node.get("decline"),
        "updated_at": order["updatedAt"],
    }
    if exchanges:
        body["exchange_line_items"] = [
            {"id": int(tail(x["id"])), "line_item": dict(x.get("lineItem") or {})} for x in exchanges
        ]
    return ("returns/process" if processed and status == "open" else "returns/update"), body


class ShopifyReturns:
    """The returns of the orders changed since a time, oldest order change first."""

    def __init__(self, job: ReconcileJob, token: str, http: Http, timeout: float = 10.0) -> None:
        self.job, self.token, self.http, self.timeout = job, token, http, timeout
        self.url = f"{job.endpoint.rstrip('/')}/admin/api/{job.api_version}/graphql.json"

    def records(self, since: datetime) -> Iterator[Pulled]:
        search = f"updated_at:>='{since.isoformat()}' AND NOT return_status:no_return"
        after: str | None = None
        cursors: set[str] = set()
        while True:
            orders = self._post({"query": QUERY, "variables": {"query": search, "after": after}})
            for order in orders.get("nodes") or []:
                yield from self._returns(order)
            info = orders.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return
            after = str(info["endCursor"])
            if after in cursors:  # a page of orders without returns would be asked for again and again
                raise PullFailed(
                    "shopify graphql: the next page's cursor repeats an earlier one (the list would never end)"
                )
            cursors.add(after)

    @staticmethod
    def _returns(order: Any) -> list[Pulled]:
        """An order's returns as their webhooks; a field missing or of the wrong type fails the pull, naming
        the kind of fault, never the value (an answer may carry a name or a phone number)."""
        try:
            changed = iso_time(order["updatedAt"])
            pulled = []
            for node in (order.get("returns") or {}).get("nodes") or []:
                topic, body = as_webhook(order, node)
                pulled.append(Pulled.of(changed, body, topic))
            return pulled
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise PullFailed(f"shopify graphql: a return is not usable ({type(exc).__name__})") from exc

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        headers = {"X-Shopify-Access-Token": self.token, "Content-Type": "application/json"}
        response = self.http.post(self.url, json.dumps(dict(body)).encode(), headers, self.timeout)
        if response.status == 429:
            raise Throttled("shopify graphql: 429 Too Many Requests")
        if response.status in (401, 403):
            raise PullFailed(f"shopify graphql {answered(response)}: the token cannot read returns (read_returns)")
        if response.status != 200:
            raise PullFailed(f"shopify graphql {answered(response)}")
        try:
            document = json.loads(response.text)
            errors = document.get("errors") or []
            codes = {str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}
            if "THROTTLED" in codes:
                raise Throttled("shopify graphql: THROTTLED (the query cost bucket is empty)")
            if errors:
                raise PullFailed(f"shopify graphql: the query was refused ({sorted(codes)})")
            orders = document["data"]["orders"]
            if not isinstance(orders, dict):
                raise TypeError("data.orders is not an object")
            return orders
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PullFailed(f"shopify graphql: the answer is not usable ({type(exc).__name__})") from exc


class ShopifyChanges:
    """Shopify's pager: the REST orders (with their refunds and fulfilments), each page with the returns of
    orders changed up to its newest change, then any returns left; so no page hands over a change older
    than one a page before it did (the watermark's rule)."""

    def __init__(self, job: ReconcileJob, token: str, http: Http, timeout: float = 10.0) -> None:
        self.orders = ShopifyOrders(job, token, http, timeout)
        self.returns = ShopifyReturns(job, token, http, timeout)

    @classmethod
    def from_credentials(cls, job: ReconcileJob, credentials: Mapping[str, Any], http: Http) -> ShopifyChanges:
        """The pager for the pull secret ``{"access_token"}`` (an Admin API token with read_orders and
        read_returns)."""
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise PullFailed('shopify: the pull secret needs "access_token"')
        return cls(job, token, http)

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        returns = self.returns.records(since)
        waiting: Pulled | None = None
        for page in self.orders.pages(since):
            top = max((p.changed_at for p in page), default=None)
            extra: list[Pulled] = []
            while top is not None:
                waiting = waiting or next(returns, None)
                if waiting is None or waiting.changed_at > top:
                    break
                extra.append(waiting)
                waiting = None
            yield page + extra
        rest = ([waiting] if waiting else []) + list(returns)
        for i in range(0, len(rest), PAGE_SIZE):
            yield rest[i : i + PAGE_SIZE]
