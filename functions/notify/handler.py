"""Alarm changes (CloudWatch -> SNS -> the alarms queue) -> WeCom group robots, as digests.

A batch of alarm changes becomes as few robot messages as the byte limit allows, per robot of the
change's severity; each message takes a slot of the robot's 20 per minute first. A change that could
not go out now (no slot, errcode 45009 or -1, HTTP failure, a missing robot secret) fails its record,
so SQS brings it back with the next batch; one that never can (errcode 93000, not an alarm, an API base
the SSRF guard refuses) is dead-lettered at once with the reason. Every robot call goes through
``SafeHttp`` and ends before the invocation's remaining time less a reserve, so the outcome is always
recorded. The robot key lives in Secrets Manager and is never logged. Normalise's schema drift notices
share the queue (``{"notice": "schema-drift", ...}``, not wrapped by SNS): warnings, digested alike.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dead_letter import DeadLetteringProcessor, Deferred, PermanentFailure
from shared.adapters.http import SafeHttp, TargetRefused, deadline_from
from shared.adapters.robot_slots import DynamoMinuteSlots
from shared.adapters.secrets import SecretReader
from shared.adapters.wecom import WeComRobotHttp
from shared.constants import ALARM_TOPIC_SUFFIXES, SCHEMA_DRIFT_NOTICE, robot_secret_name
from shared.delivery.robot import Notice, Robot, Severity, notify, parse_alarm, parse_drift
from shared.errors import ConfigurationError, MalformedPayload
from shared.models import utcnow
from shared.observability import logger, metrics, tracer
from shared.settings import NotifySettings
from shared.sources.wire import loads

SLOT_WAIT_SECONDS = 30.0  # a robot's slot frees within its 60 s window; half of it is a fair first guess


class NotDeliveredYet(Exception):
    """The change goes back to the queue and is tried again with a later batch."""


@cache
def settings() -> NotifySettings:
    return NotifySettings.from_env()


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@dataclass(frozen=True)
class Ports:
    """What the function touches: the robots (through the SSRF guard), their sliding limit, their keys."""

    robot: WeComRobotHttp
    slots: DynamoMinuteSlots
    secrets: SecretReader


@cache
def ports() -> Ports:
    s = settings()
    return Ports(
        robot=WeComRobotHttp(s.api_base, http=SafeHttp(allow_loopback=s.loopback_ports)),  # the sandbox's robot
        slots=DynamoMinuteSlots(s.state_table),
        secrets=SecretReader(max_age=s.secrets_max_age_seconds),
    )


def severity_of(topic_arn: str) -> Severity:
    for severity, suffix in ALARM_TOPIC_SUFFIXES.items():
        if topic_arn.endswith(f"-{suffix}"):
            return severity  # type: ignore[return-value]
    raise ValueError(f"topic {topic_arn.rsplit(':', 1)[-1]!r} is not an alarm topic")


def robot(name: str) -> Robot:
    s = settings()
    secret_name = robot_secret_name(s.secrets_prefix, name)
    secret = ports().secrets.get_json(secret_name)
    if not secret or not isinstance(secret.get("key"), str) or not secret["key"]:
        raise ConfigurationError(f'secret {secret_name!r} must be {{"key": "<robot key>", ...}}')
    mobiles = secret.get("mentioned_mobile_list") or []
    return Robot(name=name, key=secret["key"], mentioned_mobile_list=tuple(str(m) for m in mobiles))


def plan(records: list[SQSRecord], deadline: float | None = None) -> dict[str, Exception | None]:
    """Send the batch, every robot call ending by ``deadline`` (``time.monotonic()`` based); what each
    record's outcome is (None: delivered to every robot of its severity)."""
    s = settings()
    results: dict[str, Exception | None] = {}
    by_robot: dict[str, list[Notice]] = defaultdict(list)
    for record in records:
        try:
            envelope = loads(record.body, "message")
            change: Notice
            if isinstance(envelope, dict) and envelope.get("notice") == SCHEMA_DRIFT_NOTICE:
                change = parse_drift(record.message_id, envelope)
            else:
                change = parse_alarm(record.message_id, severity_of(envelope["TopicArn"]), envelope["Message"])
        except MalformedPayload as exc:
            results[record.message_id] = PermanentFailure(f"not an alarm notification: {exc}")
            continue
        except (ValueError, KeyError, TypeError) as exc:
            results[record.message_id] = PermanentFailure(f"not an alarm notification: {exc}")
            continue
        results[record.message_id] = None
        for name in s.robots.get(change.severity, ()):
            by_robot[name].append(change)
        if not s.robots.get(change.severity):
            results[record.message_id] = PermanentFailure(f"no WeCom robot is configured for {change.severity} alarms")
    http, slots = ports().robot, ports().slots
    port = http.within(deadline)
    for name, changes in by_robot.items():
        try:
            outcome = notify(changes, robot(name), s.environment, port, slots, utcnow)
        except ConfigurationError as exc:
            for change in changes:
                results[change.message_id] = NotDeliveredYet(str(exc))
            continue
        except TargetRefused as exc:  # the API base leads somewhere no call may go: config, not chance
            for change in changes:
                results[change.message_id] = PermanentFailure(f"robot {name}: {exc}")
            logger.error("wecom api base refused by the SSRF guard", extra={"robot": name, "reason": str(exc)})
            continue
        for message in outcome.sent:
            metrics.add_metric(name="WeComMessageSent", unit=MetricUnit.Count, value=1)
            logger.info("wecom message sent", extra={"robot": name, "changes": len(message.carries)})
        for message_id, why in outcome.waiting.items():  # no slot: not tried, back when one frees
            if results.get(message_id) is None and message_id not in outcome.retry:
                results[message_id] = Deferred(why, SLOT_WAIT_SECONDS)
        for message_id, why in outcome.retry.items():
            if not isinstance(results.get(message_id), PermanentFailure):
                results[message_id] = NotDeliveredYet(why)
        for message_id, why in outcome.undeliverable.items():
            results[message_id] = PermanentFailure(why)
            metrics.add_metric(name="WeComUndeliverable", unit=MetricUnit.Count, value=1)
            logger.error("wecom robot refused the message for good", extra={"robot": name, "reason": why})
    return results


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    results = plan([SQSRecord(r) for r in event.get("Records", [])], deadline_from(context))

    def record_handler(record: SQSRecord) -> None:
        failure = results.get(record.message_id)
        if failure is not None:
            raise failure

    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
