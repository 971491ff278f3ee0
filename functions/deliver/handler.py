"""Delivery queue consumer (one queue per target): push the target's unacknowledged changes.

Waiting is not failing. Before calling the target, the record may have to wait: too little time
left in this invocation for a call and a reserve to record its failure, the target's circuit is
open, its rate limit or a WeCom robot's minute is used up. A wait raises ``Deferred``: the
processor sends a copy of the message back to the queue (``DelaySeconds``, with the record's
attempts so far) and reports the one received processed — no attempt of the target's budget used,
no ``RecordFailed`` (``RecordDeferred`` instead), and nothing native redrive could count. A call
that starts is bounded by the invocation too: it ends ``INVOCATION_RESERVE_SECONDS`` before the invocation does.

An attempt that fails and may succeed later (408/425/429/5xx, no answer) counts toward the circuit
and comes back after the target's ``Retry-After`` or an exponential backoff with jitter (at least
the circuit's pause) — through a delayed copy or the message's visibility, never by sleeping here;
it is an attempt and a ``RecordFailed``, and after ``retry.max_attempts`` attempts the record goes to
the target's DLQ with the reason. A change the target can never take (another 4xx, an address the
SSRF guard refuses) goes to the DLQ at once with the response.

No hot key on the way: the circuit is read once per ``circuit.cache_seconds`` per warm container, and a
rate-limited target's send slots are leased a block at a time (``shared/adapters/circuit.py``), so a
delivery in steady state costs two AWS calls: the state and the ack read together, and the ack written.

A batch's records are delivered on threads (``shared/adapters/concurrent_records.py``), as sync merges
its records: the time is spent waiting on the target's answer, so the changes of different entities wait
together instead of one after another, and one entity's changes to the target stay in arrival order (one
thread, grouped by target, tenant, entity type and id). The clients are made before the pool; what the
threads share per container takes its own locks: the guards (a rate-limit slot is never handed out
twice), the robot's minute, the secrets' cache, the HTTP client's pools (a kept connection per thread),
the metrics. While the container's copy of a target's circuit shows failures, its deliveries to that
target go one at a time again (after the circuit's pause one delivery decides, the others learn its
verdict and wait without an attempt). Failures are reported per record exactly as before.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.circuit import CircuitState, DynamoGuards
from shared.adapters.concurrent_records import ConcurrentRecordsProcessor, detail_key
from shared.adapters.dead_letter import DeadLetteringProcessor, Deferred, PermanentFailure, TryAgain
from shared.adapters.http import SafeHttp, TargetRefused, deadline_from
from shared.adapters.robot_slots import DynamoMinuteSlots
from shared.adapters.secrets import SecretReader
from shared.adapters.state_store import DynamoStateStore
from shared.constants import INVOCATION_RESERVE_SECONDS, target_from_queue_name, target_secret_name
from shared.delivery.deliver import DeliveryRejected, deliver_change
from shared.delivery.targets import TargetConfig
from shared.errors import ConfigurationError, DeliveryFailed
from shared.models import EntityChanged, utcnow
from shared.observability import count_by, counted, logger, metrics, tracer
from shared.settings import DeliverSettings

RECORD_WORKERS = 10  # deliveries of one batch in flight at once: a whole batch (at most 10 records)
# one entity's changes to one target (its queue) in arrival order
change_of = detail_key("tenant", "entity_type", "entity_id", per_queue=True)


class NotDeliveredYet(TryAgain):
    """The target did not take the change this time: tried again after ``seconds``."""


@cache
def settings() -> DeliverSettings:
    return DeliverSettings.from_env()


def target_of(record: SQSRecord) -> TargetConfig:
    s = settings()
    return s.target(target_from_queue_name(record.event_source_arn.rsplit(":", 1)[-1], s.environment))


@cache
def processor() -> ConcurrentRecordsProcessor:
    return ConcurrentRecordsProcessor(
        lambda record: target_of(record).retry.max_attempts,
        logger=logger,
        metrics=counted,
        group_of=change_of,
        workers=RECORD_WORKERS,
        prepare=warm_clients,
    )


def warm_clients() -> None:
    """The clients the threads share, made on this thread (boto3 makes clients safely on one thread only)."""
    p = ports()
    _ = (p.store.client, p.secrets.provider, p.guards.client, p.robot_minutes.client, processor().sqs)


@dataclass(frozen=True)
class Ports:
    """What the function touches: the state and acks, the targets over HTTPS with their credentials, the
    targets' circuits and rate limits, and the robot targets' sliding limit."""

    store: DynamoStateStore
    http: SafeHttp
    secrets: SecretReader
    guards: DynamoGuards
    robot_minutes: DynamoMinuteSlots


@cache
def ports() -> Ports:
    s = settings()
    robot_timeouts = [t.timeout_seconds for t in s.targets if t.kind == "wecom"]
    return Ports(
        store=DynamoStateStore(s.state_table),
        http=SafeHttp(allow_loopback=s.loopback_ports, connections=RECORD_WORKERS),  # a kept connection a thread
        secrets=SecretReader(max_age=s.secrets_max_age_seconds),
        guards=DynamoGuards(s.state_table),
        # a WeCom robot target's 20 messages a minute, counted with the lag of its slowest send
        robot_minutes=DynamoMinuteSlots(s.state_table, lag=timedelta(seconds=max(robot_timeouts, default=5.0) + 1)),
    )


def waiting(changed: EntityChanged, target: TargetConfig, why: str, seconds: float) -> Deferred:
    """A wait, reported with how old the waiting change is (``WaitingAge``): a waiting copy goes back as
    a new message, so the queue's oldest-message age cannot show a long wait, and this does."""
    age_ms = max(0.0, (utcnow() - changed.occurred_at).total_seconds() * 1000)
    counted.add_metric(name="WaitingAge", unit=MetricUnit.Milliseconds, value=age_ms)
    count_by("DeliveryDeferred", "target", target.name)
    return Deferred(why, seconds)


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    """One change to one target; Powertools passes the invocation's context (its time left)."""
    guards = ports().guards
    target = target_of(record)
    time_enough(target, lambda_context)
    changed = EntityChanged.model_validate(EventBridgeModel.model_validate(record.json_body).detail)
    circuit = guards.circuit(target, time.time())  # this container's copy: read at most once per cache_seconds
    if circuit.failures:
        # The target is failing: its deliveries go one at a time in this container, as a batch's did before
        # they ran on threads, so after the circuit's pause one delivery decides and the others learn its
        # verdict (a reopened circuit: they wait, using no attempt) instead of all trying at once.
        with guards.one_at_a_time(target):
            time_enough(target, lambda_context)  # the wait for the others' calls took some of it
            # the copy again: the deliveries it waited for may have changed it
            deliver_record(record, changed, target, guards.circuit(target, time.time()), lambda_context)
    else:
        deliver_record(record, changed, target, circuit, lambda_context)


