"""Zendesk and WooCommerce through the real handlers."""

from __future__ import annotations

import json

from infra.sandbox.samples import SignedWebhook, signed
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack


def test_woocommerce_ping_gets_200_and_enqueues_nothing(stack: Stack) -> None:
    ping = SignedWebhook("ping", "woocommerce", {"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=12")
    response = stack.post(ping)
    assert (response["statusCode"], json.loads(response["body"])) == (200, {"status": "ping received"})
    assert stack.depth("inbox") == 0 and stack.archived_keys() == []


def test_woocommerce_refund_and_zendesk_ticket_reach_state(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    secrets = sandbox_secrets["sources"]
    woo = signed("woocommerce_order_refunded", secrets["woocommerce"]["demo"][0])
    assert [stack.post(woo)["statusCode"] for _ in range(2)] == [200, 200]
    assert stack.post(signed("zendesk_ticket_status_changed", secrets["zendesk"]["demo"][0]))["statusCode"] == 200
    assert stack.depth("inbox") == 2  # the WooCommerce duplicate was not enqueued
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    case, _ = store.load("demo", "after_sales_case", "woocommerce:731")
    ticket, _ = store.load("demo", "ticket", "zendesk:5158")
    order, _ = store.load("demo", "order", "woocommerce:727")
    assert case is not None and ticket is not None and order is not None
    assert (case.fields["status"], ticket.fields["status"], order.fields["payment_status"]) == (
        "refunded",
        "open",
        "refunded",
    )
    assert case.fields["customer_id"] == order.fields["customer_id"]  # the refund is linked to the order's customer
