"""WeCom robot notifications: rendering, byte cuts, digests and the 20-a-minute limit, error codes."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from infra.sandbox.wecom_robot import FakeRobotService
from shared.wecom import (
    MARKDOWN_MAX_BYTES,
    MESSAGES_PER_MINUTE,
    AlarmChange,
    Robot,
    cut_utf8,
    digests,
    notify,
    parse_alarm,
    render,
)

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def cloudwatch_message(name: str, state: str = "ALARM", value: str = "0.9712") -> str:
    return json.dumps(
        {
            "AlarmName": name,
            "AlarmArn": f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}",
            "NewStateValue": state,
            "OldStateValue": "OK" if state == "ALARM" else "ALARM",
            "NewStateReason": f"Threshold Crossed: 1 out of the last 1 datapoints [{value} (23/11/26 08:00:00)] "
            "was less than the threshold (0.999) (minimum 1 datapoint for OK -> ALARM transition).",
            "StateChangeTime": "2026-11-23T08:00:12.345+0000",
            "Region": "EU (Ireland)",
            "Trigger": {"Threshold": 0.999, "ComparisonOperator": "LessThanThreshold", "Metrics": []},
        }
    )


def change(name: str, severity: str = "critical", state: str = "ALARM", message_id: str | None = None) -> AlarmChange:
    return parse_alarm(message_id or name, severity, cloudwatch_message(name, state))  # type: ignore[arg-type]


class Slots:
    """The per-robot minute counter, in memory."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, str], int] = {}

    def take(self, robot: str, now: datetime) -> bool:
        window = (robot, f"{now:%Y%m%d%H%M}")
        if self.used.get(window, 0) >= MESSAGES_PER_MINUTE:
            return False
        self.used[window] = self.used.get(window, 0) + 1
        return True


class Port:
    def __init__(self, service: FakeRobotService) -> None:
        self.service = service

    def send(self, key: str, payload: dict[str, object]) -> int:
        return self.service.handle(key, payload)


def test_an_alarm_renders_with_environment_value_threshold_time_and_console_link() -> None:
    text = render(change("aftersync-prod-sync-success-rate"), "prod")
    assert text == (
        '**<font color="warning">ALARM</font>** aftersync-prod-sync-success-rate\n'
        "> env **prod** · critical · was OK\n"
        "> value **0.9712** vs threshold < 0.999\n"
        "> since 2026-11-23 08:00:12 UTC · [console](https://eu-west-1.console.aws.amazon.com/cloudwatch/home"
        "?region=eu-west-1#alarmsV2:alarm/aftersync-prod-sync-success-rate)"
    )
    recovered = render(change("x", state="OK"), "prod")
    assert recovered.startswith('**<font color="info">OK (recovered)</font>** x') and "was ALARM" in recovered


def test_cuts_are_by_utf8_bytes_on_a_character_boundary() -> None:
    text = "告警" * 2000  # 3 bytes a character
    cut = cut_utf8(text, 4096)
    assert len(cut.encode("utf-8")) <= 4096 and cut.endswith("…")
    assert cut[:-1] == text[: len(cut) - 1]  # nothing half-cut: every character whole
    assert cut_utf8("short", 4096) == "short"


def test_a_digest_splits_by_bytes_and_carries_every_change_exactly_once() -> None:
    changes = [change(f"aftersync-prod-alarm-{i:03d}-{'长' * 40}") for i in range(100)]
    messages = digests(changes, "prod")
    assert len(messages) > 1
    assert all(len(m.payload["markdown"]["content"].encode()) <= MARKDOWN_MAX_BYTES for m in messages)
    carried = [i for m in messages for i in m.carries]
    assert sorted(carried) == sorted(c.message_id for c in changes)
    for m in messages:
        for i in m.carries:
            assert f"alarm-{i.split('-')[3]}" in m.payload["markdown"]["content"]


