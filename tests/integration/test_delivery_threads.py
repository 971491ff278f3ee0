"""Deliver's records of a batch on threads: the real deliver handler on moto, calling the sandbox's fake
target over SafeHttp's loopback allowance.

The fake target answers a call only once the expected number of calls are in flight at once (a barrier
in its status look-up, which each call makes before it answers): deliveries made one after another
never meet, time out at the barrier, and fail. So each test shows how many calls the handler had in
flight together, without measuring any time.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from infra.sandbox import lambda_runtime
from infra.sandbox.demo import generated_order
from infra.sandbox.lambda_runtime import LambdaContext, sqs_record
from tests.integration.conftest import Stack
from tests.integration.test_delivery_hotkeys import batches

BARRIER_SECONDS = 4.0  # under the CRM's 5 s call timeout: calls one after another break it, and fail


class AnswerWhenAllInFlight(dict[str, int]):
    """The fake target's status table: a call to ``target`` is answered (200) only when ``calls`` calls
    are in flight at once; the calls that find the barrier broken are answered with nothing."""

    def __init__(self, target: str, calls: int) -> None:
        super().__init__()
        self.target = target
        self.barrier = threading.Barrier(calls, timeout=BARRIER_SECONDS)
        self.met = 0
        self.lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        # barrier.wait raises BrokenBarrierError when the calls do not meet: the call gets no answer
        if key == self.target and self.barrier.wait() == 0:
            with self.lock:
                self.met += 1
        return super().get(key, default)


def stage(stack: Stack, shopify_secret: str, orders: int, updates: bool = False) -> None:
    """``orders`` new orders (and their updates) in the state, their changes waiting in the targets' queues."""
    for n in range(orders):
        create, update, _ = generated_order(n, shopify_secret)
        assert stack.post(create)["statusCode"] == 200
        if updates:
            assert stack.post(update)["statusCode"] == 200
    stack.run_until_quiet(skip=frozenset({"deliver"}))


def crm_received(stack: Stack) -> list[dict[str, Any]]:
    return [r for r in stack.target.received if r["target"] == "crm"]


def deliver_counts(stack: Stack, event: dict[str, Any]) -> tuple[Any, dict[str, float]]:
    """The deliver handler's answer to ``event`` and the counts it emitted (the earlier stages' apart)."""
    before = stack.functions.metric_totals()
    answer = stack.functions.invoke("deliver", event)
    after = stack.functions.metric_totals()
    return answer, {name: after[name] - before.get(name, 0.0) for name in after if after[name] != before.get(name)}


def test_a_batch_of_ten_orders_is_delivered_with_all_ten_calls_in_flight_at_once(
    stack: Stack, shopify_secret: str
) -> None:
    stage(stack, shopify_secret, 10)
    [event] = batches(stack, "crm")
    assert len(event["Records"]) == 10
    stack.target.status = gate = AnswerWhenAllInFlight("crm", 10)

    answer, counts = deliver_counts(stack, event)

    assert answer == {"batchItemFailures": []}
    assert gate.met == 1  # the ten met at the target
    received = crm_received(stack)
    assert sorted(r["body"]["entity_id"] for r in received) == sorted(
        f"shopify:{700000000000000000 + n}" for n in range(10)
    )
    assert [r["status"] for r in received] == [200] * 10
    assert (counts["DeliverySucceeded"], counts["RecordProcessed"], counts.get("RecordFailed", 0)) == (10, 10, 0)


def test_one_order_s_changes_in_a_batch_stay_in_order_on_one_thread_and_are_delivered_once(
    stack: Stack, shopify_secret: str
) -> None:
    # Given five orders, each created and updated: a batch of ten changes, two of each order
    stage(stack, shopify_secret, 5, updates=True)
    [event] = batches(stack, "crm")
    assert len(event["Records"]) == 10
    # When the target answers only when five calls are in flight at once
    stack.target.status = gate = AnswerWhenAllInFlight("crm", 5)

    answer, counts = deliver_counts(stack, event)

    assert answer == {"batchItemFailures": []}
    # Then the five orders' first changes were in flight together, and each order's second change came
    # after its first had been acknowledged: the state's latest version sent once per order, not twice
    # (two changes of one order at once would both find no acknowledgement, and both send)
    assert gate.met == 1
    received = crm_received(stack)
    assert sorted(r["body"]["entity_id"] for r in received) == sorted(
        f"shopify:{700000000000000000 + n}" for n in range(5)
    )
    assert {r["body"]["version"] for r in received} == {2}
    assert [r["status"] for r in received] == [200] * 5
    assert (counts["RecordProcessed"], counts["DeliverySucceeded"]) == (10, 5)


