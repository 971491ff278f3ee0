"""``redrive`` through SQS's StartMessageMoveTask (moto has none): the task is followed to its end,
with the service's answers stubbed at the wire by botocore's Stubber."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ops.dlq import DeadLetterQueue, RedriveResult, redrive

DLQ = DeadLetterQueue("orders-dlq", "https://sqs.eu-west-1.amazonaws.com/1/aftersync-dev-orders-dlq", "orders")
SOURCE = "https://sqs.eu-west-1.amazonaws.com/1/aftersync-dev-orders"
ARNS = {
    DLQ.url: "arn:aws:sqs:eu-west-1:1:aftersync-dev-orders-dlq",
    SOURCE: "arn:aws:sqs:eu-west-1:1:aftersync-dev-orders",
}


def _stubbed(task: dict[str, Any]) -> tuple[Any, Stubber]:
    sqs = boto3.client("sqs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(sqs)
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": "3"}},
        {"QueueUrl": DLQ.url, "AttributeNames": ["ApproximateNumberOfMessages"]},
    )
    for url, arn in ARNS.items():
        stub.add_response(
            "get_queue_attributes", {"Attributes": {"QueueArn": arn}}, {"QueueUrl": url, "AttributeNames": ["QueueArn"]}
        )
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "handle-1"},
        {"SourceArn": ARNS[DLQ.url], "DestinationArn": ARNS[SOURCE], "MaxNumberOfMessagesPerSecond": 5},
    )
    stub.add_response(
        "list_message_move_tasks",
        {"Results": [{"TaskHandle": "handle-1", **task}]},
        {"SourceArn": ARNS[DLQ.url], "MaxResults": 10},
    )
    return sqs, stub


def test_a_completed_move_task_reports_the_messages_it_moved() -> None:
    sqs, stub = _stubbed({"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 3})
    heard: list[tuple[int, int]] = []
    with stub:
        result = redrive(sqs, DLQ, SOURCE, rate_per_second=5, method="move-task", progress=lambda *p: heard.append(p))
    stub.assert_no_pending_responses()
    assert result == RedriveResult("move-task", 3, "handle-1")
    assert heard == [(3, 3)]


def test_a_failed_move_task_raises_with_its_reason() -> None:
    sqs, stub = _stubbed({"Status": "FAILED", "ApproximateNumberOfMessagesMoved": 1, "FailureReason": "AccessDenied"})
    with stub, pytest.raises(RuntimeError, match=r"^the move task failed: AccessDenied$"):
        redrive(sqs, DLQ, SOURCE, rate_per_second=5, method="move-task")
