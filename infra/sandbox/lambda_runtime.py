"""Invoke the real Lambda handlers the way the Lambda service would: one invocation at a time per
process (like one execution environment), with a Lambda-shaped context, and SQS / DynamoDB-stream
events in the exact shape an event source mapping builds."""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.wiring import FUNCTIONS

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    function_name: str
    region: str
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "sandbox"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class Functions:
    """The handlers, imported after the environment is set (settings are read on first use)."""

    def __init__(self, region: str, name_prefix: str) -> None:
        self.region = region
        self.name_prefix = name_prefix
        self.lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}

    def handler(self, name: str) -> Handler:
        if name not in self._handlers:
            module, attribute = FUNCTIONS[name].handler.rsplit(".", 1)
            self._handlers[name] = getattr(importlib.import_module(module), attribute)
        return self._handlers[name]

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        handler = self.handler(name)
        with self.lock:
            return handler(event, LambdaContext(f"{self.name_prefix}-{name}", self.region))


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
        },
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value.get("DataType", "String")}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
