"""State table stream consumer: each committed audit record becomes an ``entity.changed`` event, sent to
every queue that takes it.

The audit record is written in the same transaction as the state (transactional outbox), so a
change is published if and only if it was committed — even if a sync function dies right after.

The queues (each target's deliver queue, the automation queue) come with their EventBridge patterns
(``infra.wiring.change_routes``), and publish evaluates them itself (``shared.routing``): it sends each
change, as the EventBridge event a rule would have delivered, to every queue whose pattern it matches,
with SendMessageBatch across the batch's records. Through the bus, each change cost a PutEvents entry
($1.00 a million) and a SendMessage by EventBridge per queue, for a fan-out known at deploy time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord, DynamoDBRecordEventName
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.events import EventsRefused, OwnedEntry
from shared.adapters.routed_queues import RoutedQueues
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
def queues() -> RoutedQueues:
    return RoutedQueues({})


def change(record: DynamoDBRecord) -> EntityChanged | None:
    """The change a stream record announces; ``None`` for anything but an audit insert."""
    stream = record.dynamodb
    # The event source mapping filters to audit inserts; this guard keeps the handler correct without it.
    if record.event_name != DynamoDBRecordEventName.INSERT or stream is None:
        return None
    if not str(stream.keys.get("sk", "")).startswith(AUDIT_SK_PREFIX):
        return None
    audit = AuditRecord.model_validate_json(stream.new_image["record"])
    return EntityChanged(
        tenant=audit.tenant,
        entity_type=audit.entity_type,
        entity_id=audit.entity_id,
        version=audit.version,
        event_id=audit.event_id,
        origin_source=audit.source,
        occurred_at=audit.occurred_at,
        changed={c["field"]: c["after"] for c in audit.changes},
    )


def destinations(changed: EntityChanged) -> list[str]:
    """The queues whose pattern the change's event matches, in the routes' order."""
    event = {"source": EVENT_SOURCE, "detail-type": DETAIL_ENTITY_CHANGED, "detail": changed.model_dump(mode="json")}
    return [route.queue for route in settings().change_routes if route.matches(event)]


def publish_batch(records: list[DynamoDBRecord]) -> dict[str, BaseException]:
    """The batch's changes, each to the queues that take it, in calls of up to 10 messages per queue.
    Returns the records that failed (by sequence number) with their error: a record is published only
    when every queue took its change. The stream checkpoints before the lowest one reported and retries
    from there, so a record after it (or a queue that took it already) gets it again: ``entity.changed``
    carries the version, and deliveries and automation are idempotent against it."""
    failed: dict[str, BaseException] = {}
    addressed: list[tuple[str, OwnedEntry[str]]] = []
    changes = 0
    for record in records:
        sequence = str(record.dynamodb.sequence_number if record.dynamodb else "")
        try:
            changed = change(record)
        except Exception as exc:  # an audit record that does not read: this record fails
            failed[sequence] = exc
            continue
        if changed is None:
            continue
        changes += 1
        entry = OwnedEntry(sequence, DETAIL_ENTITY_CHANGED, changed.model_dump_json())
        addressed += [(queue, entry) for queue in destinations(changed)]
    for sequence, reason in queues().send_to(EVENT_SOURCE, addressed).items():
        failed[sequence] = EventsRefused([reason])
    published = changes - sum(1 for e in failed.values() if isinstance(e, EventsRefused))
    metrics.add_metric(name="ChangePublished", unit=MetricUnit.Count, value=published)
    return failed


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    failed = publish_batch([DynamoDBRecord(r) for r in event.get("Records", [])])

    def verdict(record: DynamoDBRecord) -> None:
        """The outcome decided for the batch, reported through the processor (batch item failures)."""
        sequence = str(record.dynamodb.sequence_number if record.dynamodb else "")
        if sequence in failed:
            raise failed[sequence]

    return process_partial_response(event=event, record_handler=verdict, processor=processor, context=context)
