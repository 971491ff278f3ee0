"""Orders queue consumer: merge each observed order into its per-entity state."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.state_store import DynamoStateStore
from shared.models import ObservedEntity
from shared.observability import logger, metrics, tracer
from shared.settings import SyncSettings
from shared.state.policy import default_policy
from shared.sync import apply_observation

processor = BatchProcessor(event_type=EventType.SQS, logger=logger)  # type: ignore[arg-type]


@cache
def settings() -> SyncSettings:
    return SyncSettings.from_env()


@cache
def store() -> DynamoStateStore:
    return DynamoStateStore(settings().state_table)


def record_handler(record: SQSRecord) -> None:
    event = ObservedEntity.model_validate(EventBridgeModel.model_validate(record.json_body).detail)
    result = apply_observation(event, store(), default_policy())
    logger.info(
        "order merged",
        extra={
            "entity_id": event.entity_id,
            "event_id": event.event_id,
            "outcome": result.outcome,
            "version": result.version,
            "changed": result.changed_fields,
            "discarded": result.discarded_fields,
        },
    )
    metrics.add_metric(
        name="StateChanged" if result.outcome == "changed" else "StateUnchanged",
        unit=MetricUnit.Count,
        value=1,
    )
    if result.attempts > 1:
        metrics.add_metric(name="StateConflictRetry", unit=MetricUnit.Count, value=result.attempts - 1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
