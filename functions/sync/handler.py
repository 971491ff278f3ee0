"""Domain queue consumer: merge each observed entity into its per-entity state.

One function serves the orders, after-sales, logistics and tickets queues; each queue has its own
event source mapping, so a backlog in one domain does not hold up another.
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

from shared.adapters.dead_letter import DeadLetteringProcessor
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.secrets import SecretReader
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from shared.constants import tenant_salt_secret_name
from shared.identity.customer_link import link_customers
from shared.identity.resolver import salt_from_secret
from shared.intake.quarantine import park
from shared.models import ObservedEntity
from shared.observability import logger, metrics, tracer
from shared.settings import SyncSettings
from shared.sources.base import describe_error
from shared.state.policy import default_policy
from shared.state.sync import apply_observation


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


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


def identity_index(tenant: str) -> DynamoIdentityIndex:
    return DynamoIdentityIndex(settings().state_table, tenant, ports().store.client)


def tenant_salt(tenant: str) -> bytes:
    name = tenant_salt_secret_name(settings().secrets_prefix, tenant)
    return salt_from_secret(ports().secrets.get_json(name), name)


def quarantine(record: SQSRecord, reason: str) -> None:
    """An observation that can never merge (unknown entity type, a field no policy knows): parked
    with its reason instead of being retried into the DLQ."""
    queue = ports().quarantine
    park(queue, source="sync", reason=reason, message_id=record.message_id, envelope=record.body)
    logger.warning("quarantined", extra={"reason": reason})
    metrics.add_metric(name="EventQuarantined", unit=MetricUnit.Count, value=1)


def record_handler(record: SQSRecord) -> None:
    envelope = EventBridgeModel.model_validate(record.json_body)  # not an EventBridge event: retry, then DLQ
    try:
        event = ObservedEntity.model_validate(envelope.detail)
    except ValidationError as exc:
        quarantine(record, describe_error(exc))  # a field path and an error kind, never the value
        return
    store = ports().store
    for observation in link_customers(event, identity_index, tenant_salt, settings().default_phone_region):
        result = apply_observation(observation, store, default_policy())
        logger.info(
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
        metrics.add_metric(
            name="StateChanged" if result.outcome == "changed" else "StateUnchanged", unit=MetricUnit.Count, value=1
        )
        if result.discarded_fields:
            metrics.add_metric(name="ValuesDiscarded", unit=MetricUnit.Count, value=len(result.discarded_fields))
        if result.attempts > 1:
            metrics.add_metric(name="StateConflictRetry", unit=MetricUnit.Count, value=result.attempts - 1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
