"""Waiting is not failing: the real deliver handler and processor on moto, a clock the test moves.

A wait (an open circuit, a rate limit, a robot's minute, too little time left in the invocation)
uses none of the target's attempts and is no failure; real failures still count and dead-letter
after the target's budget.
"""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest

from infra.sandbox.demo import generated_order
from infra.sandbox.lambda_runtime import LambdaContext, sqs_record
from infra.sandbox.pollers import SqsPoller
from tests.fakes import Clock
from tests.integration.conftest import Stack

ORDERS = 20
OUTAGE_SECONDS = 30 * 60


def crm_poller(stack: Stack) -> SqsPoller:
    """The CRM queue's event source mapping: as on AWS, a failed record is left to the visibility the
    handler set, a processed one is deleted."""
    return SqsPoller(
        stack.functions,
        "deliver",
        stack.resources.queue_urls["deliver-crm"],
        stack.resources.queue_arns["deliver-crm"],
        stack.cfg.region,
        retry_delay=None,
    )


def drain(poller: SqsPoller) -> None:
    while poller.poll_once():
        pass


def crm_calls(stack: Stack, status: int) -> list[dict[str, Any]]:
    return [r for r in stack.target.received if r["target"] == "crm" and r["status"] == status]


def test_a_30_minute_outage_dead_letters_nothing_fails_no_wait_and_then_delivers_every_change_once(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, Clock.next_minute_plus(0))
    random.seed(13)  # the handler's jitter: the same run every time
    crm = next(t for t in stack.cfg.targets if t.name == "crm")
    stack.target.status["crm"] = 503
    expected = []
    for n in range(ORDERS):
        create, _, _ = generated_order(n, shopify_secret)
        assert stack.post(create)["statusCode"] == 200
        expected.append(f"shopify:{700000000000000000 + n}")
    stack.run_until_quiet(must_settle=False)  # webhook -> state -> bus -> each target's queue
    assert len(crm_calls(stack, 503)) >= crm.circuit.failures_to_open  # the circuit is open

    poller = crm_poller(stack)
    outage_ends = clock.now + OUTAGE_SECONDS
    while clock.now < outage_ends:  # the event source mapping polling the queue, second by second
        clock.advance(1)
        drain(poller)
    stack.target.status["crm"] = 200
    for _ in range(10 * 60):
        if stack.depth("deliver-crm") == 0:
            break
        clock.advance(1)
        drain(poller)

    # Nothing was lost to the DLQ: the waits used none of the target's attempts
    assert stack.depth("deliver-crm-dlq") == 0, "messages dead-lettered during the outage"
    assert stack.depth("deliver-crm") == 0
    # The waits were no failures: every RecordFailed is a call the CRM answered 503
    totals = stack.functions.metric_totals()
    assert totals.get("RecordFailed", 0) == len(crm_calls(stack, 503))
    assert totals.get("RecordDeferred", 0) > len(crm_calls(stack, 503))  # most of the outage was waiting
    # After the recovery every change reached the CRM exactly once
    assert sorted(d["body"]["entity_id"] for d in crm_calls(stack, 200)) == sorted(expected)
    # ... and the wait was visible all along: a waiting copy is a new message (the queue's oldest-message
    # age restarts), so each wait reports how old its change is, for the deliveries-waiting alarm
    ages = [
        value
        for record in stack.functions.emf
        if "WaitingAge" in record
        for value in (record["WaitingAge"] if isinstance(record["WaitingAge"], list) else [record["WaitingAge"]])
    ]
    assert max(ages) >= OUTAGE_SECONDS * 1000


class ShortOfTime(LambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 4_000  # under the CRM's 5 s timeout plus the reserve to record a failure


def test_records_without_time_left_for_a_safe_call_are_deferred_neither_attempted_nor_failed(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, Clock.next_minute_plus(0))
    for n in range(3):
        create, _, _ = generated_order(n, shopify_secret)
        stack.post(create)
    stack.run_until_quiet(skip=frozenset({"deliver-crm"}))
    sqs = boto3.client("sqs")
    url, arn = stack.resources.queue_urls["deliver-crm"], stack.resources.queue_arns["deliver-crm"]
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 3
    event = {"Records": [sqs_record(m, arn, stack.cfg.region) for m in messages]}
    handler = stack.functions.handler("deliver")
    response = handler(event, ShortOfTime(stack.cfg.resource("fn-deliver"), stack.cfg.region))

    assert response == {"batchItemFailures": []}  # none failed; their copies wait in the queue
    assert [r for r in stack.target.received if r["target"] == "crm"] == []  # none attempted
    clock.advance(1)
    copies = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    assert sorted(c["Body"] for c in copies) == sorted(m["Body"] for m in messages)
    assert [c["MessageAttributes"]["attempts"]["StringValue"] for c in copies] == ["0", "0", "0"]


def test_real_failures_still_use_the_budget_across_the_copies_and_dead_letter_with_the_reason(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(monkeypatch, Clock.next_minute_plus(0))
    random.seed(13)
    crm = next(t for t in stack.cfg.targets if t.name == "crm")
    stack.target.status["crm"] = 503  # down for good
    create, _, _ = generated_order(1, shopify_secret)
    stack.post(create)
    stack.run_until_quiet(must_settle=False)
    poller = crm_poller(stack)
    for _ in range(2 * 60 * 60):
        if stack.depth("deliver-crm") == 0:
            break
        clock.advance(1)
        drain(poller)

    # Every attempt was a real call; the waits between them (open circuit, backoff) used none
    assert len(crm_calls(stack, 503)) == crm.retry.max_attempts
    assert stack.functions.metric_totals()["RecordFailed"] == crm.retry.max_attempts
    [dead] = stack.messages("deliver-crm-dlq")
    attributes = {k: v["StringValue"] for k, v in dead["MessageAttributes"].items()}
    assert attributes == {
        "reason": "NotDeliveredYet: target crm answered HTTP 503 (a 13-byte body, not kept)",
        "source_queue": "aftersync-dev-deliver-crm",
        "receive_count": str(crm.retry.max_attempts),
    }
