"""Domain queue consumer: merge each observed entity into its per-entity state.

One function serves the orders, after-sales, logistics and tickets queues; each queue has its own
event source mapping, so a backlog in one domain does not hold up another.

The records of a batch are merged concurrently (a small thread pool: the time is spent waiting on
DynamoDB), except that records about the same entity run one after another in arrival order, so they
do not race each other's conditional writes. Failures are reported per record, exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from shared.adapters.concurrent_records import ConcurrentRecordsProcessor, detail_key
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.secrets import SecretReader
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore, ReadAhead, ReadAheadStore, state_key
from shared.constants import tenant_salt_secret_name
from shared.identity.customer_link import (
    expected_customer,
    linked_observations,
    source_customer_ref,
    states_to_read,
)
from shared.identity.resolver import salt_from_secret
from shared.intake.quarantine import park
from shared.models import ObservedEntity
from shared.observability import counted, logger, metrics, tracer
from shared.settings import SyncSettings
from shared.sources.base import describe_error
from shared.state.policy import default_policy
from shared.state.sync import apply_observation

RECORD_WORKERS = 8  # records of one batch in flight at once (a batch is at most 10 records)
entity_of = detail_key("tenant", "entity_type", "entity_id")  # one entity's records in arrival order


@cache
def processor() -> ConcurrentRecordsProcessor:
    return ConcurrentRecordsProcessor(
        settings().max_receive_count,
        logger=logger,
        metrics=counted,
        group_of=entity_of,
        workers=RECORD_WORKERS,
        prepare=warm_clients,
    )


def warm_clients() -> None:
    p = ports()
    _ = (p.store.client, p.quarantine.client, p.secrets.provider, processor().sqs)


@cache
def settings() -> SyncSettings:
    return SyncSettings.from_env()


@dataclass(frozen=True)
class Ports:
    """What the function touches: the state (and the identity index in the same table), the quarantine,
    the tenants' identity salts."""

    store: DynamoStateStore
    quarantine: SqsQueue
    secrets: SecretReader


@cache
def ports() -> Ports:
    s = settings()
    return Ports(
        DynamoStateStore(s.state_table), SqsQueue(s.quarantine_queue_url), SecretReader(s.secrets_max_age_seconds)
    )


def identity_index(tenant: str, read_ahead: ReadAhead | None = None) -> DynamoIdentityIndex:
    return DynamoIdentityIndex(settings().state_table, tenant, ports().store.client, read_ahead)


def tenant_salt(tenant: str) -> bytes:
    name = tenant_salt_secret_name(settings().secrets_prefix, tenant)
    return salt_from_secret(ports().secrets.get_json(name), name)


def quarantine(record: SQSRecord, reason: str) -> None:
    """An observation that can never merge (unknown entity type, a field no policy knows): parked
    with its reason instead of being retried into the DLQ."""
    queue = ports().quarantine
    park(queue, source="sync", reason=reason, message_id=record.message_id, envelope=record.body)
    logger.warning("quarantined", extra={"reason": reason})
    counted.add_metric(name="EventQuarantined", unit=MetricUnit.Count, value=1)


def record_handler(record: SQSRecord) -> None:
    envelope = EventBridgeModel.model_validate(record.json_body)  # not an EventBridge event: retry, then DLQ
    try:
        event = ObservedEntity.model_validate(envelope.detail)
    except ValidationError as exc:
        quarantine(record, describe_error(exc))  # a field path and an error kind, never the value
        return
    # The states this record will merge into are read with the identity lookup (one BatchGetItem), and
    # so is the profile of the customer it most likely names; a record without a customer reads its
    # state on its own.
    reads = ReadAhead()
    salt = tenant_salt(event.tenant) if source_customer_ref(event) else b""
    for key in states_to_read(event, salt):
        reads.want(state_key(*key))
    index = identity_index(event.tenant, reads)
    if customer := expected_customer(event, salt):
        index.expect(customer)
    store = ReadAheadStore(ports().store, reads)
    linked = linked_observations(event, lambda _: index, lambda _: salt, settings().default_phone_region)
    for observation, hint in ((link.observation, link.hint) for link in linked):
        result = apply_observation(observation, store, default_policy(), hint=hint)
        logger.debug(  # per record: DEBUG (sampled); the audit trail is the durable trace
            "merged",
            extra={
                "entity_type": observation.entity_type,
                "entity_id": observation.entity_id,
                "event_id": observation.event_id,
                "outcome": result.outcome,
                "version": result.version,
                "changed": result.changed_fields,
                "discarded": result.discarded_fields,
            },
        )
        counted.add_metric(
            name="StateChanged" if result.outcome == "changed" else "StateUnchanged", unit=MetricUnit.Count, value=1
        )
        if result.discarded_fields:
            counted.add_metric(name="ValuesDiscarded", unit=MetricUnit.Count, value=len(result.discarded_fields))
        if result.attempts > 1:
            counted.add_metric(name="StateConflictRetry", unit=MetricUnit.Count, value=result.attempts - 1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
