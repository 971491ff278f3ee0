"""Shopify returns pulled through the GraphQL Admin API (shared/pulls/shopify_returns.py) from the fake
shop over real HTTP: a return in its webhook's shape (read by the webhook normaliser as the webhook's case),
handed over with the REST orders so no page is older than one before it, and throttling and refusals."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from infra.sandbox.http_servers import FakeShop, serve
from infra.sandbox.samples import load_sample
from shared.adapters.http import Response, SafeHttp
from shared.intake.ingest import inbox_message
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled
from shared.pulls.shopify_returns import ShopifyChanges, as_webhook
from shared.sources import NORMALISERS
from shared.sources.base import Delivery

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
ORDER = load_sample("shopify_orders_create")["body"]


def graphql_return(n: int, status: str = "REQUESTED", processed: int = 0, exchange: bool = False) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": f"gid://shopify/Return/{945000000 + n}",
        "name": f"#1001-R{n}",
        "status": status,
        "decline": None,
        "returnLineItems": {
            "nodes": [
                {
                    "id": f"gid://shopify/ReturnLineItem/{61440000 + n}",
                    "quantity": 1,
                    "processedQuantity": processed,
                    "returnReason": "DEFECTIVE",
                    "fulfillmentLineItem": {
                        "lineItem": {
                            "id": "gid://shopify/LineItem/141249953214522974",
                            "sku": "FILTER-X1",
                            "title": "Replacement filter",
                        }
                    },
                }
            ]
        },
        "exchangeLineItems": {"nodes": []},
    }
    if exchange:
        line = {
            "id": "gid://shopify/LineItem/141249953214599001",
            "sku": "FILTER-X1-HEPA",
            "title": "HEPA",
            "quantity": 1,
        }
        node["exchangeLineItems"] = {"nodes": [{"id": "gid://shopify/ExchangeLineItem/70112233", "lineItem": line}]}
    return node


def order(n: int, minutes_ago: int, *returns: dict[str, Any]) -> dict[str, Any]:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {
        **copy.deepcopy(ORDER),
        "id": 830000000000000000 + n,
        "name": f"#{n}",
        "updated_at": at,
        "returns": list(returns),
    }


def pager(shop: FakeShop) -> ShopifyChanges:
    job = ReconcileJob.model_validate({"source": "shopify", "tenant": "demo", "url": shop.url})
    return ShopifyChanges(job, "shpat_x", SafeHttp(allow_loopback=(shop.server.server_port,)))


def normalised(pulled: Pulled) -> Any:
    message = inbox_message("shopify", "demo", Delivery("p", pulled.topic or ""), NOW, {}, b"{}", origin="reconcile")
    return NORMALISERS["shopify"].normalise(message, json.loads(pulled.text))


def test_returns_come_with_the_orders_pages_never_older_than_a_page_before() -> None:
    shop = FakeShop("shpat_x", page_size=2)
    serve(shop.server)
    try:
        shop.put(
            order(1, 50),
            order(2, 40, graphql_return(1)),
            order(3, 30),
            order(4, 20, graphql_return(2, status="OPEN", processed=1)),
            order(5, 10, graphql_return(3, status="OPEN"), graphql_return(4, status="DECLINED")),
        )
        pages = list(pager(shop).pages(NOW - timedelta(hours=1)))
    finally:
        shop.server.shutdown()
    shape = [[(p.topic or "order", json.loads(p.text)["id"] % 1000) for p in page] for page in pages]
    assert shape == [
        [("order", 1), ("order", 2), ("returns/update", 1)],  # return 1's order changed at minute 40
        [("order", 3), ("order", 4), ("returns/process", 2)],  # every item processed: received
        [("order", 5), ("returns/update", 3), ("returns/update", 4)],
    ]
    for earlier, later in itertools.pairwise(pages):
        assert max(p.changed_at for p in earlier) <= min(p.changed_at for p in later)
    assert shop.requests == 3 + 1  # three REST pages, one GraphQL page (ten orders a page)


def test_a_pulled_return_normalises_as_its_webhook_with_the_order_s_change_as_its_clock() -> None:
    webhook = load_sample("shopify_returns_request_exchange")["body"]
    node = graphql_return(0, exchange=True)
    node["id"] = webhook["admin_graphql_api_id"]
    node["returnLineItems"]["nodes"][0]["id"] = "gid://shopify/ReturnLineItem/61440999"
    node["returnLineItems"]["nodes"][0]["returnReason"] = "WRONG_ITEM"
    node["name"] = webhook["name"]
    listed = {"id": webhook["order"]["admin_graphql_api_id"], "updatedAt": "2026-11-23T07:30:00Z"}
    topic, body = as_webhook(listed, node)
    [pulled] = normalised(Pulled(NOW, json.dumps(body), topic))
    message = inbox_message("shopify", "demo", Delivery("w", "returns/request"), NOW, {}, b"{}", origin="webhook")
    [pushed] = NORMALISERS["shopify"].normalise(message, webhook)
    assert topic == "returns/update" and pulled.entity_id == pushed.entity_id
    assert pulled.entity.model_dump(exclude={"replacements"}) == pushed.entity.model_dump(exclude={"replacements"})
    assert (
        [r.sku for r in pulled.entity.replacements] == [r.sku for r in pushed.entity.replacements] == ["FILTER-X1-HEPA"]
    )
    assert pulled.occurred_at == datetime(2026, 11, 23, 7, 30, tzinfo=UTC)


def test_graphql_throttling_and_a_token_without_read_returns() -> None:
    shop = FakeShop("shpat_x", page_size=2)
    serve(shop.server)
    try:
        shop.put(order(1, 50, graphql_return(1)))
        changes = pager(shop)

        class ThrottledOnce:
            def __init__(self, http: SafeHttp) -> None:
                self.http = http

            def get(self, url: str, headers: dict[str, str], timeout: float) -> Any:
                return self.http.get(url, headers, timeout)

            def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
                throttled = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
                return Response(200, json.dumps(throttled), {})  # as Shopify answers an empty cost bucket

        changes.returns.http = ThrottledOnce(changes.returns.http)  # type: ignore[assignment]
        with pytest.raises(Throttled, match="THROTTLED"):
            list(changes.pages(NOW - timedelta(hours=1)))
        shop.status = 403
        with pytest.raises(PullFailed, match=r"shopify answered HTTP 403"):
            list(pager(shop).pages(NOW - timedelta(hours=1)))
        shop.status = None
        refused = pager(shop)
        refused.returns.token = "shpat_without_read_returns"
        with pytest.raises(PullFailed, match=r"graphql answered HTTP 401 .*read_returns"):
            list(refused.pages(NOW - timedelta(hours=1)))
    finally:
        shop.server.shutdown()


class Answers:
    """A shop whose REST list is empty and whose GraphQL answers are given, in turn (the last again)."""

    def __init__(self, *graphql: dict[str, Any], headers: dict[str, str] | None = None, status: int = 200) -> None:
        self.graphql, self.headers, self.status, self.calls = list(graphql), headers or {}, status, 0

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Response:
        return Response(self.status, json.dumps({"orders": []}), self.headers)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
        self.calls += 1
        assert self.calls <= 20, "the pager keeps asking for the same page"
        return Response(200, json.dumps(self.graphql[min(self.calls, len(self.graphql)) - 1]), {})


def answered_by(http: Answers) -> ShopifyChanges:
    job = ReconcileJob.model_validate({"source": "shopify", "tenant": "demo", "url": "https://acme.myshopify.com"})
    return ShopifyChanges(job, "shpat_x", http)


def orders_page(*nodes: dict[str, Any], cursor: str | None = None) -> dict[str, Any]:
    info = {"hasNextPage": cursor is not None, "endCursor": cursor}
    return {"data": {"orders": {"pageInfo": info, "nodes": list(nodes)}}}


def listed(n: int, *returns: dict[str, Any], updated: str = "2026-11-23T07:30:00Z") -> dict[str, Any]:
    return {"id": f"gid://shopify/Order/{830000000000000000 + n}", "updatedAt": updated, "returns": {"nodes": returns}}


@pytest.mark.parametrize(
    ("node", "named"),
    [
        (listed(1, {**graphql_return(1), "id": "gid://shopify/Return/Lei Li 13800138000"}), "ValueError"),
        (
            listed(
                1,
                {k: v for k, v in graphql_return(1).items() if k != "returnLineItems"}
                | {"returnLineItems": {"nodes": [{"id": "x"}]}},
            ),
            "KeyError",
        ),
        (listed(1, graphql_return(1), updated="Lei Li 13800138000"), "ValueError"),
        ({"id": "gid://shopify/Order/1", "returns": {"nodes": [graphql_return(1)]}}, "KeyError"),
        ("Lei Li 13800138000", "TypeError"),
    ],
)
def test_a_return_page_with_junk_fails_the_pull_naming_the_kind_never_the_value(node: Any, named: str) -> None:
    with pytest.raises(PullFailed, match=rf"^shopify graphql: a return is not usable \({named}\)$") as failed:
        list(answered_by(Answers(orders_page(node))).pages(NOW - timedelta(hours=1)))
    assert "13800138000" not in str(failed.value)


def test_a_graphql_cursor_that_does_not_move_fails_the_pull_instead_of_looping() -> None:
    http = Answers(orders_page(listed(1), cursor="eyJsYXN0X2lkIjoxfQ"))  # an order without returns, and again
    with pytest.raises(PullFailed, match=r"^shopify graphql: the next page's cursor repeats an earlier one"):
        list(answered_by(http).pages(NOW - timedelta(hours=1)))
    assert http.calls == 2


def test_a_429_whose_retry_after_is_not_a_number_is_still_throttling() -> None:
    http = Answers(orders_page(), headers={"retry-after": "later"}, status=429)
    with pytest.raises(Throttled) as throttled:
        list(answered_by(http).pages(NOW - timedelta(hours=1)))
    assert throttled.value.retry_after is None
