"""The whole pipeline on moto, with the real handlers: webhook -> state -> audit -> delivery."""

from __future__ import annotations

import json

import boto3

from infra.sandbox.lambda_runtime import sqs_record
from infra.sandbox.samples import load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

ORDER = "shopify:820982911946154508"


def store(stack: Stack) -> DynamoStateStore:
    return DynamoStateStore(stack.resources.refs.state_table)


def test_one_webhook_delivered_five_times_is_one_change_one_audit_record_one_delivery(
    stack: Stack, shopify_secret: str
) -> None:
    hook = signed("shopify_orders_create", shopify_secret)
    for _ in range(5):
        stack.post(hook)
    stack.run_until_quiet()
    state, _ = store(stack).load("demo", "order", ORDER)
    assert state is not None and state.version == 1
    assert len(store(stack).audit_trail("demo", "order", ORDER)) == 1
    [delivery] = stack.target.accepted("crm")
    assert delivery["body"]["version"] == 1
    assert delivery["body"]["identifiers"] == {
        "order_id": "820982911946154508",
        "order_number": "#9999",
        "channel": "shopify",
    }
    assert delivery["headers"]["x-api-key"] == "sandbox-crm-key"


def test_an_older_update_after_a_newer_one_changes_nothing(stack: Stack, shopify_secret: str) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.post(signed("shopify_orders_updated", shopify_secret))
    stack.run_until_quiet()
    before, _ = store(stack).load("demo", "order", ORDER)
    deliveries_before = len(stack.target.accepted())
    stack.post(signed("shopify_orders_updated_older", shopify_secret))
    stack.run_until_quiet()
    after, _ = store(stack).load("demo", "order", ORDER)
    assert before is not None and after is not None
    assert after.snapshot() == before.snapshot()
    assert after.version == before.version == 2
    assert after.fields["note"] == load_sample("shopify_orders_updated")["body"]["note"]
    assert len(stack.target.accepted()) == deliveries_before
    assert [r.version for r in store(stack).audit_trail("demo", "order", ORDER)] == [1, 2]


def test_only_changed_fields_travel_after_the_first_delivery(stack: Stack, shopify_secret: str) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet()
    stack.post(signed("shopify_orders_updated", shopify_secret))
    stack.run_until_quiet()
    first, second = stack.target.accepted("crm")
    assert "lines" in first["body"]["changes"]
    assert second["body"]["version"] == 2
    assert sorted(second["body"]["changes"]) == ["fulfillment_status", "note", "tags"]


def test_a_verified_payload_that_cannot_be_normalised_is_quarantined_with_its_reason(
    stack: Stack, shopify_secret: str
) -> None:
    hook = signed(
        "shopify_orders_create",
        shopify_secret,
        **{"X-Shopify-Topic": "products/update", "X-Shopify-Event-Id": "p-1"},
    )
    assert stack.post(hook)["statusCode"] == 200
    stack.run_until_quiet()
    [parked] = stack.messages("quarantine")
    body = json.loads(parked["Body"])
    assert (body["source"], body["reason"]) == ("shopify", "unsupported topic 'products/update'")
    assert json.loads(body["envelope"])["dedupe_key"] == "shopify:demo:p-1"
    assert stack.messages("inbox-dlq") == []


def test_a_poison_record_fails_alone_and_the_rest_of_its_batch_succeeds(
    stack: Stack, shopify_secret: str, context
) -> None:  # type: ignore[no-untyped-def]
    stack.post(signed("shopify_orders_create", shopify_secret))
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.resources.queue_urls["orders"], MessageBody='{"detail-type": "order.observed"}')
    inbox = sqs.receive_message(QueueUrl=stack.resources.queue_urls["inbox"], MaxNumberOfMessages=10)["Messages"]
    stack.functions.invoke(
        "normalise",
        {"Records": [sqs_record(m, stack.resources.queue_arns["inbox"], "eu-west-1") for m in inbox]},
    )
    messages = sqs.receive_message(QueueUrl=stack.resources.queue_urls["orders"], MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 2
    poison = next(m for m in messages if "detail" not in json.loads(m["Body"]))
    response = stack.functions.invoke(
        "sync",
        {"Records": [sqs_record(m, stack.resources.queue_arns["orders"], "eu-west-1") for m in messages]},
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": poison["MessageId"]}]}
    state, _ = store(stack).load("demo", "order", ORDER)
    assert state is not None and state.version == 1


def test_a_poison_record_reaches_the_dlq_after_max_receive_count(stack: Stack) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack.resources.queue_urls["orders"], MessageBody='{"not": "an event"}')
    stack.run_until_quiet(max_rounds=40)
    assert stack.depth("orders") == 0
    [dead] = stack.messages("orders-dlq")
    assert json.loads(dead["Body"]) == {"not": "an event"}
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes["source_queue"] == "aftersync-dev-orders"
    assert attributes["receive_count"] == "5"
    assert attributes["reason"].startswith("ValidationError (9): version: Field required; id: Field required;")
    assert "an event" not in attributes["reason"]  # the input is never quoted (it may hold personal data)


def test_a_target_outage_loses_nothing_and_delivers_after_recovery(stack: Stack, shopify_secret: str) -> None:
    stack.target.status["crm"] = 503
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet(max_rounds=4, must_settle=False)  # fewer receives than maxReceiveCount
    assert stack.target.accepted() == []
    assert {r["status"] for r in stack.target.received} == {503}
    assert stack.depth("deliver-crm") == 1  # kept in its queue while the target is down
    stack.target.status["crm"] = 200
    stack.run_until_quiet()
    [delivery] = stack.target.accepted()
    assert delivery["body"]["version"] == 1
    assert stack.messages("deliver-crm-dlq") == []
