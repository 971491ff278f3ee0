"""Delivery queue consumer (one queue per target): push the target's unacknowledged changes.

Before calling the target: its circuit (open: the message waits in the queue until the pause is
over) and its rate limit (used up: the message comes back in a second or two). After: a retriable
failure (408/425/429/5xx, no answer) counts toward the circuit and sends the message back after the
target's ``Retry-After`` or an exponential backoff with jitter — through the message's visibility,
never by sleeping here; a change the target can never take (another 4xx, an address the SSRF guard
refuses) goes to the target's DLQ at once with the response. The retry budget is the target's own.
"""

from __future__ import annotations

import random
import time
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.aws import MessageVisibility, SecretReader
from shared.adapters.dead_letter import DeadLetteringProcessor, PermanentFailure
from shared.adapters.guards import DynamoGuards
from shared.adapters.http import SafeHttp, TargetRefused
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.wecom import DynamoMinuteSlots
from shared.constants import target_from_queue_name, target_secret_name
from shared.delivery import DeliveryRejected, deliver_change
from shared.errors import ConfigurationError, DeliveryFailed
from shared.models import EntityChanged, utcnow
from shared.observability import count_by, logger, metrics, tracer
from shared.settings import DeliverSettings
from shared.targets import TargetConfig


class NotDeliveredYet(Exception):
    """The message goes back to the queue and is tried again when its visibility runs out."""


@cache
def settings() -> DeliverSettings:
    return DeliverSettings.from_env()


def target_of(record: SQSRecord) -> TargetConfig:
    s = settings()
    return s.target(target_from_queue_name(record.event_source_arn.rsplit(":", 1)[-1], s.environment))


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(lambda record: target_of(record).retry.max_attempts, logger=logger, metrics=metrics)


@cache
def adapters() -> tuple[DynamoStateStore, SafeHttp, SecretReader, DynamoGuards, MessageVisibility, DynamoMinuteSlots]:
    s = settings()
    return (
        DynamoStateStore(s.state_table),
        SafeHttp(allow_private=s.allow_http_targets),
        SecretReader(max_age=s.secrets_max_age_seconds),
        DynamoGuards(s.state_table),
        MessageVisibility(),
        DynamoMinuteSlots(s.state_table),  # a WeCom robot target's 20 messages a minute
    )


def come_back_in(record: SQSRecord, seconds: float, why: str) -> NotDeliveredYet:
    """Hide the message for ``seconds`` (the retry's wait), and the exception that fails its record."""
    wait = adapters()[4].hide(record.event_source_arn, record.receipt_handle, seconds)
    return NotDeliveredYet(f"{why}; next try in {wait} s")


def record_handler(record: SQSRecord) -> None:
    store, http, secrets, guards, *_ = adapters()
    target = target_of(record)
    changed = EntityChanged.model_validate(EventBridgeModel.model_validate(record.json_body).detail)
    now = time.time()
    circuit = guards.circuit(target.name)
    if circuit.open_for(now) > 0:
        metrics.add_metric(name="DeliveryDeferred", unit=MetricUnit.Count, value=1)
        jitter = random.uniform(0, 2)  # noqa: S311 - spreading retries, not a secret
        raise come_back_in(record, circuit.open_for(now) + jitter, f"circuit of {target.name} is open")
    if target.kind == "wecom" and not adapters()[5].take(target.name, utcnow()):
        metrics.add_metric(name="DeliveryDeferred", unit=MetricUnit.Count, value=1)
        raise come_back_in(
            record, 61 - utcnow().second, f"robot {target.name}: its 20 messages of this minute are used"
        )
    if not guards.take(target, now):
        metrics.add_metric(name="DeliveryDeferred", unit=MetricUnit.Count, value=1)
        jitter = random.uniform(0, 1)  # noqa: S311 - spreading retries, not a secret
        raise come_back_in(record, 1 + jitter, f"rate limit of {target.name} reached")
    secret_name = target_secret_name(settings().secrets_prefix, target.name)
    credentials = secrets.get_json(secret_name)
    if credentials is None:
        raise ConfigurationError(f"secret {secret_name!r} for target {target.name!r} does not exist")
    try:
        result = deliver_change(changed, target, store, http, credentials)
    except (DeliveryRejected, TargetRefused) as exc:
        count_by("DeliveryFailed", "target", target.name)
        raise PermanentFailure(str(exc)) from exc
    except DeliveryFailed as exc:
        count_by("DeliveryFailed", "target", target.name)
        after = guards.failed(target, now)
        attempt = int(record.attributes.approximate_receive_count)
        wait: float = exc.retry_after if exc.retry_after is not None else target.retry.delay(attempt)
        if after.open_for(now) > wait:
            wait = after.open_for(now)
        raise come_back_in(record, wait, str(exc)) from exc
    if circuit.failures:
        guards.succeeded(target.name)
    if result.missing:
        logger.warning("mapped fields missing", extra={"target": target.name, "fields": list(result.missing)})
        metrics.add_metric(name="DeliveryFieldMissing", unit=MetricUnit.Count, value=len(result.missing))
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
