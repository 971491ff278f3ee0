"""State table stream consumer: audit and decision records expiring from the hot table (TTL) are
written to the archive bucket, so the trail stays complete and verifiable after 90 days."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.s3 import S3Archive
from shared.constants import AUDIT_SK_PREFIX, DECISION_SK_PREFIX, TTL_PRINCIPAL, audit_archive_key
from shared.observability import logger, metrics, tracer
from shared.settings import AuditArchiveSettings

processor = BatchProcessor(event_type=EventType.DynamoDBStreams, logger=logger)  # type: ignore[arg-type]


@cache
def settings() -> AuditArchiveSettings:
    return AuditArchiveSettings.from_env()


@cache
def archive() -> S3Archive:
    return S3Archive(settings().archive_bucket)


def record_handler(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    identity = raw.get("userIdentity") or {}
    image = raw.get("dynamodb", {}).get("OldImage") or {}
    sk = image.get("sk", {}).get("S", "")
    # The event source mapping filters to TTL removals of audit and decision records; the guard keeps
    # the handler correct without it. A delete by anyone else is not an expiry and is not archived.
    if raw.get("eventName") != "REMOVE" or identity.get("principalId") != TTL_PRINCIPAL:
        return
    if not sk.startswith((AUDIT_SK_PREFIX, DECISION_SK_PREFIX)):
        return
    body = json.dumps({"pk": image["pk"]["S"], "sk": sk, "record": json.loads(image["record"]["S"])}, sort_keys=True)
    archive().put(audit_archive_key(image["pk"]["S"], sk), body.encode())
    metrics.add_metric(name="AuditArchived", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
