"""Inbox consumer: raw envelopes -> archived (one object per batch) -> canonical observations sent to
their domain's queue (batched SendMessageBatch, each as the EventBridge event sync reads); unusable ->
quarantine. Each payload's shape is compared with its (source, topic)'s known shape, cached by the
container: a drift is recorded and a warning sent to the alarms queue (shared/intake/schema_drift.py).

An observation has one destination (its domain's sync queue), so it does not go through the bus: a
PutEvents entry, EventBridge's delivery into the queue and about half a second saved per observation.
The bus carries what fans out: sync's ``entity.changed``, from the state table's stream (publish)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from shared.adapters.dead_letter import DeadLetteringProcessor
from shared.adapters.events import EventsRefused, OwnedEntry
from shared.adapters.routed_queues import RoutedQueues
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.constants import DETAIL_OBSERVED, EVENT_SOURCE
from shared.errors import NormalisationError
from shared.intake.normalise import normalise_message
from shared.intake.quarantine import park
from shared.intake.raw_archive import Received, archive_raw_batch
from shared.intake.schema_drift import WATCHED_ORIGINS, DriftNotice, SchemaWatch, ShapeStore
from shared.intake.shapes import describe_drifts
from shared.models import InboxMessage, utcnow
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
    """What the function touches: the archive (each batch's envelopes; bodies too large for a message),
    the domain queues, the quarantine, the alarms queue (schema drift notices)."""

    archive: S3Archive
    domains: RoutedQueues
    quarantine: SqsQueue
    alarms: SqsQueue


@cache
def ports() -> Ports:
    s = settings()
    urls = {DETAIL_OBSERVED.format(entity_type=t): url for t, url in s.observed_queue_urls.items()}
    return Ports(
        S3Archive(s.archive_bucket), RoutedQueues(urls), SqsQueue(s.quarantine_queue_url), SqsQueue(s.alarms_queue_url)
    )


@cache
def schema_watch() -> SchemaWatch:
    """The container's known shapes (read once per source and topic, then held: the warm path's
    comparisons cost no AWS call)."""
    s = settings()
    return SchemaWatch(ShapeStore(s.state_table), s.schema_baseline, lambda m, extra: logger.warning(m, extra=extra))


def watch(message: InboxMessage, payload: Any) -> None:
    """Note an accepted payload's shape (memory only; ``commit_drift`` writes what changed per batch)."""
    if message.origin in WATCHED_ORIGINS:
        schema_watch().observe(message.source, message.topic, message.tenant, message.source_event_id, payload)


def commit_drift() -> None:
    """Record what the batch's payloads changed in their shapes and warn of each drift: one notice per
    drifting payload to the alarms queue, where notify digests it with the alarm changes. Never fails a
    record: a failure here is logged and counted (``SchemaWatchFailed``) and the batch goes on."""
    try:
        notices = schema_watch().commit(utcnow())
    except Exception as exc:  # the shapes unreachable: observability lost for a batch, no record held back
        schema_watch().pending.clear()
        logger.warning("schema drift not recorded", extra={"error": type(exc).__name__})
        metrics.add_metric(name="SchemaWatchFailed", unit=MetricUnit.Count, value=1)
        return
    for notice in notices:
        warn(notice)


def warn(notice: DriftNotice) -> None:
    """Count the payload's drifts (``SchemaDrift`` by source and topic), log them (paths only) and send
    the notice."""
    with single_metric(
        name="SchemaDrift", unit=MetricUnit.Count, value=len(notice.drifts), default_dimensions={"service": "aftersync"}
    ) as metric:
        metric.add_dimension(name="source", value=notice.source)
        metric.add_dimension(name="topic", value=notice.topic)
    where = {"source": notice.source, "topic": notice.topic, "delivery": notice.delivery}
    logger.warning("schema drift", extra={**where, "drifts": describe_drifts(notice.drifts)})
    try:
        ports().alarms.send(notice.to_message())
    except Exception as exc:  # recorded and counted all the same; the CLI shows it
        logger.error("schema drift warning not sent", extra={"source": notice.source, "error": type(exc).__name__})
        metrics.add_metric(name="SchemaDriftNotSent", unit=MetricUnit.Count, value=1)


def quarantine(record: SQSRecord, source: str, reason: str) -> None:
    """Park a delivery that verified but cannot be normalised, with its reason; never retried blindly."""
    queue = ports().quarantine
    kept = park(queue, source=source, reason=reason, message_id=record.message_id, envelope=record.body)
    logger.warning("quarantined", extra={"source": source, "reason": kept})
    metrics.add_metric(name="EventQuarantined", unit=MetricUnit.Count, value=1)


def observations(record: SQSRecord) -> list[OwnedEntry[str]]:
    """The observations of one record (owned by its message id); none when it was quarantined."""
    try:
        message = InboxMessage.model_validate_json(record.body)
    except ValidationError as exc:
        quarantine(record, "unknown", f"not an inbox envelope: {describe_error(exc)}")
        return []
    try:
        events = normalise_message(message, ports().archive, settings().field_maps, watch)
    except NormalisationError as exc:
        quarantine(record, exc.source, exc.reason)
        return []
    # Only what the source set travels: a field it did not send must not arrive as an explicit null.
    return [
        OwnedEntry(
            record.message_id,
            DETAIL_OBSERVED.format(entity_type=e.entity_type),
            e.model_dump_json(exclude_unset=True),
        )
        for e in events
    ]


def normalise_batch(records: list[SQSRecord]) -> dict[str, BaseException]:
    """Every record's observations, sent together in as few calls as SQS allows. Returns the records
    that failed (by message id), each with its error: a record with a message refused fails alone and on
    its retry sends all its observations again (sync applies a duplicate as a no-op); a quarantined
    record fails nothing."""
    failed: dict[str, BaseException] = {}
    entries: list[OwnedEntry[str]] = []
    for record in records:
        try:
            entries.extend(observations(record))
        except Exception as exc:  # this record only (a large body unreadable, the quarantine unreachable)
            failed[record.message_id] = exc
    commit_drift()
    for message_id, reason in ports().domains.send_owned(EVENT_SOURCE, entries).items():
        failed[message_id] = EventsRefused([reason])
    put = sum(1 for e in entries if e.owner not in failed)
    metrics.add_metric(name="EventNormalised", unit=MetricUnit.Count, value=put)
    return failed


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    records = [SQSRecord(r) for r in event.get("Records", [])]
    # The raw archive, written before anything of the batch is acknowledged: if it fails, the whole
    # batch fails (the error propagates) and comes back; nothing is acknowledged unarchived.
    archive_raw_batch([Received(r.message_id, r.body) for r in records], ports().archive)
    failed = normalise_batch(records)

    def verdict(record: SQSRecord) -> None:
        """The outcome already decided for the batch, through the processor: its attempts, dead letters
        with the reason, and the batch item failures SQS retries."""
        if record.message_id in failed:
            raise failed[record.message_id]

    return process_partial_response(event=event, record_handler=verdict, processor=processor(), context=context)
