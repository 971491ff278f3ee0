"""The must-show for every webhook source, from its sample in ``events/``: accepted with the exact
acknowledgement the platform expects, normalised into state, its duplicate ignored (same answer),
and a tampered copy refused with 401 leaving nothing behind."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.sandbox.samples import SignedWebhook, signed
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

SHOP_ACK = {"code": 0, "msg": "success"}
# sample -> (ack when accepted, ack for its duplicate, entities it must produce)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], list[tuple[str, str]]]] = {
    "shopify_orders_create": (
        {"status": "accepted", "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5"},
        {"status": "duplicate", "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5"},
        [("order", "shopify:820982911946154508")],
    ),
    "shopify_returns_request": (
        {"status": "accepted", "event_id": "0b6f6a8e-1c7d-4a34-9d1e-2f3a4b5c6d01"},
        {"status": "duplicate", "event_id": "0b6f6a8e-1c7d-4a34-9d1e-2f3a4b5c6d01"},
        [("after_sales_case", "shopify:return:945000954")],
    ),
    "stripe_refund_created": (
        {"received": True},
        {"received": True},
        [("after_sales_case", "stripe:re_3QJx2cLkdIwHu7ix0kzQ1Nqf")],
    ),
    "aftership_tracking_update": (
        {"meta": {"code": 200}},
        {"meta": {"code": 200}},
        [("shipment", "sf-express:SF1410029637153")],
    ),
    "17track_tracking_updated": ({"code": 0}, {"code": 0}, [("shipment", "17track-3011:RR123456785CN")]),
    "kuaidi100_push_signed": (
        {"result": True, "returnCode": "200", "message": "成功"},
        {"result": True, "returnCode": "200", "message": "成功"},
        [("shipment", "yuantong:YT7366029163549")],
    ),
    "zendesk_ticket_status_changed": (
        {"status": "accepted"},
        {"status": "duplicate"},
        [("ticket", "zendesk:5158")],
    ),
    "woocommerce_order_refunded": (
        {"status": "accepted"},
        {"status": "duplicate"},
        [("order", "woocommerce:727"), ("after_sales_case", "woocommerce:731")],
    ),
    "youzan_trade_order_state": (SHOP_ACK, SHOP_ACK, [("order", "youzan:E20261121103015012300001")]),
    "douyin_batch": (
        SHOP_ACK,
        SHOP_ACK,
        [("order", "douyin:6920000001234567890"), ("after_sales_case", "douyin:7123456789012345678")],
    ),
    "wms_stock_movements": (
        {"status": "accepted", "webhook_id": "msg_2kWvR8rYwms0007"},
        {"status": "duplicate", "webhook_id": "msg_2kWvR8rYwms0007"},
        [("stock", "FILTER-X1@SH-01"), ("stock", "AIRPURIFIER-X1@SH-01")],
    ),
}


def _tampered(hook: SignedWebhook) -> SignedWebhook:
    """One digit of the body changed after signing (inside the signed part for every scheme)."""
    text = hook.body.decode("utf-8")
    match = re.search(r"\d", text)
    assert match
    digit = "1" if match.group() != "1" else "2"
    return SignedWebhook(
        hook.name, hook.source, hook.headers, (text[: match.start()] + digit + text[match.end() :]).encode()
    )


@pytest.mark.parametrize("sample", sorted(CASES))
def test_every_source_accepts_acks_normalises_dedupes_and_refuses_tampering(
    stack: Stack,
    sandbox_secrets: dict[str, Any],
    sample: str,
) -> None:
    accepted_ack, duplicate_ack, entities = CASES[sample]
    source = sample.split("_", 1)[0]
    hook = signed(sample, sandbox_secrets["sources"][source]["demo"][0])

    refused = stack.post(_tampered(hook))
    assert (refused["statusCode"], json.loads(refused["body"])["error"]) == (401, "signature_invalid")
    assert (stack.depth("inbox"), stack.archived_keys(), stack.idempotency_items()) == (0, [], 0)

    first, again = stack.post(hook), stack.post(hook)
    assert (first["statusCode"], json.loads(first["body"])) == (200, accepted_ack)
    assert (again["statusCode"], json.loads(again["body"])) == (200, duplicate_ack)
    parts = 2 if source == "douyin" else 1  # a Douyin push carries two messages
    assert stack.depth("inbox") == parts

    stack.run_until_quiet()
    assert stack.depth("quarantine") == 0
    store = DynamoStateStore(stack.resources.refs.state_table)
    for entity_type, entity_id in entities:
        state, _ = store.load("demo", entity_type, entity_id)
        assert state is not None and state.version >= 1, f"{entity_type} {entity_id} not in state"
