"""The notifier on junk: an alarm notification nobody could parse is dead-lettered at once with a reason
naming what is wrong, and the rest of its batch still reaches the robot (issue 13 review, item 7)."""

from __future__ import annotations

import json
import time

import boto3

from infra.sandbox.alarms import SandboxAlarms
from tests.integration.conftest import Stack

DEEP = "[" * 10_000 + "]" * 10_000


def test_a_deeply_nested_notification_is_dead_lettered_and_its_batch_still_notifies(stack: Stack) -> None:
    topic = stack.resources.alarm_topics["critical"]
    sqs = boto3.client("sqs")
    for body in (DEEP, json.dumps({"TopicArn": topic, "Message": DEEP})):
        sqs.send_message(QueueUrl=stack.resources.queue_urls["alarms"], MessageBody=body)
    # a real alarm in the same queue, so the junk shares a batch with it
    SandboxAlarms(stack.cfg, stack.functions.emf, lambda: {"inbox-dlq": 1}, stack.resources.alarm_topics).evaluate(
        time.time()
    )
    stack.run_until_quiet()
    assert any("inbox-dlq" in c for c in stack.robot.service.contents())
    dead = stack.messages("alarms-dlq")
    reasons = sorted(d["MessageAttributes"]["reason"]["StringValue"] for d in dead)
    assert reasons == [
        "PermanentFailure: not an alarm notification: message is nested deeper than 64 levels",
        "PermanentFailure: not an alarm notification: not a CloudWatch alarm message: "
        "message is nested deeper than 64 levels",
    ]
    assert {d["MessageAttributes"]["receive_count"]["StringValue"] for d in dead} == {"1"}  # never retried
