"""Alarm notifications to WeCom (企业微信) group robots, within the robots' limits.

A robot takes at most 20 messages a minute, markdown up to 4096 bytes and text up to 2048 bytes, and
answers HTTP 200 with an ``errcode``: 0 ok, 45009 rate-limited (back off, retry), 40058 too long,
93000 invalid key (retrying cannot help), -1 busy (retry). So alarm changes are gathered into digests —
every change of a batch in as few markdown messages as fit the byte limit — and each message first
takes a slot from the robot's sliding limit (20 in any 60 s, as the robot counts them). What cannot be
sent now is retried later by the queue; what can never be sent (an invalid key) is dead-lettered with
the reason. Nothing is dropped.

Schema drift warnings (``shared.intake.schema_drift``: normalise puts one per drifting payload on the
alarms queue) travel the same way, as warning-severity blocks of the same digests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

from shared.errors import MalformedPayload
from shared.sources.wire import loads

MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
MESSAGES_PER_MINUTE = 20
OK, BUSY, TOO_LONG, RATE_LIMITED, INVALID_KEY = 0, -1, 40058, 45009, 93000
RETRIABLE = frozenset({BUSY, RATE_LIMITED})
Severity = Literal["critical", "warning"]
_OPERATORS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside",
    "LessThanLowerThreshold": "<",
    "GreaterThanUpperThreshold": ">",
}


@dataclass(frozen=True)
class AlarmChange:
    """One CloudWatch alarm state change, as CloudWatch publishes it to SNS."""

    message_id: str  # the queue message that carried it
    severity: Severity
    name: str
    new_state: str  # ALARM | OK | INSUFFICIENT_DATA
    old_state: str
    reason: str
    changed_at: datetime
    region: str
    partition: str
    threshold: float | None
    operator: str | None

    @property
    def current_value(self) -> str | None:
        """The datapoint that crossed the threshold, as CloudWatch quotes it in the reason."""
        match = re.search(r"\[([-+0-9.eE]+) \(", self.reason)
        return match.group(1) if match else None

    def console_url(self) -> str:
        domain = "console.amazonaws.cn" if self.partition == "aws-cn" else "console.aws.amazon.com"
        return f"https://{self.region}.{domain}/cloudwatch/home?region={self.region}#alarmsV2:alarm/{quote(self.name)}"


@dataclass(frozen=True)
class DriftWarning:
    """One payload's schema drift (a new field, an always-present one missing, a changed type), as
    normalise reported it: field paths and types, never values."""

    message_id: str
    source: str
    topic: str
    tenant: str
    delivery: str
    detected_at: datetime
    drifts: tuple[str, ...]  # "new: customer.tier (string)", "missing: currency (was always present)"
    severity: Severity = "warning"


Notice = AlarmChange | DriftWarning
MAX_DRIFT_LINES = 10  # in one block; the CLI lists them all


def parse_drift(message_id: str, body: dict[str, Any]) -> DriftWarning:
    """A drift warning from normalise's notice (``{"notice": "schema-drift", ...}``); ``ValueError`` if
    it is not one."""
    try:
        drifts = body["drifts"]
        if not isinstance(drifts, list) or not drifts or not all(isinstance(d, str) for d in drifts):
            raise TypeError("drifts must be a non-empty list of strings")
        return DriftWarning(
            message_id=message_id,
            source=str(body["source"]),
            topic=str(body["topic"]),
            tenant=str(body["tenant"]),
            delivery=str(body["delivery"]),
            detected_at=_cloudwatch_time(str(body["detected_at"])),
            drifts=tuple(drifts),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a schema drift notice: {type(exc).__name__}: {exc}") from exc


def render_drift(warning: DriftWarning, environment: str) -> str:
    """One drift warning as a markdown block: what changed, where, the delivery that showed it."""
    lines = "\n".join(f"> {cut_utf8(d, 200)}" for d in warning.drifts[:MAX_DRIFT_LINES])
    more = len(warning.drifts) - MAX_DRIFT_LINES
    if more > 0:
        lines += f"\n> … and {more} more"
    return (
        f'**<font color="warning">SCHEMA DRIFT</font>** {warning.source} {warning.topic}\n'
        f"> env **{environment}** · warning · tenant {warning.tenant} · delivery {warning.delivery}\n"
        f"{lines}\n"
        f"> since {warning.detected_at:%Y-%m-%d %H:%M:%S} UTC · `aftersync sources drift --source {warning.source}`"
    )


def errcode_of(text: str) -> int:
    """The ``errcode`` of a robot's answer, or ``BUSY`` (retry later) for anything that is not a JSON
    object with an integer ``errcode``: null, a string, a fraction, true, a number beyond a float, deep
    nesting, not JSON at all. Read with the bounded reader, so no answer raises (a raise would fail the
    notifier's whole batch)."""
    try:
        answer = loads(text, "answer")
    except MalformedPayload:
        return BUSY
    code = answer.get("errcode") if isinstance(answer, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else BUSY


def parse_alarm(message_id: str, severity: Severity, message: str) -> AlarmChange:
    """An alarm change from the SNS message CloudWatch sent; ``ValueError`` if it is not one."""
    try:
        body = loads(message, "message")
    except MalformedPayload as exc:
        raise ValueError(f"not a CloudWatch alarm message: {exc}") from exc
    try:
        if not isinstance(body, dict):
            raise TypeError("not an object")
        trigger = body.get("Trigger") or {}
        arn = str(body.get("AlarmArn") or "arn:aws:cloudwatch")
        return AlarmChange(
            message_id=message_id,
            severity=severity,
            name=str(body["AlarmName"]),
            new_state=str(body["NewStateValue"]),
            old_state=str(body.get("OldStateValue") or ""),
            reason=str(body.get("NewStateReason") or ""),
            changed_at=_cloudwatch_time(str(body["StateChangeTime"])),
            region=_region(body, arn),
            partition=arn.split(":")[1] if arn.count(":") >= 2 else "aws",
            threshold=float(trigger["Threshold"]) if trigger.get("Threshold") is not None else None,
            operator=trigger.get("ComparisonOperator"),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"not a CloudWatch alarm message: {type(exc).__name__}: {exc}") from exc


def _region(body: dict[str, Any], arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else str(body.get("Region") or "unknown")


def _cloudwatch_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cut_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, on a character boundary, marked when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode("utf-8"))
    return raw[:room].decode("utf-8", errors="ignore") + marker


def render(change: AlarmChange, environment: str) -> str:
    """One alarm change as a markdown block (colour for the state, value against threshold, link)."""
    colour = {"ALARM": "warning", "OK": "info"}.get(change.new_state, "comment")
    state = {"ALARM": "ALARM", "OK": "OK (recovered)"}.get(change.new_state, change.new_state)
    value = change.current_value or "n/a"
    if change.threshold is not None:
        versus = f" vs threshold {_OPERATORS.get(change.operator or '', change.operator or '')} {change.threshold:g}"
    else:
        versus = ""
    return (
        f'**<font color="{colour}">{state}</font>** {change.name}\n'
        f"> env **{environment}** · {change.severity} · was {change.old_state or 'unknown'}\n"
        f"> value **{value}**{versus}\n"
        f"> since {change.changed_at:%Y-%m-%d %H:%M:%S} UTC · [console]({change.console_url()})"
    )


@dataclass(frozen=True)
class Message:
    """One robot message and the alarm changes it carries (for per-change retry)."""

    payload: dict[str, Any]
    carries: tuple[str, ...]  # message ids of the alarm changes in it


def digests(changes: Sequence[Notice], environment: str) -> list[Message]:
    """The changes (and drift warnings) as few markdown messages as fit 4096 bytes each; every change
    in exactly one."""
    blocks = [
        (
            c.message_id,
            cut_utf8(
                render(c, environment) if isinstance(c, AlarmChange) else render_drift(c, environment),
                MARKDOWN_MAX_BYTES - 200,
            ),
        )
        for c in changes
    ]
    groups: list[list[tuple[str, str]]] = []
    size = 0
    for block in blocks:
        needed = len(block[1].encode("utf-8")) + 2
        if not groups or size + needed > MARKDOWN_MAX_BYTES - 200:  # room for the header
            groups.append([])
            size = 0
        groups[-1].append(block)
        size += needed
    alarms = [c for c in changes if isinstance(c, AlarmChange)]
    firing = sum(1 for c in alarms if c.new_state == "ALARM")
    drifting = len(changes) - len(alarms)
    counts = [f"{len(alarms)} alarm change(s), {firing} firing"] if alarms else []
    counts += [f"{drifting} schema drift(s)"] if drifting else []
    messages = []
    for index, group in enumerate(groups, start=1):
        part = f" (part {index}/{len(groups)})" if len(groups) > 1 else ""
        header = f"### Aftersync {environment}: {', '.join(counts)}{part}"
        content = cut_utf8(header + "\n" + "\n\n".join(b for _, b in group), MARKDOWN_MAX_BYTES)
        messages.append(Message({"msgtype": "markdown", "markdown": {"content": content}}, tuple(i for i, _ in group)))
    return messages


def mention(changes: Sequence[Notice], environment: str, mobiles: Sequence[str]) -> Message | None:
    """A text message mentioning the on-call people, for critical alarms that started firing."""
    firing = [c for c in changes if isinstance(c, AlarmChange) and c.severity == "critical" and c.new_state == "ALARM"]
    if not firing or not mobiles:
        return None
    names = ", ".join(c.name for c in firing)
    content = cut_utf8(f"Aftersync {environment}: critical alarm firing: {names}", TEXT_MAX_BYTES)
    return Message(
        {"msgtype": "text", "text": {"content": content, "mentioned_mobile_list": list(mobiles)}},
        tuple(c.message_id for c in firing),
    )


class RobotPort(Protocol):
    def send(self, key: str, payload: dict[str, Any]) -> int:
        """The robot's errcode (HTTP failures count as busy)."""


class SlotsPort(Protocol):
    def take(self, robot: str, now: datetime) -> bool:
        """A slot for a message sent to ``robot`` at ``now``, or False when its 20 of the last minute
        are used."""


@dataclass(frozen=True)
class Robot:
    name: str
    key: str
    mentioned_mobile_list: tuple[str, ...] = ()


@dataclass
class Outcome:
    sent: list[Message]
    retry: dict[str, str]  # message id -> why it must be tried again later (the robot answered busy)
    undeliverable: dict[str, str]  # message id -> why it can never be sent (dead-lettered)
    waiting: dict[str, str] = field(default_factory=dict)  # message id -> no slot: not tried (no failure)


def notify(
    changes: Sequence[Notice],
    robot: Robot,
    environment: str,
    port: RobotPort,
    slots: SlotsPort,
    clock: Callable[[], datetime],
) -> Outcome:
    """Send the changes to one robot. Each message takes a slot first, for the time ``clock()`` says
    right before its send (sends are sequential and each may take up to the robot timeout, so a batch's
    start would be minutes off for its last message); a change whose message could not be sent is
    reported for retry (or as undeliverable), never silently dropped."""
    outcome = Outcome([], {}, {})
    queue = digests(changes, environment)
    extra = mention(changes, environment, robot.mentioned_mobile_list)
    if extra is not None:
        queue.append(extra)
    for message in queue:
        pending = [i for i in message.carries if i not in outcome.undeliverable]
        if not pending:
            continue
        if not slots.take(robot.name, clock()):
            outcome.waiting.update(
                {i: f"robot {robot.name}: {MESSAGES_PER_MINUTE} messages this minute" for i in pending}
            )
            continue
        code = port.send(robot.key, message.payload)
        if code == OK:
            outcome.sent.append(message)
        elif code == INVALID_KEY:
            outcome.undeliverable.update({i: f"robot {robot.name}: errcode 93000 (invalid key)" for i in pending})
        else:
            why = "rate limited" if code == RATE_LIMITED else "busy" if code == BUSY else "refused"
            outcome.retry.update({i: f"robot {robot.name}: errcode {code} ({why})" for i in pending})
    # A change is sent only when every message carrying it went out (the mention is a courtesy:
    # when it fails, the markdown already reached the group, so the change is not repeated).
    for message in outcome.sent:
        for i in message.carries:
            if message.payload["msgtype"] == "markdown":
                outcome.retry.pop(i, None)
                outcome.waiting.pop(i, None)
    return outcome
