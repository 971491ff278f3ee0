"""Inbox consumer: raw envelope -> canonical observations on the event bus; unusable -> quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from shared.adapters.dead_letter import DeadLetteringProcessor
from shared.adapters.events import EventBus
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.constants import DETAIL_OBSERVED, EVENT_SOURCE
from shared.errors import NormalisationError
from shared.intake.normalise import normalise_message
from shared.intake.quarantine import park
from shared.models import InboxMessage
from shared.observability import logger, metrics, tracer
from shared.settings import NormaliseSettings
from shared.sources.base import describe_error


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@cache
def settings() -> NormaliseSettings:
    return NormaliseSettings.from_env()


@dataclass(frozen=True)
class Ports:
    """What the function touches: the archive (bodies too large for a message), the bus, the quarantine."""

    archive: S3Archive
    bus: EventBus
    quarantine: SqsQueue


@cache
def ports() -> Ports:
    s = settings()
    return Ports(S3Archive(s.archive_bucket), EventBus(s.event_bus), SqsQueue(s.quarantine_queue_url))


def quarantine(record: SQSRecord, source: str, reason: str) -> None:
    """Park a delivery that verified but cannot be normalised, with its reason; never retried blindly."""
    queue = ports().quarantine
    kept = park(queue, source=source, reason=reason, message_id=record.message_id, envelope=record.body)
    logger.warning("quarantined", extra={"source": source, "reason": kept})
    metrics.add_metric(name="EventQuarantined", unit=MetricUnit.Count, value=1)


def record_handler(record: SQSRecord) -> None:
    archive, bus = ports().archive, ports().bus
    try:
        message = InboxMessage.model_validate_json(record.body)
    except ValidationError as exc:
        quarantine(record, "unknown", f"not an inbox envelope: {describe_error(exc)}")
        return
    try:
        events = normalise_message(message, archive, settings().field_maps)
    except NormalisationError as exc:
        quarantine(record, exc.source, exc.reason)
        return
    # Only what the source set travels: a field it did not send must not arrive as an explicit null.
    bus.put(
        EVENT_SOURCE,
        [(DETAIL_OBSERVED.format(entity_type=e.entity_type), e.model_dump_json(exclude_unset=True)) for e in events],
    )
    metrics.add_metric(name="EventNormalised", unit=MetricUnit.Count, value=len(events))


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
