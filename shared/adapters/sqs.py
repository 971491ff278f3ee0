"""SQS: sending JSON documents SQS can carry, and a received message's visibility."""

from __future__ import annotations

import re
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_sqs.client import SQSClient

# Characters SQS refuses in a message body (InvalidMessageContents): outside XML's #x9 | #xA | #xD |
# #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. In a JSON document they can only stand inside strings,
# where a \uXXXX escape means the same character: escaped, the document reads back unchanged. Written as
# the refused ranges, not the negation of the allowed ones, which takes re ~20 ms to compile at cold start.
_NOT_CARRIED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def carriable_json(document: str) -> str:
    """A JSON document SQS (and EventBridge's SQS targets) can carry: the characters it refuses escaped."""
    return _NOT_CARRIED.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


class SqsQueue:
    """Sends JSON documents (``carriable_json``: nothing SQS refuses reaches it)."""

    def __init__(self, url: str, client: SQSClient | None = None, call_timeout_seconds: float | None = None) -> None:
        """``call_timeout_seconds``: each send connects and reads within it, and is tried at most twice (a
        sender bound by a deadline, e.g. ingest within its admission lease); else boto3's defaults."""
        self.url = url
        self._client = client
        self.call_timeout_seconds = call_timeout_seconds

    @cached_property
    def client(self) -> SQSClient:
        if self._client is not None:
            return self._client
        if self.call_timeout_seconds is None:
            return boto3.client("sqs")
        from botocore.config import Config

        timeout = self.call_timeout_seconds
        bounded = Config(
            connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "total_max_attempts": 2}
        )
        return boto3.client("sqs", config=bounded)

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        kwargs: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": carriable_json(body)}
        if attributes:
            kwargs["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        return self.client.send_message(**kwargs)["MessageId"]


class MessageVisibility:
    """Hides a received SQS message for a while: a consumer's own retry delay (backoff, an open
    circuit), instead of sleeping in the function. Capped at SQS's 12 hours."""

    MAX_SECONDS = 43_200

    def __init__(self, client: SQSClient | None = None) -> None:
        self._client = client
        self._urls: dict[str, str] = {}
        self._urls_lock = threading.Lock()  # threads hiding messages at once: one GetQueueUrl a queue

    @cached_property
    def client(self) -> SQSClient:
        return self._client or boto3.client("sqs")

    def hide(self, queue_arn: str, receipt_handle: str, seconds: float) -> int:
        """The seconds the message now stays hidden."""
        with self._urls_lock:
            if queue_arn not in self._urls:
                *_, account, name = queue_arn.split(":")
                self._urls[queue_arn] = self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                    "QueueUrl"
                ]
        wait = max(1, min(self.MAX_SECONDS, round(seconds)))
        self.client.change_message_visibility(
            QueueUrl=self._urls[queue_arn], ReceiptHandle=receipt_handle, VisibilityTimeout=wait
        )
        return wait
