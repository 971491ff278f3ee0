"""Batch processing that dead-letters a record *with its reason*.

SQS redrive moves a message to its DLQ after maxReceiveCount receives, but says nothing about why.
On the last receive SQS would allow, this processor sends the record to the queue's DLQ itself,
with the error and the receive count as message attributes, and reports it processed. Native
redrive stays as the safety net for failures the handler never sees (timeouts, crashes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, cast

import boto3
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import BatchTypeModels
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from shared.constants import DLQ_SUFFIX
from shared.masking import VALUE_QUOTING, describe, validation_problems


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


class DeadLetteringProcessor(BatchProcessor):
    """Also counts every record for the sync success rate: ``RecordProcessed`` when the handler
    returned (a quarantine included: the handler counts those as ``EventQuarantined``),
    ``RecordFailed`` when it raised (the record is retried, or dead-lettered: ``DeadLettered``)."""

    def __init__(
        self,
        max_receive_count: int | Callable[[SQSRecord], int],
        logger: Any = None,
        client: Any = None,
        metrics: Any = None,
    ) -> None:
        """``max_receive_count``: one for every record, or per record (each target its own retry budget)."""
        super().__init__(event_type=EventType.SQS, logger=logger)
        self.max_receive_count = max_receive_count
        self._client = client
        self._metrics = metrics
        self._dlq_urls: dict[str, str] = {}

    def _count(self, name: str) -> None:
        if self._metrics is not None:
            self._metrics.add_metric(name=name, unit="Count", value=1)

    def success_handler(self, record: Any, result: Any) -> Any:
        if not (isinstance(result, str) and result.startswith("dead-lettered: ")):
            self._count("RecordProcessed")
        return super().success_handler(record, result)

    @cached_property
    def sqs(self) -> Any:
        return self._client or boto3.client("sqs")

    def failure_handler(self, record: SQSRecord | BatchTypeModels, exception: Any) -> Any:
        message = cast(SQSRecord, record)  # this processor is for SQS batches only
        self._count("RecordFailed")
        receives = int(message.attributes.approximate_receive_count)
        limit = self.max_receive_count if isinstance(self.max_receive_count, int) else self.max_receive_count(message)
        if receives < limit and not isinstance(exception[1], PermanentFailure):
            return super().failure_handler(record, exception)
        queue_name = message.event_source_arn.rsplit(":", 1)[-1]
        dlq = f"{queue_name}{DLQ_SUFFIX}"
        if dlq not in self._dlq_urls:
            self._dlq_urls[dlq] = self.sqs.get_queue_url(QueueName=dlq)["QueueUrl"]
        reason = describe_failure(exception[1])
        self.sqs.send_message(
            QueueUrl=self._dlq_urls[dlq],
            MessageBody=message.body,
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason},
                "source_queue": {"DataType": "String", "StringValue": queue_name},
                "receive_count": {"DataType": "Number", "StringValue": str(receives)},
            },
        )
        if self.logger is not None:
            self.logger.warning(
                "dead-lettered", extra={"reason": reason, "queue": queue_name, "message_id": message.message_id}
            )
        self._count("DeadLettered")
        return self.success_handler(record, f"dead-lettered: {reason}")
