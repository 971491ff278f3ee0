"""WeCom robot notifications: rendering, byte cuts, digests, error codes (the limit: tests/integration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from infra.sandbox.wecom_robot import FakeRobotService
from shared.delivery.robot import (
    MARKDOWN_MAX_BYTES,
    AlarmChange,
    Robot,
    cut_utf8,
    digests,
    notify,
    parse_alarm,
    render,
)
from tests.fakes import Port, cloudwatch_message

START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def change(name: str, severity: str = "critical", state: str = "ALARM", message_id: str | None = None) -> AlarmChange:
    return parse_alarm(message_id or name, severity, cloudwatch_message(name, state))  # type: ignore[arg-type]


class Slots:
    """A slot for every message: these tests are about the robot's answers. The limit itself is
    tested on the real limiter (DynamoDB on moto) in tests/integration/test_wecom_limiter.py."""

    def take(self, robot: str, now: datetime) -> bool:
        return True


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


class NoSlots:
    def take(self, robot: str, now: datetime) -> bool:
        return False


def test_a_robot_whose_minute_is_used_up_means_waiting_not_a_retry() -> None:
    # Waiting for a slot is no attempt and no failure (the record is deferred), unlike a busy answer
    service = FakeRobotService({"k"})
    outcome = notify(
        [change("a", severity="warning")], Robot("ops", "k"), "dev", Port(service), NoSlots(), lambda: START
    )
    assert (outcome.waiting, outcome.retry, outcome.sent) == ({"a": "robot ops: 20 messages this minute"}, {}, [])


@pytest.mark.parametrize(("busy", "expected"), [(1, "errcode -1 (busy)")])
def test_a_busy_robot_means_retry_later(busy: int, expected: str) -> None:
    service = FakeRobotService({"k"})
    service.busy = busy
    outcome = notify([change("a", severity="warning")], Robot("ops", "k"), "dev", Port(service), Slots(), lambda: START)
    assert outcome.retry == {"a": f"robot ops: {expected}"} and outcome.sent == []


def test_a_rate_limited_answer_is_retried_and_an_invalid_key_is_undeliverable_not_retried() -> None:
    class Answers:
        def __init__(self, code: int) -> None:
            self.code, self.calls = code, 0

        def send(self, key: str, payload: dict[str, object]) -> int:
            self.calls += 1
            return self.code

    limited = notify(
        [change("a", severity="warning")], Robot("ops", "k"), "dev", Answers(45009), Slots(), lambda: START
    )
    assert limited.retry == {"a": "robot ops: errcode 45009 (rate limited)"}
    invalid = Answers(93000)
    outcome = notify(
        [change("a"), change("b")], Robot("oncall", "bad", ("138",)), "prod", invalid, Slots(), lambda: START
    )
    assert outcome.undeliverable == {
        "a": "robot oncall: errcode 93000 (invalid key)",
        "b": "robot oncall: errcode 93000 (invalid key)",
    }
    assert outcome.retry == {} and invalid.calls == 1  # the mention is not even tried with a dead key


def test_critical_alarms_that_start_firing_mention_the_on_call_people_in_a_text_message() -> None:
    service = FakeRobotService({"k"})
    changes = [change("sync-success-rate"), change("dlq", severity="warning"), change("api-5xx", state="OK")]
    outcome = notify(changes, Robot("oncall", "k", ("13800000000",)), "prod", Port(service), Slots(), lambda: START)
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


# What a robot (or anything answering at its address) may send back instead of {"errcode": <int>, ...}:
# each is "busy" (retry later), never an exception out of the send, which would fail the whole batch.
JUNK_ANSWERS = {
    "errcode null": b'{"errcode": null}',
    "errcode 1e400": b'{"errcode": 1e400}',
    "errcode Infinity": b'{"errcode": Infinity}',
    "errcode NaN": b'{"errcode": NaN}',
    "errcode a string": b'{"errcode": "0"}',
    "errcode a fraction": b'{"errcode": 0.5}',
    "errcode true": b'{"errcode": true}',
    "errcode an object": b'{"errcode": {"code": 0}}',
    "errcode 5,000 digits": b'{"errcode": ' + b"9" * 5000 + b"}",
    "no errcode": b'{"errmsg": "ok"}',
    "a list": b"[0]",
    "a number": b"0",
    "10,000 levels deep": b"[" * 10_000 + b"]" * 10_000,
    "10,000 levels deep in errcode": b'{"errcode": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    "not JSON": b"<html>502 Bad Gateway</html>",
    "empty": b"",
}


class JunkRobot:
    """A local server answering every POST with HTTP 200 and a fixed body."""

    def __init__(self, body: bytes) -> None:
        from http.server import ThreadingHTTPServer

        from infra.sandbox.http_servers import _Quiet, serve

        class Handler(_Quiet):
            def do_POST(self) -> None:
                self._body()
                self._reply(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve(self.server)
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.mark.parametrize("answer", list(JUNK_ANSWERS.values()), ids=list(JUNK_ANSWERS))
def test_a_junk_robot_answer_is_busy_and_fails_no_batch(answer: bytes) -> None:
    from shared.adapters.http import SafeHttp
    from shared.adapters.wecom import WeComRobotHttp

    robot = JunkRobot(answer)
    try:
        port = WeComRobotHttp(robot.url, timeout=5, http=SafeHttp(allow_loopback=frozenset({robot.server.server_port})))
        assert port.send("k", {"msgtype": "text", "text": {"content": "x"}}) == -1
        outcome = notify([change("a"), change("b")], Robot("oncall", "k"), "prod", port, Slots(), lambda: START)
        assert outcome.retry == {"a": "robot oncall: errcode -1 (busy)", "b": "robot oncall: errcode -1 (busy)"}
    finally:
        robot.server.shutdown()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (b'{"errcode": 0, "errmsg": "ok"}', 0),
        (b'{"errcode": 45009, "errmsg": "api freq out of limit"}', 45009),
        (b'{"errcode": 93000, "errmsg": "invalid webhook url"}', 93000),
        (b'{"errcode": -1, "errmsg": "system busy"}', -1),
    ],
)
def test_errcode_of_reads_the_robots_answers(answer: bytes, code: int) -> None:
    from shared.delivery.robot import errcode_of

    assert errcode_of(answer.decode()) == code


@pytest.mark.parametrize("answer", list(JUNK_ANSWERS.values()), ids=list(JUNK_ANSWERS))
def test_errcode_of_a_junk_answer_is_busy(answer: bytes) -> None:
    from shared.delivery.robot import errcode_of

    assert errcode_of(answer.decode("utf-8", "replace")) == -1


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("[" * 10_000 + "]" * 10_000, "nested deeper than 64 levels"),
        ('{"AlarmName": ' + "[" * 10_000 + "]" * 10_000 + "}", "nested deeper than 64 levels"),
        (cloudwatch_message("x").replace('"Threshold": 0.999', '"Threshold": 1' + "0" * 400), "more than 40 digits"),
    ],
    ids=["deep", "deep inside", "threshold beyond a float"],
)
def test_a_junk_alarm_message_is_refused_with_a_value_error(message: str, kind: str) -> None:
    with pytest.raises(ValueError, match="not a CloudWatch alarm message") as refused:
        parse_alarm("m", "critical", message)
    assert kind in str(refused.value)