def test_a_hundred_alarms_in_one_minute_are_at_most_twenty_robot_messages_and_all_accounted_for() -> None:
    clock = [START.timestamp()]
    service = FakeRobotService({"oncall-key"}, clock=lambda: clock[0])
    port, slots, rng = Port(service), Slots(), random.Random(7)
    robot = Robot("oncall", "oncall-key", ("13800000000",))
    pending = [change(f"aftersync-prod-queue-{i:03d}-dlq-depth") for i in range(100)]
    minute = 0
    while pending:
        # Within a minute, SQS hands the notifier batches of 1..10 changes, in any order
        now = START + timedelta(minutes=minute, seconds=1)
        retry = []
        rng.shuffle(pending)
        while pending:
            size = rng.randint(1, 10)
            batch, pending = pending[:size], pending[size:]
            clock[0] = now.timestamp()
            outcome = notify(batch, robot, "prod", port, slots, now)
            assert not outcome.undeliverable
            retry += [c for c in batch if c.message_id in outcome.retry]
            now += timedelta(seconds=2)
        pending, minute = retry, minute + 1
        assert minute < 10
    sent_at = [m["at"] for m in service.messages]
    for start in sent_at:  # any 60 s window, as the robot counts
        assert sum(1 for t in sent_at if start <= t < start + 60) <= MESSAGES_PER_MINUTE
    assert service.refused == []  # the limiter kept us under the robot's limit: no 45009 at all
    seen = "\n".join(service.contents("oncall-key"))
    assert all(f"aftersync-prod-queue-{i:03d}-dlq-depth" in seen for i in range(100))
    first_minute = [t for t in sent_at if t < START.timestamp() + 60]
    assert len(first_minute) <= MESSAGES_PER_MINUTE


@pytest.mark.parametrize(("busy", "expected"), [(1, "errcode -1 (busy)")])
def test_a_busy_robot_means_retry_later(busy: int, expected: str) -> None:
    service = FakeRobotService({"k"})
    service.busy = busy
    outcome = notify([change("a", severity="warning")], Robot("ops", "k"), "dev", Port(service), Slots(), START)
    assert outcome.retry == {"a": f"robot ops: {expected}"} and outcome.sent == []


def test_a_rate_limited_answer_is_retried_and_an_invalid_key_is_undeliverable_not_retried() -> None:
    class Answers:
        def __init__(self, code: int) -> None:
            self.code, self.calls = code, 0

        def send(self, key: str, payload: dict[str, object]) -> int:
            self.calls += 1
            return self.code

    limited = notify([change("a", severity="warning")], Robot("ops", "k"), "dev", Answers(45009), Slots(), START)
    assert limited.retry == {"a": "robot ops: errcode 45009 (rate limited)"}
    invalid = Answers(93000)
    outcome = notify([change("a"), change("b")], Robot("oncall", "bad", ("138",)), "prod", invalid, Slots(), START)
    assert outcome.undeliverable == {
        "a": "robot oncall: errcode 93000 (invalid key)",
        "b": "robot oncall: errcode 93000 (invalid key)",
    }
    assert outcome.retry == {} and invalid.calls == 1  # the mention is not even tried with a dead key


def test_critical_alarms_that_start_firing_mention_the_on_call_people_in_a_text_message() -> None:
    service = FakeRobotService({"k"})
    changes = [change("sync-success-rate"), change("dlq", severity="warning"), change("api-5xx", state="OK")]
    outcome = notify(changes, Robot("oncall", "k", ("13800000000",)), "prod", Port(service), Slots(), START)
    assert [m.payload["msgtype"] for m in outcome.sent] == ["markdown", "text"]
    text = outcome.sent[1].payload["text"]
    assert text == {
        "content": "Aftersync prod: critical alarm firing: sync-success-rate",
        "mentioned_mobile_list": ["13800000000"],
    }
    assert outcome.retry == {} and outcome.undeliverable == {}


def test_a_message_that_is_not_a_cloudwatch_alarm_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="not a CloudWatch alarm message: KeyError"):
        parse_alarm("m", "critical", json.dumps({"hello": 1}))
