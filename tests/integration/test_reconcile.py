"""Reconciliation on the real handlers against the fake shop: what no webhook brought is pulled in,
once; what came by webhook is left alone; throttling waits for the next run; bad credentials reach
the DLQ with the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from infra.sandbox.samples import load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from tests.fakes import FILE
from tests.integration.conftest import Stack

NOW = datetime.now(UTC).replace(microsecond=0)
LIVE = load_sample("shopify_orders_create")["body"]


def at(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).astimezone(UTC).isoformat()


def history() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FILE.read_text(encoding="utf-8").splitlines()][:3]


def run_reconcile(stack: Stack) -> dict[str, Any]:
    return stack.reconcile("shopify")


def test_what_no_webhook_brought_is_pulled_in_once_and_what_did_is_left_alone(
    stack: Stack, shopify_secret: str
) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    live, _ = store.load("demo", "order", f"shopify:{LIVE['id']}")
    assert live is not None
    crm_before = len(stack.target.accepted("crm"))

    b, c, d = history()
    stack.shop.put(
        {**LIVE, "updated_at": at(120)},  # came by webhook: the same values (Shopify touched updated_at)
        {**b, "updated_at": at(90)},
        {**c, "updated_at": at(60)},
        {**d, "updated_at": at(30)},
    )
    first = run_reconcile(stack)
    assert first == {
        "newest": at(30),
        "pulled": 4,
        "known": 1,
        "missed": 3,
        "already_admitted": 0,
        "unusable": 0,
        "pages": 2,  # the fake shop pages by two
    }
    for order in (b, c, d):
        state, _ = store.load("demo", "order", f"shopify:{order['id']}")
        assert state is not None and state.fields["order_number"] == order["name"]
    after, _ = store.load("demo", "order", f"shopify:{LIVE['id']}")
    assert after is not None and after.version == live.version
    sent = [r["body"]["entity_id"] for r in stack.target.accepted("crm")[crm_before:]]
    assert sorted(sent) == sorted(f"shopify:{o['id']}" for o in (b, c, d))

    # The next run starts ten minutes before the watermark: it sees D again and knows it.
    second = run_reconcile(stack)
    assert {k: second[k] for k in ("pulled", "known", "missed", "pages")} == {
        "pulled": 1,
        "known": 1,
        "missed": 0,
        "pages": 1,
    }
    assert len(stack.target.accepted("crm")) == crm_before + 3

    # D changes in the shop and its webhook never comes: the next run brings the change, once.
    stack.shop.put({**d, "updated_at": at(5), "note": "leave at the door"})
    third = run_reconcile(stack)
    assert (third["newest"], third["missed"], third["known"]) == (at(5), 1, 0)
    state, _ = store.load("demo", "order", f"shopify:{d['id']}")
    assert state is not None and (state.version, state.fields["note"]) == (2, "leave at the door")
    [update] = [r["body"] for r in stack.target.accepted("crm")[crm_before + 3 :]]
    assert (update["entity_id"], update["version"], update["changes"]) == (
        f"shopify:{d['id']}",
        2,
        {"note": "leave at the door"},
    )


def test_a_throttled_pull_waits_for_the_next_run_and_bad_credentials_reach_the_dlq_with_the_reason(
    stack: Stack,
) -> None:
    stack.shop.put({**history()[0], "updated_at": at(30)})
    stack.shop.status = 429
    assert run_reconcile(stack) == {}  # nothing pulled, no watermark; the message is done, not retried
    assert stack.depth("reconcile") == 0 and stack.depth("reconcile-dlq") == 0

    stack.shop.status = None
    stack.shop.token = "rotated-elsewhere"
    run_reconcile(stack)
    [dead] = stack.messages("reconcile-dlq")
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("PullFailed: shopify answered HTTP 401 (a ")
    assert "shpat_" not in json.dumps(dead)  # the token is never in a message


def test_a_message_that_names_no_configured_job_is_dead_lettered_at_once_with_the_reason(stack: Stack) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(
        QueueUrl=stack.resources.queue_urls["reconcile"], MessageBody=json.dumps({"source": "shopify", "tenant": "x"})
    )
    stack.run_until_quiet()
    [dead] = stack.messages("reconcile-dlq")
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith('PermanentFailure: not a configured reconcile job {"source", "tenant"}: ')
    assert "no reconcile job for shopify/x" in reason
    assert stack.shop.requests == 0  # the shop was never asked


def test_a_refund_whose_webhook_was_lost_comes_in_with_its_order_and_a_shipment_too(
    stack: Stack, shopify_secret: str
) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    live, _ = store.load("demo", "order", f"shopify:{LIVE['id']}")
    assert live is not None
    # the shop refunded and shipped; neither webhook came, and the order itself did not change otherwise
    refund = load_sample("shopify_refunds_create")["body"]
    fulfilment = {
        **load_sample("shopify_fulfillments_update")["body"],
        "order_id": LIVE["id"],
        "tracking_number": "SF1400000000001",
        "tracking_numbers": ["SF1400000000001"],
    }
    stack.shop.put({**LIVE, "updated_at": at(30), "refunds": [refund], "fulfillments": [fulfilment]})

    first = run_reconcile(stack)
    assert {k: first[k] for k in ("pulled", "known", "missed", "unusable")} == {
        "pulled": 3,
        "known": 1,  # the order: the state has its values
        "missed": 2,
        "unusable": 0,
    }
    case, _ = store.load("demo", "after_sales_case", f"shopify:refund:{refund['id']}")
    assert case is not None and (case.fields["order_id"], case.fields["status"]) == (str(LIVE["id"]), "refunded")
    carrier = fulfilment["tracking_company"].strip().lower().replace(" ", "-")
    shipment, _ = store.load("demo", "shipment", f"{carrier}:SF1400000000001")
    assert shipment is not None and shipment.fields["order_id"] == str(LIVE["id"])
    after, _ = store.load("demo", "order", f"shopify:{LIVE['id']}")
    assert after is not None and after.version == live.version

    second = run_reconcile(stack)  # the same three again: all known now
    assert {k: second[k] for k in ("pulled", "known", "missed")} == {"pulled": 3, "known": 3, "missed": 0}


def test_a_return_whose_webhook_was_lost_is_found_through_graphql_and_lands_once(
    stack: Stack, shopify_secret: str
) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    # the customer asked to return a filter; the returns/request webhook never came
    node = {
        "id": "gid://shopify/Return/945000954",
        "name": "#1001-R1",
        "status": "REQUESTED",
        "decline": None,
        "returnLineItems": {
            "nodes": [
                {
                    "id": "gid://shopify/ReturnLineItem/61440983",
                    "quantity": 1,
                    "processedQuantity": 0,
                    "returnReason": "DEFECTIVE",
                    "fulfillmentLineItem": {
                        "lineItem": {
                            "id": "gid://shopify/LineItem/141249953214522974",
                            "sku": "FILTER-X1",
                            "title": "Filter",
                        }
                    },
                }
            ]
        },
        "exchangeLineItems": {"nodes": []},
    }
    stack.shop.put({**LIVE, "updated_at": at(30), "returns": [node]})

    first = run_reconcile(stack)
    assert {k: first[k] for k in ("pulled", "known", "missed", "unusable")} == {
        "pulled": 2,
        "known": 1,
        "missed": 1,
        "unusable": 0,
    }
    case, _ = store.load("demo", "after_sales_case", "shopify:return:945000954")
    assert case is not None
    assert (case.fields["kind"], case.fields["status"], case.fields["order_id"]) == (
        "return",
        "requested",
        str(LIVE["id"]),
    )
    assert case.fields["reason"] == "defective"

    second = run_reconcile(stack)
    assert {k: second[k] for k in ("pulled", "known", "missed")} == {"pulled": 2, "known": 2, "missed": 0}
    again, _ = store.load("demo", "after_sales_case", "shopify:return:945000954")
    assert again is not None and again.version == case.version
