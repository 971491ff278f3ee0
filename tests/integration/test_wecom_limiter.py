"""The WeCom robot limit on DynamoDB (moto): at most 20 messages in ANY 60 s, not per clock minute,
under concurrent callers, and the notifier keeps to it through the real limiter."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from infra.sandbox import moto_fidelity
from infra.sandbox.wecom_robot import FakeRobotService
from shared.adapters.wecom import DynamoMinuteSlots
from shared.wecom import MESSAGES_PER_MINUTE, Robot, notify, parse_alarm
from tests.unit.test_wecom import Port, cloudwatch_message

TABLE = "aftersync-test-state"
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture
def slots() -> Iterator[DynamoMinuteSlots]:
    moto_fidelity.apply()  # moto's DynamoDB backend serialised: conditional writes atomic, as on AWS
    with mock_aws():
        boto3.client("dynamodb").create_table(  # the state table's key schema (infra/sandbox/resources.py)
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoMinuteSlots(TABLE)


def most_in_any_minute(times: list[datetime]) -> int:
    """The most of ``times`` in any 60 s window [t, t + 60 s), as the robot counts."""
    ordered = sorted(times)
    return max((sum(1 for u in ordered if t <= u < t + timedelta(seconds=60)) for t in ordered), default=0)


def test_a_burst_straddling_a_minute_boundary_gets_twenty_not_forty(slots: DynamoMinuteSlots) -> None:
    # 20 at the end of 08:00, 20 more in the first seconds of 08:01: a clock-minute counter allows all 40
    late = [START + timedelta(seconds=59, milliseconds=40 * i) for i in range(20)]
    early = [START + timedelta(minutes=1, milliseconds=200 * i) for i in range(20)]
    granted = [t for t in late + early if slots.take("oncall", t)]
    assert most_in_any_minute(granted) <= MESSAGES_PER_MINUTE
    assert granted == late  # the first 20 went out, the next 20 must wait
    # 60 s after the first burst ended, its 20 slots are free again, and no more than those
    later = START + timedelta(minutes=2, seconds=0)
    assert [slots.take("oncall", later) for _ in range(21)] == [True] * 20 + [False]


def test_any_sixty_seconds_hold_at_most_twenty_and_a_free_slot_is_always_given(slots: DynamoMinuteSlots) -> None:
    rng = random.Random(13)
    now, granted = START, list[datetime]()
    for _ in range(400):  # bursts and lulls over about eight minutes
        now += timedelta(milliseconds=rng.choice([10, 50, 200, 1000, 5000]))
        recent = sum(1 for t in granted if now - timedelta(seconds=60) < t <= now)
        taken = slots.take("oncall", now)
        assert taken == (recent < MESSAGES_PER_MINUTE)  # refused exactly when 20 went out in the last 60 s
        if taken:
            granted.append(now)
    assert most_in_any_minute(granted) == MESSAGES_PER_MINUTE
    assert len(granted) > 100


def test_each_robot_has_its_own_twenty(slots: DynamoMinuteSlots) -> None:
    assert [slots.take("oncall", START) for _ in range(20)] == [True] * 20
    assert slots.take("oncall", START) is False
    assert slots.take("ops", START) is True


def test_concurrent_callers_get_exactly_twenty_slots(slots: DynamoMinuteSlots) -> None:
    granted: list[datetime] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        mine = DynamoMinuteSlots(TABLE)  # each worker its own client and memory, as separate invocations
        barrier.wait()
        for i in range(10):
            at = START + timedelta(seconds=30, milliseconds=n * 10 + i)
            if mine.take("oncall", at):
                with lock:
                    granted.append(at)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == MESSAGES_PER_MINUTE


def test_a_hundred_alarms_reach_the_robot_through_the_real_limiter_never_over_its_limit(
    slots: DynamoMinuteSlots,
) -> None:
    clock = [START.timestamp()]
    service = FakeRobotService({"oncall-key"}, clock=lambda: clock[0])
    port, rng = Port(service), random.Random(7)
    robot = Robot("oncall", "oncall-key", ("13800000000",))
    pending = [
        parse_alarm(f"m{i:03d}", "critical", cloudwatch_message(f"aftersync-prod-queue-{i:03d}-dlq-depth"))
        for i in range(100)
    ]
    now = START + timedelta(seconds=50)  # the first batches arrive ten seconds before a minute ends
    rounds = 0
    while pending:
        retry = []
        rng.shuffle(pending)
        while pending:  # SQS hands the notifier batches of 1..10 changes, two seconds apart
            size = rng.randint(1, 10)
            batch, pending = pending[:size], pending[size:]
            clock[0] = now.timestamp()
            outcome = notify(batch, robot, "prod", port, slots, now)
            assert not outcome.undeliverable
            retry += [c for c in batch if c.message_id in outcome.retry]
            now += timedelta(seconds=2)
        pending, rounds = retry, rounds + 1
        now += timedelta(seconds=20)  # what is left comes back after its visibility timeout
        assert rounds < 20
    sent_at = [datetime.fromtimestamp(m["at"], UTC) for m in service.messages]
    assert most_in_any_minute(sent_at) <= MESSAGES_PER_MINUTE
    assert service.refused == []  # the limiter kept us under the robot's limit: no 45009 at all
    seen = "\n".join(service.contents("oncall-key"))
    assert all(f"aftersync-prod-queue-{i:03d}-dlq-depth" in seen for i in range(100))
