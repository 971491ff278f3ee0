"""An after-sales action runs once however many copies of its change arrive at the same moment.

SQS and EventBridge deliver at least once and in parallel: two workers can hold copies of one
``entity.changed`` at the same time. The real automate handler runs here on ten threads at once, on
moto; every action kind must make exactly one call: HTTP actions (the payment refund, the OMS
status), the SMS and the e-mail to the customer.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses import ses_backends
from moto.sns import sns_backends

from shared.adapters.state_store import DynamoStateStore
from tests.fakes import CASE, copy_of_the_change, stage_approved_refund
from tests.integration.conftest import Stack

COPIES = 10


def _calls(stack: Stack, target: str) -> list[dict[str, Any]]:
    return [r for r in stack.target.received if r["target"] == target]


def _sent(stack: Stack) -> tuple[int, int]:
    sms = len(sns_backends[DEFAULT_ACCOUNT_ID][stack.cfg.region].sms_messages)
    email = len(ses_backends[DEFAULT_ACCOUNT_ID][stack.cfg.region].sent_messages)
    return sms, email


def test_ten_concurrent_copies_of_one_change_make_one_call_per_action_of_every_kind(
    stack: Stack, shopify_secret: str
) -> None:
    # Given an approved refund on an order with a phone and an e-mail, before any rule has run
    stage_approved_refund(stack, shopify_secret)
    boto3.client("sqs").purge_queue(QueueUrl=stack.resources.queue_urls["automation"])
    stack.functions.handler("automate")  # imported with the stack's environment
    from functions.automate import handler as automate

    # When ten workers take ten copies of its change at the same moment
    start = threading.Barrier(COPIES)

    def worker(record: dict[str, Any]) -> str:
        start.wait()
        try:
            automate.record_handler(SQSRecord(record))
        except Exception as exc:  # a copy that must come back later: the record fails, SQS redelivers it
            return type(exc).__name__
        return "done"

    copies = [copy_of_the_change(stack) for _ in range(COPIES)]
    with ThreadPoolExecutor(COPIES) as pool:
        outcomes = list(pool.map(worker, copies))

    # Then each action made one call: one refund, one OMS status, one SMS, one e-mail
    assert len(_calls(stack, "payments")) == 1
    assert [c["body"]["after_sales_status"] for c in _calls(stack, "oms")] == ["after_sales_in_progress"]
    assert _sent(stack) == (1, 1)
    # ... and the copies that found an action in flight, tried again once it is done, send nothing more
    for record, outcome in zip(copies, outcomes, strict=True):
        if outcome != "done":
            automate.record_handler(SQSRecord(record))
    assert len(_calls(stack, "payments")) == 1
    assert len(_calls(stack, "oms")) == 1
    assert _sent(stack) == (1, 1)


class ShortOfTime:
    """An invocation with 4 s left: under a payment call's 5 s timeout plus the reserve to record a failure."""

    def get_remaining_time_in_millis(self) -> int:
        return 4_000


def test_a_change_with_too_little_invocation_time_left_waits_without_calling_or_failing(
    stack: Stack, shopify_secret: str
) -> None:
    stage_approved_refund(stack, shopify_secret)
    stack.functions.handler("automate")
    from functions.automate import handler as automate
    from shared.adapters.dead_letter import Deferred

    with pytest.raises(Deferred, match="too little for an action's call"):
        automate.record_handler(SQSRecord(copy_of_the_change(stack)), lambda_context=ShortOfTime())
    assert _calls(stack, "payments") == [] and _sent(stack) == (0, 0)


def test_a_write_back_that_fails_after_the_call_is_not_lost(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_approved_refund(stack, shopify_secret)
    stack.functions.handler("automate")
    from functions.automate import handler as automate

    real_publish = automate.publish

    def bus_down(observed: object) -> None:
        raise RuntimeError("EventBridge rejected 1 entries: ['InternalFailure']")

    monkeypatch.setattr(automate, "publish", bus_down)
    with pytest.raises(RuntimeError):
        automate.record_handler(SQSRecord(copy_of_the_change(stack)))
    # Past the worker's lease a copy comes back: the refund (which the payment target dedupes) is asked
    # again, and this time its result reaches the case
    monkeypatch.setattr(automate, "publish", real_publish)
    later = automate.time.time() + automate.MAX_LEASE_SECONDS + 1
    monkeypatch.setattr(automate.time, "time", lambda: later)
    automate.record_handler(SQSRecord(copy_of_the_change(stack)))
    stack.run_until_quiet()
    payments = _calls(stack, "payments")
    assert [p["headers"]["idempotency-key"] for p in payments] == ["929361463", "929361463"]
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "after_sales_case", CASE)
    assert state is not None and state.fields["status"] == "refunded"
