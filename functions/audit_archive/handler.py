"""State table stream consumer: audit and decision records expiring from the hot table (TTL) are
written to the archive bucket as batch objects, so the trail stays complete and verifiable after 90
days at one PutObject per batch and entity shard, not one per record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.s3 import S3Archive
from shared.constants import AUDIT_SK_PREFIX, DECISION_SK_PREFIX, TTL_PRINCIPAL
from shared.observability import logger, metrics, tracer
from shared.settings import AuditArchiveSettings
from shared.state.audit_archive import Expired, audit_batch_objects

processor = BatchProcessor(event_type=EventType.DynamoDBStreams, logger=logger)  # type: ignore[arg-type]


@cache
def settings() -> AuditArchiveSettings:
    return AuditArchiveSettings.from_env()


@cache
def archive() -> S3Archive:
    return S3Archive(settings().archive_bucket)


def expired(record: DynamoDBRecord) -> Expired | None:
    """The audit or decision record a stream record shows expiring; ``None`` for anything else."""
    raw = record.raw_event
    identity = raw.get("userIdentity") or {}
    stream = raw.get("dynamodb", {})
    image = stream.get("OldImage") or {}
    sk = image.get("sk", {}).get("S", "")
    # The event source mapping filters to TTL removals of audit and decision records; the guard keeps
    # the handler correct without it. A delete by anyone else is not an expiry and is not archived.
    if raw.get("eventName") != "REMOVE" or identity.get("principalId") != TTL_PRINCIPAL:
        return None
    if not sk.startswith((AUDIT_SK_PREFIX, DECISION_SK_PREFIX)):
        return None
    removed = stream.get("ApproximateCreationDateTime")  # epoch seconds (a datetime when read with boto3)
    return Expired(
        sequence=str(stream.get("SequenceNumber", "")),
        pk=image["pk"]["S"],
        sk=sk,
        record=json.loads(image["record"]["S"]),
        removed_at=removal_time(removed),
    )


def removal_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC) if value is not None else datetime.now(UTC)


def archive_batch(records: list[DynamoDBRecord]) -> dict[str, BaseException]:
    """The batch's expired records written as batch objects (one PutObject per shard, tenant and type,
    not one per record). Returns the records that failed (by sequence number) with their error: those
    of an object that could not be written, or of an item that does not read."""
    failed: dict[str, BaseException] = {}
    items: list[Expired] = []
    for record in records:
        try:
            item = expired(record)
        except Exception as exc:  # an image that does not read: this record fails
            failed[str(record.dynamodb.sequence_number if record.dynamodb else "")] = exc
            continue
        if item is not None:
            items.append(item)
    for batch_object in audit_batch_objects(items):
        try:
            archive().put_lines(batch_object.key, batch_object.lines)
        except Exception as exc:  # the records in this object fail; the stream retries from the first
            failed.update(dict.fromkeys(batch_object.sequences, exc))
            continue
        metrics.add_metric(name="AuditArchived", unit=MetricUnit.Count, value=len(batch_object.lines))
    return failed


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    failed = archive_batch([DynamoDBRecord(r) for r in event.get("Records", [])])

    def verdict(record: DynamoDBRecord) -> None:
        sequence = str(record.dynamodb.sequence_number if record.dynamodb else "")
        if sequence in failed:
            raise failed[sequence]

    return process_partial_response(event=event, record_handler=verdict, processor=processor, context=context)
