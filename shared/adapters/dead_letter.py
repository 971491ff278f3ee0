"""Batch processing that dead-letters a record *with its reason*.

SQS redrive moves a message to its DLQ after maxReceiveCount receives, but says nothing about why.
On the last attempt the record's budget allows, this processor sends the record to the queue's DLQ
itself, with the error and the attempts as message attributes, and reports it processed. Waiting
(``Deferred``) is not an attempt (see ``DeadLetteringProcessor``). Native redrive stays as the safety
net for failures the handler never sees (timeouts, crashes).
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import BatchTypeModels
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from shared.adapters.sqs import MessageVisibility
from shared.constants import DLQ_SUFFIX
from shared.masking import VALUE_QUOTING, describe, validation_problems

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import MessageAttributeValueTypeDef

ATTEMPTS_ATTRIBUTE = "attempts"  # a record's attempts before this message, on a copy sent back to its queue
MAX_DELAY_SECONDS = 900  # SQS DelaySeconds


def describe_failure(error: BaseException) -> str:
    """The reason kept with a dead letter (and logged): field paths and error kinds, never the values.
    A validation error's text, ``int()``'s or a ``KeyError``'s would quote the input, and the input
    may hold a name, a phone number or an address. Our own errors keep their words (see ``describe``)."""
    if isinstance(error, ValidationError):
        problems = "; ".join(validation_problems(error))
        return f"ValidationError ({error.error_count()}): {problems}"[:1000]
    if isinstance(error, VALUE_QUOTING):
        return describe(error)[:1000]
    return f"{type(error).__name__}: {describe(error)}"[:1000]


class PermanentFailure(Exception):
    """A record that no retry can fix: dead-lettered at once, with this as its reason."""


class Deferred(Exception):
    """The record was not attempted: it waits ``seconds`` (an open circuit, a rate limit, too little
    time left in the invocation). Neither an attempt nor a failure: it comes back as a new message
    carrying its attempts so far, and the one received is reported processed."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