def time_enough(target: TargetConfig, lambda_context: LambdaContext | None) -> None:
    """``Deferred`` when the invocation has too little time left for a call and the reserve to record it."""
    seconds_left = lambda_context.get_remaining_time_in_millis() / 1000 if lambda_context else float("inf")
    if seconds_left < target.timeout_seconds + INVOCATION_RESERVE_SECONDS:
        raise Deferred(f"{seconds_left:.1f} s left in this invocation: too little for a call to {target.name}", 0)


def deliver_record(
    record: SQSRecord,
    changed: EntityChanged,
    target: TargetConfig,
    circuit: CircuitState,
    lambda_context: LambdaContext | None,
) -> None:
    p = ports()
    store, http, secrets, guards, robot_minutes = p.store, p.http, p.secrets, p.guards, p.robot_minutes
    now = time.time()
    if circuit.open_for(now) > 0:
        jitter = random.uniform(0, 2)  # noqa: S311 - spreading retries, not a secret
        raise waiting(changed, target, f"circuit of {target.name} is open", circuit.open_for(now) + jitter)
    if target.kind == "wecom" and not robot_minutes.take(target.name, utcnow()):
        minute_used = f"robot {target.name}: its 20 messages of this minute are used"
        raise waiting(changed, target, minute_used, 61 - utcnow().second)
    if not guards.take(target, now):  # a slot of this container's leased block: a write per block
        jitter = random.uniform(0, 1)  # noqa: S311 - spreading retries, not a secret
        raise waiting(changed, target, f"rate limit of {target.name} reached", 1 + jitter)
    secret_name = target_secret_name(settings().secrets_prefix, target.name)
    credentials = secrets.get_json(secret_name)
    if credentials is None:
        raise ConfigurationError(f"secret {secret_name!r} for target {target.name!r} does not exist")
    # Every call of this delivery (an OAuth token, the change) ends the reserve before the invocation does
    bounded = http.within(deadline_from(lambda_context, INVOCATION_RESERVE_SECONDS)) if lambda_context else http
    try:
        result = deliver_change(changed, target, store, bounded, credentials)
    except (DeliveryRejected, TargetRefused) as exc:
        count_by("DeliveryFailed", "target", target.name)
        raise PermanentFailure(str(exc)) from exc
    except DeliveryFailed as exc:
        count_by("DeliveryFailed", "target", target.name)
        after = guards.failed(target, now)
        attempt = DeadLetteringProcessor.attempts(record)
        wait: float = exc.retry_after if exc.retry_after is not None else target.retry.delay(attempt)
        if after.open_for(now) > wait:
            # the circuit's pause, spread as the waiting records are: not always this one tries first
            wait = after.open_for(now) + random.uniform(0, 2)  # noqa: S311 - spreading retries, not a secret
        raise NotDeliveredYet(str(exc), wait) from exc
    guards.succeeded(target, now)  # a write only when this container knows of failures to reset
    if result.missing:
        logger.warning("mapped fields missing", extra={"target": target.name, "fields": list(result.missing)})
        counted.add_metric(name="DeliveryFieldMissing", unit=MetricUnit.Count, value=len(result.missing))
    logger.debug(  # per record: DEBUG (sampled); the delivery record is the durable trace
        "delivery",
        extra={
            "target": target.name,
            "entity_id": changed.entity_id,
            "outcome": result.outcome,
            "version": result.version,
        },
    )
    if result.outcome == "sent":
        counted.add_metric(name="DeliverySucceeded", unit=MetricUnit.Count, value=1)
        counted.add_metric(name="DeliveredBytes", unit=MetricUnit.Bytes, value=result.payload_bytes)
        # Freshness: from the source's own time of the change to its delivery (a distribution: p50/p99)
        freshness_ms = max(0.0, (utcnow() - changed.occurred_at).total_seconds() * 1000)
        counted.add_metric(name="Freshness", unit=MetricUnit.Milliseconds, value=freshness_ms)
        count_by("DeliverySucceeded", "target", target.name)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
