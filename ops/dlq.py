"""Dead-letter queues for operators: list them, look inside, and send the messages back for another try.

The quarantine is listed with them: it is not a DLQ, but like one it holds messages that wait for a
person (verified deliveries that can never be processed as they are, each with its reason).

``redrive`` uses SQS StartMessageMoveTask where the service offers it (rate-capped, tracked by task
handle) and otherwise moves the messages itself — receive, send to the source queue, delete —
no faster than the rate cap. The reasons the consumers attached (``reason``, ``source_queue``,
``receive_count`` attributes) are shown by ``show`` and dropped when a message goes back, so a
message that fails again gets its new reason. Bodies are shown only on request, and masked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.masking import mask_json, mask_text

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import MessageAttributeValueTypeDef

REASON_ATTRIBUTES = ("reason", "source_queue", "receive_count")
# Dead-letter queues whose messages are not the source queue's messages and cannot go back as they are.
NOT_REDRIVABLE = {
    "publish-dlq": "stream failure records (they point at table stream positions): re-publish with `aftersync replay`",
    "events-dlq": "EventBridge events that missed their rule target: re-put them on the bus",
    "quarantine": "verified deliveries that cannot be processed as they are: fix the cause, then re-feed them "
    "from the archive with `aftersync replay`",
}
# Queues that are not DLQs but hold messages for an operator, listed with the DLQs.
PARKED = ("quarantine",)


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str  # purpose, e.g. "orders-dlq"
    url: str
    source: str | None  # the purpose of the queue its messages came from, when they can go back


def dead_letter_queues(queue_urls: dict[str, str]) -> list[DeadLetterQueue]:
    """The DLQs among an environment's queues (by purpose), with the queue each drains back into, and
    the quarantine (which drains back into nothing)."""
    found = []
    for name, url in sorted(queue_urls.items()):
        if not name.endswith("-dlq") and name not in PARKED:
            continue
        source = None if name in NOT_REDRIVABLE else name.removesuffix("-dlq")
        if name == "alarm-topics-dlq":
            source = "alarms"
        if source is not None and source not in queue_urls:
            source = None
        found.append(DeadLetterQueue(name, url, source))
    return found


def describe(sqs: SQSClient, dlq: DeadLetterQueue) -> dict[str, Any]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=dlq.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "QueueArn"],
    )["Attributes"]
    return {
        "name": dlq.name,
        "messages": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        "redrives_to": dlq.source,
        "arn": attributes["QueueArn"],
    }


def peek(sqs: SQSClient, dlq: DeadLetterQueue, limit: int = 10, with_body: bool = False) -> list[dict[str, Any]]:
    """Up to ``limit`` messages, left in the queue (visible again at once), with their reasons."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, (limit + 9) // 10) * 2):
        batch = sqs.receive_message(
            QueueUrl=dlq.url,
            MaxNumberOfMessages=min(10, limit),
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
            AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        ).get("Messages", [])
        for message in batch:
            attributes = message.get("MessageAttributes", {})
            entry: dict[str, Any] = {
                "message_id": message["MessageId"],
                "sent_at": int(message.get("Attributes", {}).get("SentTimestamp", "0")) // 1000,
                **{k: attributes[k]["StringValue"] for k in REASON_ATTRIBUTES if k in attributes},
            }
            if "reason" not in entry:
                entry["reason"] = _reason_in_body(message["Body"])
            if with_body:
                entry["body"] = mask_json(message["Body"])  # by field when JSON, else the regex
            seen[message["MessageId"]] = entry
        if len(seen) >= limit or not batch:
            break
    return list(seen.values())[:limit]


def _reason_in_body(body: str) -> str:
    """Messages dead-lettered by SQS itself carry no reason attribute; some bodies name one."""
    try:
        document = json.loads(body)
    except ValueError:
        return "(no reason recorded: moved by the queue's redrive policy after maxReceiveCount)"
    if isinstance(document, dict) and isinstance(document.get("reason"), str):
        return mask_text(document["reason"])
    return "(no reason recorded: moved by the queue's redrive policy after maxReceiveCount)"


@dataclass
class RedriveResult:
    method: str  # "move-task" or "copy"
    moved: int
    task_handle: str | None = None


def redrive(
    sqs: SQSClient,
    dlq: DeadLetterQueue,
    source_url: str,
    rate_per_second: int = 10,
    method: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> RedriveResult:
    """Send every message of ``dlq`` back to its source queue, at most ``rate_per_second``."""
    if dlq.source is None:
        why = NOT_REDRIVABLE.get(dlq.name, "its source queue is unknown")
        raise ValueError(f"{dlq.name} cannot be redriven: {why}")
    total = int(
        sqs.get_queue_attributes(QueueUrl=dlq.url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"
        ]
    )
    if method in ("auto", "move-task"):
        arns = {
            url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in (dlq.url, source_url)
        }
        try:
            task = sqs.start_message_move_task(
                SourceArn=arns[dlq.url], DestinationArn=arns[source_url], MaxNumberOfMessagesPerSecond=rate_per_second
            )
        except (ClientError, NotImplementedError) as exc:
            if method == "move-task" or not _unsupported(exc):
                raise
        else:
            moved = _follow_task(sqs, arns[dlq.url], task["TaskHandle"], total, progress)
            return RedriveResult("move-task", moved, task["TaskHandle"])
    return RedriveResult("copy", _copy(sqs, dlq.url, source_url, rate_per_second, total, progress))


def _unsupported(exc: Exception) -> bool:
    if isinstance(exc, NotImplementedError):
        return True
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    message = str(exc).lower()
    # moto in-process raises NotImplementedError; moto's server answers a bare HTTP 500 (code "500")
    return code in ("InvalidAction", "UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "500") or (
        "implemented" in message
    )


def _follow_task(
    sqs: SQSClient, source_arn: str, handle: str, total: int, progress: Callable[[int, int], None] | None
) -> int:
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10).get("Results", [])
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else None)
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0)) if task else 0
        status = task.get("Status") if task else None
        if progress:
            progress(moved, max(total, moved))
        if status in ("COMPLETED", "CANCELLED", "FAILED", None):
            if status == "FAILED":
                reason = task.get("FailureReason", "no reason given") if task else "no reason given"
                raise RuntimeError(f"the move task failed: {reason}")
            return moved
        time.sleep(1)


def _copy(
    sqs: SQSClient, dlq_url: str, source_url: str, rate: int, total: int, progress: Callable[[int, int], None] | None
) -> int:
    moved, started = 0, time.monotonic()
    while True:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=min(10, rate), VisibilityTimeout=60, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            return moved
        for message in batch:
            attributes: dict[str, MessageAttributeValueTypeDef] = {
                k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                for k, v in message.get("MessageAttributes", {}).items()
                if k not in REASON_ATTRIBUTES and "StringValue" in v
            }
            sqs.send_message(QueueUrl=source_url, MessageBody=message["Body"], MessageAttributes=attributes)
            # Deleted only once it is safely in the source queue: a crash here duplicates, never loses.
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
            if progress:
                progress(moved, max(total, moved))
            ahead = moved / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