def test_a_partial_batch_failure_reports_exactly_the_failed_records_while_the_rest_are_delivered_together(
    stack: Stack, shopify_secret: str
) -> None:
    stage(stack, shopify_secret, 8)
    [event] = batches(stack, "crm")
    records: list[dict[str, Any]] = event["Records"]
    # two records the handler cannot read (not an EventBridge event): each a failure of its own
    junk = [dict(records[0], messageId="junk-1", body="not json"), dict(records[1], messageId="junk-2", body="{}")]
    mixed = {"Records": [junk[0], *records[:4], junk[1], *records[4:]]}
    stack.target.status = gate = AnswerWhenAllInFlight("crm", 8)

    answer, counts = deliver_counts(stack, mixed)

    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["junk-1", "junk-2"]
    assert gate.met == 1
    assert [r["status"] for r in crm_received(stack)] == [200] * 8
    assert (counts["RecordProcessed"], counts["RecordFailed"], counts["DeliverySucceeded"]) == (8, 2, 8)


def test_the_grouping_keeps_one_entity_per_target_queue_and_separates_the_rest(stack: Stack) -> None:
    from functions.deliver.handler import change_of

    def record(queue: str, entity_id: str, message_id: str) -> dict[str, Any]:
        body = {"detail": {"tenant": "demo", "entity_type": "order", "entity_id": entity_id}}
        message = {"MessageId": message_id, "ReceiptHandle": message_id, "Body": json.dumps(body)}
        return sqs_record(message, stack.resources.queue_arns[queue], stack.cfg.region)

    a_crm, a_crm_again = record("deliver-crm", "A", "1"), record("deliver-crm", "A", "2")
    a_erp, b_crm = record("deliver-erp", "A", "3"), record("deliver-crm", "B", "4")
    assert change_of(a_crm) == change_of(a_crm_again)
    assert len({change_of(a_crm), change_of(a_erp), change_of(b_crm)}) == 3
    assert change_of({**a_crm, "body": "junk"}) == ("record", "1")


def test_a_failing_target_s_deliveries_wait_their_turn_and_then_defer_when_too_little_time_is_left(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a container that has seen the CRM fail once (its circuit copy shows a failure, not yet open)
    stage(stack, shopify_secret, 4)
    [event] = batches(stack, "crm")
    first, rest = {"Records": event["Records"][:1]}, {"Records": event["Records"][1:]}
    stack.target.status["crm"] = 503
    assert stack.functions.invoke("deliver", first) == {"batchItemFailures": []}  # went back as a copy
    calls_before = len(crm_received(stack))

    class TimeRunsOut(LambdaContext):
        """30 s left until the CRM has been called in this invocation, then 4 s (under its 5 s timeout
        plus the reserve): the calls one after another use the invocation's time up."""

        def get_remaining_time_in_millis(self) -> int:
            return 30_000 if len(crm_received(stack)) == calls_before else 4_000

    monkeypatch.setattr(lambda_runtime, "LambdaContext", TimeRunsOut)  # the context the invocation gets
    # When three more changes of different orders come in one batch
    answer, counts = deliver_counts(stack, rest)

    assert answer == {"batchItemFailures": []}
    # Then one delivery called (and failed); the other two waited their turn, found too little time left,
    # and were deferred without an attempt (not a call cut short by the invocation's end, which would count)
    assert len(crm_received(stack)) == calls_before + 1
    assert (counts["RecordFailed"], counts["RecordDeferred"]) == (1, 2)
