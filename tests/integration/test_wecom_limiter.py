"""The WeCom robot limit on DynamoDB (moto): at most 20 messages in ANY 60 s, not per clock minute,
under concurrent callers, and the notifier keeps to it through the real limiter."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from infra.sandbox import moto_fidelity
from infra.sandbox.wecom_robot import FakeRobotService
from shared.adapters.robot_slots import DynamoMinuteSlots
from shared.delivery.robot import MESSAGES_PER_MINUTE, Robot, notify, parse_alarm
from tests.fakes import Port, cloudwatch_message

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
    # 60 s (and the slot's lag to the robot) after the first burst ended, its 20 slots are free again,
    # and no more than those
    window = timedelta(seconds=60) + slots.lag
    assert slots.take("oncall", late[0] + window - timedelta(milliseconds=1)) is False
    later = late[-1] + window
    assert [slots.take("oncall", later) for _ in range(21)] == [True] * 20 + [False]


def test_any_sixty_seconds_hold_at_most_twenty_and_a_free_slot_is_always_given(slots: DynamoMinuteSlots) -> None:
    rng = random.Random(13)
    now, granted = START, list[datetime]()
    for _ in range(400):  # bursts and lulls over about eight minutes
        now += timedelta(milliseconds=rng.choice([10, 50, 200, 1000, 5000]))
        recent = sum(1 for t in granted if now - timedelta(seconds=60) - slots.lag < t <= now)
        taken = slots.take("oncall", now)
        assert taken == (recent < MESSAGES_PER_MINUTE)  # refused exactly when 20 went out in 60 s + lag
        if taken:
            granted.append(now)
    assert most_in_any_minute(granted) <= MESSAGES_PER_MINUTE
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
            outcome = notify(batch, robot, "prod", port, slots, lambda: now)  # noqa: B023 - called at once
            assert not outcome.undeliverable
            retry += [c for c in batch if c.message_id in outcome.retry or c.message_id in outcome.waiting]
            now += timedelta(seconds=2)
        pending, rounds = retry, rounds + 1
        now += timedelta(seconds=20)  # what is left comes back after its visibility timeout
        assert rounds < 20
    sent_at = [datetime.fromtimestamp(m["at"], UTC) for m in service.messages]
    assert most_in_any_minute(sent_at) <= MESSAGES_PER_MINUTE
    assert service.refused == []  # the limiter kept us under the robot's limit: no 45009 at all
    seen = "\n".join(service.contents("oncall-key"))
    assert all(f"aftersync-prod-queue-{i:03d}-dlq-depth" in seen for i in range(100))


def test_an_item_recreated_after_its_ttl_does_not_take_a_warm_callers_stale_copy_for_current(
    slots: DynamoMinuteSlots,
) -> None:
    # A (a warm container) filled the window and remembers the item as it wrote it. The robot idles, the
    # table's TTL deletes the item, and B (another container) fills a new window: the recreated item has
    # gone through the same number of writes as A's copy. A's copy must not pass for the current item.
    a, b = slots, DynamoMinuteSlots(TABLE)
    assert [a.take("oncall", START) for _ in range(20)] == [True] * 20
    boto3.client("dynamodb").delete_item(  # what TTL does to an idle robot's item
        TableName=TABLE, Key={"pk": {"S": "ops#wecom#oncall"}, "sk": {"S": "SENT"}}
    )
    later = START + timedelta(hours=2)
    assert [b.take("oncall", later) for _ in range(20)] == [True] * 20
    assert a.take("oncall", later + timedelta(seconds=1)) is False  # B's 20 are in this window
    assert b.take("oncall", later + timedelta(seconds=1)) is False


def test_a_slow_send_cannot_let_a_twenty_first_message_into_the_robots_minute(slots: DynamoMinuteSlots) -> None:
    # A slot's time is when it was taken; the robot counts when the message arrives, up to the send
    # timeout (5 s) later. M0 takes its slot at 0 s and, sent slowly, arrives at 5 s; M1..M20 then take
    # slots from 5 s to 60.1 s and arrive at once. Counting slots in the last 60 s alone, M20 finds only
    # 19 (M0's 0 s is out of it) while the robot, counting from 5 s, has 20: a 45009, and 21 in its minute.
    taken = {0.0: 5.0, **{5 + 2.9 * k: 5 + 2.9 * k for k in range(20)}}  # slot time -> arrival time
    arrived = [
        START + timedelta(seconds=arrival)
        for at, arrival in taken.items()
        if slots.take("oncall", START + timedelta(seconds=at))
    ]
    assert most_in_any_minute(arrived) == MESSAGES_PER_MINUTE
    assert len(arrived) == 20  # M20 waits


class Stamping:
    """The real limiter, noting the time each slot is taken for."""

    def __init__(self, slots: DynamoMinuteSlots) -> None:
        self.slots = slots
        self.stamps: list[datetime] = []

    def take(self, robot: str, now: datetime) -> bool:
        self.stamps.append(now)
        return self.slots.take(robot, now)


def test_each_message_takes_its_slot_at_the_time_it_is_sent_not_when_its_batch_began(
    slots: DynamoMinuteSlots,
) -> None:
    # Sends are sequential and each may take up to the robot timeout (here every one takes all 5 s): a
    # message reaches the robot no later than the limiter's lag after its slot's time, however many
    # messages the batch sent before it.
    clock = [START.timestamp()]
    service = FakeRobotService({"oncall-key"}, clock=lambda: clock[0])

    class SlowPort:
        def send(self, key: str, payload: dict[str, object]) -> int:
            clock[0] += 5.0  # the whole timeout, and the message arrives at its end
            return service.handle(key, payload)

    stamping = Stamping(slots)
    changes = [
        parse_alarm(f"m{i}", "critical", cloudwatch_message(f"aftersync-prod-{i}-{'x' * 1500}")) for i in range(6)
    ]
    outcome = notify(
        changes,
        Robot("oncall", "oncall-key", ("13800000000",)),
        "prod",
        SlowPort(),
        stamping,
        lambda: datetime.fromtimestamp(clock[0], UTC),
    )
    arrived = [datetime.fromtimestamp(m["at"], UTC) for m in service.messages]
    assert len(outcome.sent) == len(arrived) == len(stamping.stamps) >= 4
    assert all(stamp <= at <= stamp + slots.lag for stamp, at in zip(stamping.stamps, arrived, strict=True))


def test_an_item_written_by_the_counter_version_is_counted_and_then_taken_over(slots: DynamoMinuteSlots) -> None:
    # Deployed tables may hold an item from before the token: its sends count, and the first write replaces
    # its counter with a token (on the counter's condition, so concurrent first writers still race fairly)
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "ops#wecom#oncall"}, "sk": {"S": "SENT"}}
    sends = [START + timedelta(seconds=i) for i in range(19)]
    client.put_item(
        TableName=TABLE,
        Item={**key, "sent": {"L": [{"N": f"{t.timestamp():.6f}"} for t in sends]}, "version": {"N": "19"}},
    )
    assert slots.take("oncall", START + timedelta(seconds=30)) is True
    assert DynamoMinuteSlots(TABLE).take("oncall", START + timedelta(seconds=31)) is False
    item = client.get_item(TableName=TABLE, Key=key)["Item"]
    assert "version" not in item and len(item["rev"]["S"]) == 32 and len(item["sent"]["L"]) == 20


def test_one_container_s_threads_share_its_limiter_without_racing_each_other(slots: DynamoMinuteSlots) -> None:
    # Given one container's limiter shared by deliver's threads (a batch's records on threads)
    writes: list[str] = []
    slots.client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: writes.append("UpdateItem"))
    granted: list[datetime] = []
    barrier = threading.Barrier(8, timeout=30)
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switched as often as the interpreter can

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(10):
            at = START + timedelta(seconds=30, milliseconds=n * 10 + i)
            if slots.take("oncall", at):
                granted.append(at)  # list.append: one step

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(before)
    # Then exactly 20 slots, each with one write: no thread lost a race to another of the same container
    # (the refusals after the 20th need no write: the container's copy shows the window full)
    assert len(granted) == MESSAGES_PER_MINUTE
    assert writes == ["UpdateItem"] * MESSAGES_PER_MINUTE