class TryAgain(Exception):
    """An attempt that failed and may succeed later (a 5xx, no answer): an attempt and a failure.
    Tried again after ``seconds``, or dead-lettered with this reason once the budget is used."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


class DeadLetteringProcessor(BatchProcessor):
    """Also counts every record for the sync success rate: ``RecordProcessed`` when the handler
    returned (a quarantine included: the handler counts those as ``EventQuarantined``),
    ``RecordFailed`` when it raised (the record is retried, or dead-lettered: ``DeadLettered``), and
    ``RecordDeferred`` — in neither side of the rate — when it only waited (``Deferred``).

    Attempts, not receives, use a record's budget. A wait sends a copy of the message back to its
    queue with ``DelaySeconds`` (at most 15 minutes; a longer wait is deferred again when it comes
    back) and the ``attempts`` message attribute, and the message received is deleted: a wait never
    leaves a message to be received again, so the receive count of one message counts attempts only.
    A ``TryAgain`` within 15 minutes travels the same way with one attempt more; a longer one hides
    the message (its receive count then counts the attempt). A record is dead-lettered when its
    attempts — ``attempts`` plus this message's receives — reach the budget, before native redrive
    (maxReceiveCount = the same budget) could move it: redrive only sees receives that ended without
    a verdict (a timeout, a crash). A copy sent twice (a crash between the send and the delete) is a
    duplicate the consumers already absorb (deliveries are idempotent against the ack item)."""

    def __init__(
        self,
        max_receive_count: int | Callable[[SQSRecord], int],
        logger: Any = None,
        client: SQSClient | None = None,
        metrics: Any = None,
    ) -> None:
        """``max_receive_count``: the attempts, one for every record or per record (each target its own
        retry budget)."""
        super().__init__(event_type=EventType.SQS, logger=logger)
        self.max_receive_count = max_receive_count
        self._client = client
        self._metrics = metrics
        self._dlq_urls: dict[str, str] = {}
        self._queue_urls: dict[str, str] = {}
        # a batch's records run on threads (deliver): one GetQueueUrl per queue, not one per thread that
        # asked while the first was in flight
        self._urls_lock = threading.Lock()

    @staticmethod
    def attempts(record: SQSRecord) -> int:
        """The record's attempts, this receive included: those its earlier copies carry in the
        ``attempts`` attribute, and this message's receives."""
        carried = (record.raw_event.get("messageAttributes") or {}).get(ATTEMPTS_ATTRIBUTE) or {}
        value = str(carried.get("stringValue") or "0")
        earlier = int(value) if value.isascii() and value.isdigit() and len(value) < 10 else 0
        return earlier + int(record.attributes.approximate_receive_count)

    def _count(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit="Count", value=1)

    def success_handler(self, record: Any, result: Any) -> Any:
        self._count("RecordProcessed")
        return super().success_handler(record, result)

    @cached_property
    def sqs(self) -> SQSClient:
        return self._client or boto3.client("sqs")

    @cached_property
    def visibility(self) -> MessageVisibility:
        return MessageVisibility(self.sqs)

    def failure_handler(self, record: SQSRecord | BatchTypeModels, exception: Any) -> Any:
        message = cast(SQSRecord, record)  # this processor is for SQS batches only
        error = exception[1]
        attempts = self.attempts(message)
        if isinstance(error, Deferred):
            return self._come_back(message, error.seconds, attempts - 1, exception)  # this receive: no attempt
        self._count("RecordFailed")
        limit = self.max_receive_count if isinstance(self.max_receive_count, int) else self.max_receive_count(message)
        if attempts >= limit or isinstance(error, PermanentFailure):
            return self._dead_letter(message, error, attempts)
        if isinstance(error, TryAgain):
            if error.seconds <= MAX_DELAY_SECONDS:
                return self._come_back(message, error.seconds, attempts, exception)
            try:
                self.visibility.hide(message.event_source_arn, message.receipt_handle, error.seconds)
            except Exception as exc:  # then the queue's visibility timeout decides when it comes back
                self._warn("could not hide the record", exc)
        return super().failure_handler(record, exception)

    def _come_back(self, message: SQSRecord, seconds: float, attempts: int, exception: Any) -> Any:
        """A copy of the message, back in ``seconds`` (at most 15 minutes) with ``attempts``; the
        message received is reported processed."""
        delay = max(0, min(MAX_DELAY_SECONDS, math.ceil(seconds)))
        attributes: dict[str, MessageAttributeValueTypeDef] = {}
        for name, value in (message.raw_event.get("messageAttributes") or {}).items():
            kept = _attribute(value)
            if name != ATTEMPTS_ATTRIBUTE and kept is not None:
                attributes[name] = kept
        attributes[ATTEMPTS_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(attempts)}
        try:
            self.sqs.send_message(
                QueueUrl=self._queue_url(message.event_source_arn),
                MessageBody=message.body,
                MessageAttributes=attributes,
                DelaySeconds=delay,
            )
        except Exception as exc:  # the copy could not be sent: the message itself comes back instead
            self._warn("could not send the record back", exc)
            if isinstance(exception[1], Deferred):
                self._count("RecordFailed")
            return super().failure_handler(message, exception)
        if isinstance(exception[1], Deferred):
            self._count("RecordDeferred")
        return super().success_handler(message, f"back in {delay} s: {exception[1]}")

    def _warn(self, what: str, error: BaseException) -> None:
        if self.logger is not None:
            self.logger.warning(what, extra={"error": type(error).__name__})

    def _queue_url(self, queue_arn: str) -> str:
        with self._urls_lock:
            if queue_arn not in self._queue_urls:
                *_, account, name = queue_arn.split(":")
                self._queue_urls[queue_arn] = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                    "QueueUrl"
                ]
            return self._queue_urls[queue_arn]

    def _dead_letter(self, message: SQSRecord, error: BaseException, attempts: int) -> Any:
        queue_name = message.event_source_arn.rsplit(":", 1)[-1]
        dlq = f"{queue_name}{DLQ_SUFFIX}"
        with self._urls_lock:
            if dlq not in self._dlq_urls:
                self._dlq_urls[dlq] = self.sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
        reason = describe_failure(error)
        # Not the ``attempts`` attribute: a message sent back from the DLQ starts a new budget.
        self.sqs.send_message(
            QueueUrl=self._dlq_urls[dlq],
            MessageBody=message.body,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason},
                "source_queue": {"DataType": "String", "StringValue": queue_name},
                "receive_count": {"DataType": "Number", "StringValue": str(attempts)},
            },
        )
        if self.logger is not None:
            self.logger.warning(
                "dead-lettered", extra={"reason": reason, "queue": queue_name, "message_id": message.message_id}
            )
        self._count("DeadLettered")
        return super().success_handler(message, f"dead-lettered: {reason}")


def _attribute(value: dict[str, Any]) -> MessageAttributeValueTypeDef | None:
    """A message attribute as the Lambda event shows it, as SendMessage takes it."""
    if value.get("stringValue") is not None:
        return {"DataType": value["dataType"], "StringValue": value["stringValue"]}
    if value.get("binaryValue") is not None:
        return {"DataType": value["dataType"], "BinaryValue": base64.b64decode(value["binaryValue"])}
    return None
