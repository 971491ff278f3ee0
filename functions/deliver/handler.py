"""Delivery queue consumer (one queue per target): push the target's unacknowledged changes."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.aws import SecretReader
from shared.adapters.dead_letter import DeadLetteringProcessor
from shared.adapters.http import Urllib3Http
from shared.adapters.state_store import DynamoStateStore
from shared.constants import target_from_queue_name, target_secret_name
from shared.delivery import deliver_change
from shared.errors import ConfigurationError, DeliveryFailed
from shared.models import EntityChanged, utcnow
from shared.observability import count_by, logger, metrics, tracer
from shared.settings import DeliverSettings


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@cache
def settings() -> DeliverSettings:
    return DeliverSettings.from_env()


@cache
def adapters() -> tuple[DynamoStateStore, Urllib3Http, SecretReader]:
    s = settings()
    return DynamoStateStore(s.state_table), Urllib3Http(), SecretReader(max_age=s.secrets_max_age_seconds)


def record_handler(record: SQSRecord) -> None:
    s = settings()
    store, http, secrets = adapters()
    target = s.target(target_from_queue_name(record.event_source_arn.rsplit(":", 1)[-1], s.environment))
    changed = EntityChanged.model_validate(EventBridgeModel.model_validate(record.json_body).detail)
    secret_name = target_secret_name(s.secrets_prefix, target.name)
    credentials = secrets.get_json(secret_name)
    if credentials is None:
        raise ConfigurationError(f"secret {secret_name!r} for target {target.name!r} does not exist")
    try:
        result = deliver_change(changed, target, store, http, credentials)
    except DeliveryFailed:
        count_by("DeliveryFailed", "target", target.name)
        raise
    logger.info(
        "delivery",
        extra={
            "target": target.name,
            "entity_id": changed.entity_id,
            "outcome": result.outcome,
            "version": result.version,
        },
    )
    if result.outcome == "sent":
        metrics.add_metric(name="DeliverySucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="DeliveredBytes", unit=MetricUnit.Bytes, value=result.payload_bytes)
        # Freshness: from the source's own time of the change to its delivery (a distribution: p50/p99)
        freshness_ms = max(0.0, (utcnow() - changed.occurred_at).total_seconds() * 1000)
        metrics.add_metric(name="Freshness", unit=MetricUnit.Milliseconds, value=freshness_ms)
        count_by("DeliverySucceeded", "target", target.name)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
