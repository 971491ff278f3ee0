"""After-sales automation on the real handlers: the payment refund, the restock, the OMS status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from infra.sandbox.samples import signed
from ops.dlq import dead_letter_queues, peek, redrive
from ops.replay import ReplaySelection, replay
from shared.adapters.events import OwnedEntry
from shared.adapters.routed_queues import RoutedQueues
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from shared.constants import DETAIL_ENTITY_CHANGED, EVENT_SOURCE
from shared.models import EntityChanged
from tests.integration.conftest import Stack


def _calls(stack: Stack, target: str) -> list[dict[str, Any]]:
    return [r for r in stack.target.received if r["target"] == target]


def test_an_approved_refund_is_paid_once_however_often_the_webhook_comes_and_the_result_is_written_back(
    stack: Stack, shopify_secret: str
) -> None:
    hook = signed("shopify_refunds_create_pending", shopify_secret)
    for _ in range(5):
        assert stack.post(hook)["statusCode"] == 200
        stack.run_until_quiet()
    # On top: the archived delivery replayed through normalise, and the approval's entity.changed
    # delivered to the automation queue a second time (at-least-once SQS): still one payment
    now = datetime.now(UTC)
    replayed = replay(
        ReplaySelection("shopify", "demo", now - timedelta(hours=1), now),
        S3Archive(stack.resources.refs.archive_bucket),
        SqsQueue(stack.resources.queue_urls["inbox"]),
    )
    assert len(replayed) == 1
    store = DynamoStateStore(stack.resources.refs.state_table)
    [approval] = [
        r for r in store.audit_trail("demo", "after_sales_case", "shopify:refund:929361463") if r.version == 1
    ]
    # the change as publish sends it to the automation queue (the EventBridge event a rule would deliver)
    again = EntityChanged(
        tenant="demo",
        entity_type="after_sales_case",
        entity_id="shopify:refund:929361463",
        version=1,
        event_id=approval.event_id,
        origin_source="shopify",
        occurred_at=approval.occurred_at,
        changed={c["field"]: c["after"] for c in approval.changes},
    )
    RoutedQueues({}).send_to(
        EVENT_SOURCE,
        [(stack.resources.queue_urls["automation"], OwnedEntry(0, DETAIL_ENTITY_CHANGED, again.model_dump_json()))],
    )
    stack.run_until_quiet()
    # The approval's entity.changed reached the automation queue many times (this harness also re-reads the
    # table stream from its start on every round: at-least-once at its most generous) — one payment all the same
    assert stack.functions.metric_totals()["AutomationEvaluated"] > 3
    [payment] = _calls(stack, "payments")
    assert payment["headers"]["idempotency-key"] == "929361463"  # the case id
    assert payment["body"] == {
        "action": "refund-approved",
        "amount": "59.00",
        "case_id": "929361463",
        "currency": "CNY",
        "entity_id": "shopify:refund:929361463",
        "entity_type": "after_sales_case",
        "order_id": "820982911946154508",
        "reason": "Goodwill refund approved by support",
        "tenant": "demo",
    }
    assert payment["headers"]["webhook-signature"].startswith("v1,")  # the payments target signs
    state, _ = store.load("demo", "after_sales_case", "shopify:refund:929361463")
    assert state is not None and state.fields["status"] == "refunded"  # written back by the payment step
    assert state.clocks["status"].source == "derived"
    statuses = [r["body"]["after_sales_status"] for r in _calls(stack, "oms")]
    assert statuses == ["after_sales_in_progress", "refunded"]  # the OMS heard each step once


def test_a_received_return_puts_the_items_back_in_stock_at_the_wms_once(stack: Stack, shopify_secret: str) -> None:
    for name in ("shopify_returns_request", "shopify_returns_approve", "shopify_returns_process"):
        assert stack.post(signed(name, shopify_secret))["statusCode"] == 200
        stack.run_until_quiet()
    assert stack.post(signed("shopify_returns_process", shopify_secret))["statusCode"] == 200  # a duplicate
    stack.run_until_quiet()
    [restock] = _calls(stack, "wms")
    assert (restock["body"]["reference"], restock["body"]["increments"]) == (
        "945000954",
        [{"sku": "FILTER-X1", "quantity": 1}],
    )
    assert restock["headers"]["idempotency-key"] == "945000954:restock"
    assert [r["body"]["after_sales_status"] for r in _calls(stack, "oms")] == [
        "after_sales_in_progress",
        "after_sales_in_progress",
        "returned",
    ]
    assert stack.depth("automation-dlq") == 0 and _calls(stack, "payments") == []  # a return with no amount


def test_the_customer_is_told_by_sms_and_email_in_the_tenants_language_once_per_step(
    stack: Stack, shopify_secret: str
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns import sns_backends

    assert stack.post(signed("shopify_orders_create", shopify_secret))["statusCode"] == 200
    stack.run_until_quiet()
    for _ in range(2):
        assert stack.post(signed("shopify_refunds_create_pending", shopify_secret))["statusCode"] == 200
        stack.run_until_quiet()
    sms = [
        (phone, text) for phone, text, *_ in sns_backends[DEFAULT_ACCOUNT_ID][stack.cfg.region].sms_messages.values()
    ]
    # The demo tenant writes in zh-CN; the contact is the one on the order, in E.164; one per step
    assert sms == [
        ("+8613800138000", "您好，您订单 #9999 的售后申请 929361463 已审核通过，我们会持续为您跟进。"),
        ("+8613800138000", "您好，订单 #9999 的退款 59.00 CNY 已原路退回（申请 929361463）。"),
    ]
    store = DynamoStateStore(stack.resources.refs.state_table)
    ledger = boto3.client("dynamodb").get_item(
        TableName=stack.resources.refs.state_table,
        Key={"pk": {"S": "ops#action#demo#customer-notify:929361463:refunded:customer-email"}, "sk": {"S": "ACTION"}},
    )["Item"]
    assert ledger["status"]["S"] == "done"
    assert ledger["outcome"]["S"].startswith("email default/zh-CN/refunded ")  # recorded, without the address
    assert store.load("demo", "after_sales_case", "shopify:refund:929361463")[0] is not None


def test_an_exchange_restocks_the_return_takes_the_replacement_out_and_ships_it_to_the_order_address(
    stack: Stack, shopify_secret: str
) -> None:
    names = ("shopify_returns_request_exchange", "shopify_returns_approve_exchange", "shopify_returns_process_exchange")
    # The return is in, but its order never reached Aftersync: the stock steps run; the shipment
    # request has no address to go to, is retried, and lands in the DLQ with the reason
    for name in names:
        assert stack.post(signed(name, shopify_secret))["statusCode"] == 200
        stack.run_until_quiet()
    assert _calls(stack, "wms-outbound") == []
    sqs = boto3.client("sqs")
    urls = stack.resources.queue_urls
    dlq = {d.name: d for d in dead_letter_queues(urls)}["automation-dlq"]
    # (this harness re-reads the table stream each round: the same change may be dead-lettered twice)
    reasons = {dead["reason"] for dead in peek(sqs, dlq)}
    assert reasons == {"DeliveryFailed: exchange-ship-replacement: order '820982911946154508' is not synced yet"}
    # The order comes; one redrive ships the replacement. Every webhook again: still one of each
    assert stack.post(signed("shopify_orders_create", shopify_secret))["statusCode"] == 200
    stack.run_until_quiet()
    assert redrive(sqs, dlq, urls["automation"], rate_per_second=20).moved >= 1
    stack.run_until_quiet()
    for name in names:
        assert stack.post(signed(name, shopify_secret))["statusCode"] == 200
    stack.run_until_quiet()

    movements = {r["body"]["action"]: r for r in _calls(stack, "wms")}
    assert len(_calls(stack, "wms")) == 2 and sorted(movements) == ["exchange-replacement-out", "return-restock"]
    assert movements["return-restock"]["body"]["increments"] == [{"sku": "FILTER-X1", "quantity": 1}]
    replacement = [{"sku": "FILTER-X1-HEPA", "quantity": 1, "title": "Replacement filter (HEPA)"}]
    assert movements["exchange-replacement-out"]["body"]["decrements"] == replacement
    assert movements["exchange-replacement-out"]["headers"]["idempotency-key"] == "945000977:replacement-out"
    [shipment] = _calls(stack, "wms-outbound")
    assert shipment["headers"]["idempotency-key"] == "945000977:ship-replacement"
    assert shipment["body"] == {
        "action": "exchange-ship-replacement",
        "tenant": "demo",
        "entity_type": "after_sales_case",
        "entity_id": "shopify:return:945000977",
        "reference": "945000977",
        "order_id": "820982911946154508",
        "order_number": "#9999",
        "lines": replacement,
        "ship_to": {
            "name": "Jon Snow",
            "phone": "+8613800138000",
            "line1": "1 Century Ave",
            "city": "Shanghai",
            "country_code": "CN",
        },
    }
    store = DynamoStateStore(stack.resources.refs.state_table)
    case, _ = store.load("demo", "after_sales_case", "shopify:return:945000977")
    assert case is not None and (case.fields["kind"], case.fields["status"]) == ("exchange", "received")
    assert stack.depth("automation-dlq") == 0
