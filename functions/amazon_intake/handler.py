"""SP-API notification queue consumer: admit each ORDER_CHANGE into the inbox like a webhook.

Amazon writes to this queue itself (its access policy admits Amazon's principal), so the trust
boundary is the queue policy, not a signature. A notification that cannot be admitted — malformed,
a seller mapped to no tenant, a NotificationId seen with another body — is quarantined with the
reason; an AWS failure is retried by SQS and dead-lettered with its reason on the last receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dead_letter import DeadLetteringProcessor
from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.errors import WebhookRejected
from shared.intake.ingest import StorePorts, accept_notification
from shared.intake.quarantine import park
from shared.observability import logger, metrics, tracer
from shared.settings import AmazonIntakeSettings
from shared.sources import AMAZON


@cache
def settings() -> AmazonIntakeSettings:
    return AmazonIntakeSettings.from_env()


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@dataclass(frozen=True)
class Ports:
    """What the function touches: where an admitted notification goes, and the quarantine."""

    store: StorePorts
    quarantine: SqsQueue


@cache
def ports() -> Ports:
    s = settings()
    store = StorePorts(
        archive=S3Archive(s.archive_bucket),
        inbox=SqsQueue(s.inbox_queue_url),
        once=AdmissionLedger(s.idempotency_table, s.idempotency_ttl_seconds),
    )
    return Ports(store=store, quarantine=SqsQueue(s.quarantine_queue_url))


def record_handler(record: SQSRecord) -> None:
    store, quarantine = ports().store, ports().quarantine
    sent = int(record.attributes.sent_timestamp) / 1000
    try:
        accepted = accept_notification(
            AMAZON, record.body.encode("utf-8"), datetime.fromtimestamp(sent, UTC), settings().sellers, store
        )
    except WebhookRejected as exc:
        park(
            quarantine,
            source=AMAZON.name,
            reason=f"{exc.reason}: {exc}",
            message_id=record.message_id,
            envelope=record.body,
        )
        logger.warning("notification quarantined", extra={"reason": exc.reason, "detail": str(exc)})
        metrics.add_metric(name="EventQuarantined", unit=MetricUnit.Count, value=1)
        return
    logger.info(
        "notification accepted",
        extra={
            "dedupe_key": accepted.message.dedupe_key,
            "topic": accepted.message.topic,
            "duplicate": accepted.duplicate,
        },
    )
    metrics.add_metric(
        name="WebhookDuplicate" if accepted.duplicate else "WebhookAccepted", unit=MetricUnit.Count, value=1
    )


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    ports().store.once.register_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
