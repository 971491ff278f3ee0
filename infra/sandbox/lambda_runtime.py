"""Invoke the real Lambda handlers the way the Lambda service would, with a Lambda-shaped context, and
SQS / DynamoDB-stream events in the exact shape an event source mapping builds.

``Functions`` runs them in this process, one invocation at a time (one execution environment): what
the integration tests use, and the serial sandbox the benchmark measures as its baseline. The running
sandbox uses ``environments.ProcessFunctions``: concurrent execution environments in worker processes."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import io
import json
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.sandbox.iam import Frozen, acting_as
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


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


class _PerThreadStdout(io.TextIOBase):
    """``sys.stdout`` for the sandbox: an invocation's thread writes into that invocation's buffer
    (as a Lambda's stdout goes to its own log stream); every other thread — the demo printing its
    progress, say — writes to the real stdout. (``contextlib.redirect_stdout`` would swap stdout for
    every thread at once.) The buffer is a context variable, so a handler's own worker threads (each
    task run in a copy of the handler's context) write into its invocation's buffer too."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.buffer: contextvars.ContextVar[io.StringIO | None] = contextvars.ContextVar("stdout", default=None)

    def write(self, text: str) -> int:
        buffer = self.buffer.get()
        return (buffer if buffer is not None else self.real).write(text)

    def flush(self) -> None:
        buffer = self.buffer.get()
        (buffer if buffer is not None else self.real).flush()

    @contextlib.contextmanager
    def capture(self, buffer: io.StringIO) -> Any:
        token = self.buffer.set(buffer)
        try:
            yield
        finally:
            self.buffer.reset(token)


def _stdout() -> _PerThreadStdout:
    if not isinstance(sys.stdout, _PerThreadStdout):
        sys.stdout = _PerThreadStdout(sys.stdout)
    return sys.stdout


class Functions:
    """The handlers, imported after the environment is set (settings are read on first use).

    What an invocation prints to stdout is captured as CloudWatch would: embedded-metric-format
    lines become metric records in ``emf``, anything else goes to ``output`` (or a log file).

    ``credentials``: each function's role session (the sandbox with IAM enforced); an invocation, and
    the event source mapping's calls for it, sign with them. ``None``: the caller's credentials.
    """

    def __init__(self, region: str, name_prefix: str, log_file: Path | None = None) -> None:
        self.region = region
        self.name_prefix = name_prefix
        self.lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self.emf: list[dict[str, Any]] = []
        self.log_file = log_file
        self.echo = False
        self.credentials: dict[str, Frozen] | None = None

    @contextlib.contextmanager
    def role_of(self, name: str) -> Iterator[None]:
        """Calls on this thread sign as function ``name``'s role (as Lambda's do)."""
        if self.credentials is None:
            yield
            return
        if name not in self.credentials:
            raise KeyError(f"function {name!r} has no role in this environment's stack")
        with acting_as(self.credentials[name]):
            yield

    def handler(self, name: str) -> Handler:
        if name not in self._handlers:
            module, attribute = FUNCTIONS[name].handler.rsplit(".", 1)
            self._handlers[name] = getattr(importlib.import_module(module), attribute)
            # Powertools' Logger binds sys.stdout when created; point it at whatever stdout is
            # current, so each invocation's log lines are captured with its output.
            for log_handler in logging.getLogger("aftersync").handlers:
                if isinstance(log_handler, logging.StreamHandler):
                    log_handler.setStream(_CurrentStdout())  # type: ignore[arg-type]
        return self._handlers[name]

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        handler = self.handler(name)
        captured = io.StringIO()
        with self.lock:
            try:
                with _stdout().capture(captured), self.role_of(name):
                    return handler(event, LambdaContext(f"{self.name_prefix}-{name}", self.region))
            finally:
                self._collect(name, captured.getvalue())

    def _collect(self, function: str, output: str) -> None:
        other = []
        for line in output.splitlines():
            if line.startswith('{"_aws"'):
                self.emf.append({"function": function, **json.loads(line)})
            elif line:
                other.append(line)
        if other and self.log_file is not None:
            with self.log_file.open("a", encoding="utf-8") as log:
                log.write("\n".join(other) + "\n")
        if other and self.echo:
            print("\n".join(other), file=sys.stderr)

    def metric_totals(self) -> dict[str, float]:
        """Sum of every count (and byte count) emitted so far, by metric name: the service-wide
        series only, not the per-target or per-reason breakdowns of the same counts."""
        totals: dict[str, float] = {}
        for record in self.emf:
            for directive in record["_aws"]["CloudWatchMetrics"]:
                if directive["Dimensions"] != [["service"]]:
                    continue
                for metric in directive["Metrics"]:
                    if metric.get("Unit") not in ("Count", "Bytes"):
                        continue
                    values = record[metric["Name"]]
                    totals[metric["Name"]] = totals.get(metric["Name"], 0.0) + sum(
                        values if isinstance(values, list) else [values]
                    )
        return totals


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
