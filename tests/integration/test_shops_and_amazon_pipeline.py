"""Youzan, Douyin shop, Shopify returns and Amazon SP-API through the real handlers to entity state."""

from __future__ import annotations

import json
from typing import Any

import boto3

from infra.sandbox.samples import body_bytes, load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from shared.sources.amazon import AMAZON_SP_API_PRINCIPAL
from tests.integration.conftest import Stack

SHOP_ACK = {"code": 0, "msg": "success"}


def _state(stack: Stack, entity_type: str, entity_id: str) -> dict[str, Any]:
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", entity_type, entity_id)
    assert state is not None, f"no state for {entity_type} {entity_id}"
    return state.fields


def test_youzan_messages_are_acked_as_youzan_expects_and_reach_state(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    pair = sandbox_secrets["sources"]["youzan"]["demo"][0]
    for name in ("youzan_trade_order_state", "youzan_trade_order_refund", "youzan_trade_order_refund"):
        answer = stack.post(signed(name, pair))
        assert (answer["statusCode"], json.loads(answer["body"])) == (200, SHOP_ACK)
    assert stack.depth("inbox") == 2  # the repeated refund message was a duplicate
    stack.run_until_quiet()
    order = _state(stack, "order", "youzan:E20261121103015012300001")
    assert (order["status"], order["payment_status"], order["total"]) == (
        "open",
        "paid",
        {"amount": "299.00", "currency": "CNY"},
    )
    case = _state(stack, "after_sales_case", "youzan:201126112114300001")
    assert (case["status"], case["kind"], case["order_id"]) == ("requested", "refund", "E20261121103015012300001")


def test_one_douyin_push_with_two_messages_is_two_deliveries_and_two_entities(
    stack: Stack, sandbox_secrets: dict
) -> None:  # type: ignore[type-arg]
    hook = signed("douyin_batch", sandbox_secrets["sources"]["douyin"]["demo"][0])
    answers = [stack.post(hook) for _ in range(2)]
    assert [json.loads(a["body"]) for a in answers] == [SHOP_ACK, SHOP_ACK]
    assert stack.depth("inbox") == 2
    stack.run_until_quiet()
    assert _state(stack, "order", "douyin:6920000001234567890")["payment_status"] == "paid"
    case = _state(stack, "after_sales_case", "douyin:7123456789012345678")
    assert (case["status"], case["scenario"], case["amount"]) == (
        "requested",
        "cancel_before_fulfilment",
        {"amount": "159", "currency": "CNY"},
    )


def test_a_tampered_douyin_push_is_401_and_keeps_nothing(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    hook = signed("douyin_batch", sandbox_secrets["sources"]["douyin"]["demo"][0])
    tampered = type(hook)(hook.name, hook.source, hook.headers, hook.body.replace(b"15900", b"159"))
    answer = stack.post(tampered)
    assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (401, "signature_invalid")
    assert (stack.depth("inbox"), stack.archived_keys(), stack.idempotency_items()) == (0, [], 0)


def test_shopify_return_topics_in_any_order_end_in_the_latest_status(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    secret = sandbox_secrets["sources"]["shopify"]["demo"][0]
    # Arrival order: processed first, then the request, then the approval (queues reorder)
    for name in ("shopify_returns_process", "shopify_returns_request", "shopify_returns_approve"):
        assert stack.post(signed(name, secret))["statusCode"] == 200
    stack.run_until_quiet()
    case = _state(stack, "after_sales_case", "shopify:return:945000954")
    assert (case["status"], case["rejected_transitions"]) == ("received", [])
    assert case["items"] == [{"sku": "FILTER-X1", "quantity": 1, "restock": True}]


def _send_amazon(stack: Stack, body: dict[str, Any]) -> None:
    boto3.client("sqs").send_message(QueueUrl=stack.resources.queue_urls["amazon"], MessageBody=json.dumps(body))


def test_an_amazon_order_change_on_the_sp_api_queue_is_admitted_once_and_reaches_state(stack: Stack) -> None:
    notification = load_sample("amazon_order_change")["body"]
    for _ in range(3):  # SQS and Amazon both deliver at least once
        _send_amazon(stack, notification)
    stack.run_until_quiet()
    assert stack.idempotency_items() == 1
    order = _state(stack, "order", "amazon:114-3941689-8772232")
    assert (order["status"], order["payment_status"], order["fulfillment_status"], order["channel"]) == (
        "open",
        "paid",
        "unfulfilled",
        "amazon",
    )
    case = _state(stack, "after_sales_case", "amazon:114-3941689-8772232:cancel")
    assert (case["status"], case["reason"]) == ("requested", "BuyerRequestedCancel")
    assert _state(stack, "order", "amazon:114-3941689-8772232")["purchased_at"] == "2026-11-22T07:58:10Z"


def test_an_amazon_notification_for_an_unmapped_seller_is_quarantined_with_the_reason(stack: Stack) -> None:
    notification = load_sample("amazon_order_change")["body"]
    notification["Payload"]["OrderChangeNotification"]["SellerId"] = "A9UNKNOWNSELLER"
    _send_amazon(stack, notification)
    stack.run_until_quiet()
    [parked] = stack.messages("quarantine")
    assert json.loads(parked["Body"])["reason"] == (
        "unknown_tenant: seller 'A9UNKNOWNSELLER' is not mapped to a tenant (config: amazon_sellers)"
    )
    assert (stack.depth("inbox"), stack.depth("amazon-dlq"), stack.idempotency_items()) == (0, 0, 0)


def test_the_sp_api_queue_admits_amazons_principal_to_send(stack: Stack) -> None:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources.queue_urls["amazon"], AttributeNames=["Policy"]
    )["Attributes"]
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Principal"] == {"AWS": AMAZON_SP_API_PRINCIPAL}
    assert sorted(statement["Action"]) == ["sqs:GetQueueAttributes", "sqs:SendMessage"]


def test_amazon_cannot_be_posted_as_a_webhook(stack: Stack) -> None:
    from infra.sandbox.samples import SignedWebhook

    body = body_bytes(load_sample("amazon_order_change"))
    answer = stack.post(SignedWebhook("a", "amazon", {"Content-Type": "application/json"}, body))
    assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (404, "unknown_source")
