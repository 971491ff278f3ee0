"""The whole pipeline on moto, with the real handlers: webhook -> state -> audit -> delivery."""

from __future__ import annotations

import json
import time

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


def test_a_target_outage_loses_nothing_leaves_the_others_alone_and_resumes_in_version_order(
    stack: Stack, shopify_secret: str
) -> None:
    stack.target.status["crm"] = 503
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet(max_rounds=3, must_settle=False)
    stack.post(signed("shopify_orders_updated", shopify_secret))
    stack.run_until_quiet(max_rounds=4, must_settle=False)  # fewer receives than the target's retry budget
    # The ERP got both versions meanwhile; the CRM nothing, and its changes wait in its own queue
    assert [d["body"]["version"] for d in stack.target.accepted("erp")] == [1, 2]
    assert stack.target.accepted("crm") == []
    assert {r["status"] for r in stack.target.received if r["target"] == "crm"} == {503}
    assert stack.depth("deliver-crm") >= 1
    stack.target.status["crm"] = 200
    # Its queue kept the backlog; the next retry (backoff with jitter, through the visibility) goes through
    stack.run_until(lambda: stack.target.accepted("crm") and stack.depth("deliver-crm") == 0)
    # Delivery follows the state: the CRM gets the latest version, and never an older one after it
    versions = [d["body"]["version"] for d in stack.target.accepted("crm")]
    assert versions == sorted(versions) and versions[-1] == 2
    assert stack.depth("deliver-crm") == 0 and stack.messages("deliver-crm-dlq") == []


def test_a_4xx_the_target_will_never_accept_goes_to_its_dlq_at_once_with_the_response(
    stack: Stack, shopify_secret: str
) -> None:
    stack.target.status["erp"] = 422
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet()
    assert len([r for r in stack.target.received if r["target"] == "erp"]) == 1  # tried once, not retried
    [dead] = stack.messages("deliver-erp-dlq")
    attributes = dead["MessageAttributes"]
    assert attributes["reason"]["StringValue"] == (
        "PermanentFailure: target erp answered HTTP 422 (a 13-byte body, not kept)"
    )
    assert attributes["receive_count"]["StringValue"] == "1"
    assert [d["target"] for d in stack.target.accepted()] == ["crm"]  # the others unaffected


def test_an_open_circuit_keeps_deliveries_waiting_without_calling_the_target_then_closes(
    stack: Stack, shopify_secret: str
) -> None:
    from shared.adapters.circuit import DynamoGuards

    crm = next(t for t in stack.cfg.targets if t.name == "crm")
    guards = DynamoGuards(stack.resources.refs.state_table)
    for _ in range(crm.circuit.failures_to_open):  # five failures in a row: open for 5 s (dev)
        state = guards.failed(crm, time.time())
    assert state.open_for(time.time()) > 3
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.run_until_quiet(max_rounds=4, must_settle=False)
    assert [r for r in stack.target.received if r["target"] == "crm"] == []  # not even tried
    assert stack.depth("deliver-crm") == 1 and stack.target.accepted("erp")  # waiting; the ERP unaffected
    stack.run_until(lambda: stack.target.accepted("crm"), timeout=30)
    assert guards.stored("crm").failures == 0  # one success closed it
    assert stack.messages("deliver-crm-dlq") == []
