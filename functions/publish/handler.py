"""State table stream consumer: each committed audit record becomes an ``entity.changed`` event.

The audit record is written in the same transaction as the state (transactional outbox), so a
change is published if and only if it was committed — even if a sync function dies right after.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord, DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.events import EventBus
from shared.constants import AUDIT_SK_PREFIX, DETAIL_ENTITY_CHANGED, EVENT_SOURCE
from shared.models import EntityChanged
from shared.observability import logger, metrics, tracer
from shared.settings import PublishSettings
from shared.state.audit import AuditRecord

processor = BatchProcessor(event_type=EventType.DynamoDBStreams, logger=logger)  # type: ignore[arg-type]


@cache
def settings() -> PublishSettings:
    return PublishSettings.from_env()


@cache
def bus() -> EventBus:
    return EventBus(settings().event_bus)


def record_handler(record: DynamoDBRecord) -> None:
    stream = record.dynamodb
    # The event source mapping filters to audit inserts; this guard keeps the handler correct without it.
    if record.event_name != DynamoDBRecordEventName.INSERT or stream is None:
        return
    if not str(stream.keys.get("sk", "")).startswith(AUDIT_SK_PREFIX):
        return
    audit = AuditRecord.model_validate_json(stream.new_image["record"])
    changed = EntityChanged(
        tenant=audit.tenant,
        entity_type=audit.entity_type,
        entity_id=audit.entity_id,
        version=audit.version,
        event_id=audit.event_id,
        origin_source=audit.source,
        occurred_at=audit.occurred_at,
        changed={c["field"]: c["after"] for c in audit.changes},
    )
    bus().put(EVENT_SOURCE, [(DETAIL_ENTITY_CHANGED, changed.model_dump_json())])
    metrics.add_metric(name="ChangePublished", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
