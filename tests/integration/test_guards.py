"""The deliver function's guards on moto: circuits cached per warm container, rate limits leased a block
at a time. Each ``DynamoGuards`` is one container; ``now`` is the test's clock, so every outcome is
exact whatever the machine's speed.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.sandbox import moto_fidelity
from shared.adapters.circuit import CircuitState, DynamoGuards
from shared.delivery.targets import TargetConfig

TABLE = "state"
T0 = 1_800_000_000.0  # a whole second


def target(**overrides: Any) -> TargetConfig:
    return TargetConfig.model_validate(
        {
            "name": "crm",
            "url": "https://crm.example.com/changes",
            "entity_types": ["order"],
            "circuit": {"failures_to_open": 3, "open_seconds": 30, "cache_seconds": 5},
            **overrides,
        }
    )


@pytest.fixture
def table() -> Iterator[None]:
    moto_fidelity.apply()  # DynamoDB requests from concurrent threads serialised, as AWS isolates them
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


class Container:
    """One warm container's guards, with its own client and the calls it made by operation."""

    def __init__(self) -> None:
        client = boto3.client("dynamodb")
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb", self._count)
        self.guards = DynamoGuards(TABLE, client)

    def _count(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1


def test_deliveries_within_the_cache_seconds_read_the_circuit_once_then_again_after(table: None) -> None:
    crm, container = target(), Container()
    states = [container.guards.circuit(crm, T0 + n * 0.5) for n in range(10)]  # 0 .. 4.5 s
    assert states == [CircuitState()] * 10
    assert container.calls == {"GetItem": 1}
    container.guards.circuit(crm, T0 + 5)  # the copy is 5 s old: read again
    assert container.calls == {"GetItem": 2}


def test_cache_seconds_zero_reads_before_every_delivery(table: None) -> None:
    crm, container = target(circuit={"cache_seconds": 0}), Container()
    for _ in range(4):
        container.guards.circuit(crm, T0)
    assert container.calls == {"GetItem": 4}


def test_a_failure_this_container_sees_opens_its_copy_at_once(table: None) -> None:
    crm, container = target(), Container()
    assert container.guards.circuit(crm, T0) == CircuitState()
    for n in range(3):
        after = container.guards.failed(crm, T0 + n)
    assert after == CircuitState(failures=3, open_until=T0 + 2 + 30, opens=1)
    # the next delivery waits, and learns so without a read
    assert container.guards.circuit(crm, T0 + 3).open_for(T0 + 3) == 29
    assert container.calls == {"GetItem": 1, "UpdateItem": 4}  # a count per failure, one opening


def test_another_container_sees_the_circuit_open_once_its_copy_is_older_than_the_cache_seconds(table: None) -> None:
    crm, a, b = target(), Container(), Container()
    assert a.guards.circuit(crm, T0) == CircuitState()  # a read it closed at T0
    for _ in range(3):
        b.guards.failed(crm, T0 + 1)  # b opened it at T0 + 1
    opened = CircuitState(failures=3, open_until=T0 + 31, opens=1)
    # a's copy is trusted until it is 5 s old: closed at T0 + 4.9, open from T0 + 5
    assert a.guards.circuit(crm, T0 + 4.9) == CircuitState()
    assert a.guards.circuit(crm, T0 + 5) == opened
    assert a.calls == {"GetItem": 2}


def test_a_failure_in_a_container_with_a_stale_copy_learns_the_opening_and_does_not_extend_it(table: None) -> None:
    crm, a, b = target(), Container(), Container()
    a.guards.circuit(crm, T0)
    for _ in range(3):
        b.guards.failed(crm, T0 + 1)
    # a still thinks it closed and calls: the one failure tells it the circuit is open (until T0 + 31,
    # not reopened for longer)
    assert a.guards.failed(crm, T0 + 2) == CircuitState(failures=4, open_until=T0 + 31, opens=1)
    assert a.guards.circuit(crm, T0 + 3).open_for(T0 + 3) == 28
    assert a.calls == {"GetItem": 1, "UpdateItem": 1}


def test_two_containers_failing_at_the_threshold_together_open_the_circuit_once(table: None) -> None:
    crm, a, b = target(), Container(), Container()
    for _ in range(2):
        a.guards.failed(crm, T0)
    raced: list[CircuitState] = []

    def b_fails_first(params: dict[str, Any], **_: Any) -> None:
        if "open_until <= :now" in params.get("ConditionExpression", "") and not raced:
            raced.append(b.guards.failed(crm, T0))  # b counts its failure and opens between a's two writes

    a.guards.client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", b_fails_first)
    # a's failure was the third, b's the fourth: b opened it; a's opening is refused and a reads b's
    assert a.guards.failed(crm, T0) == CircuitState(failures=4, open_until=T0 + 30, opens=1)
    assert raced == [CircuitState(failures=4, open_until=T0 + 30, opens=1)]
    assert b.guards.stored("crm") == CircuitState(failures=4, open_until=T0 + 30, opens=1)  # not 60 s, not twice


def test_after_the_pause_a_failure_reopens_for_longer_and_a_success_closes_it_for_everyone(table: None) -> None:
    crm, a, b = target(), Container(), Container()
    for _ in range(3):
        a.guards.failed(crm, T0)
    reopened = a.guards.failed(crm, T0 + 31)  # the pause is over: one delivery tried, and failed
    assert reopened == CircuitState(failures=4, open_until=T0 + 31 + 60, opens=2)
    a.guards.succeeded(crm, T0 + 92)  # the next try succeeded
    assert a.guards.circuit(crm, T0 + 92) == CircuitState()
    assert b.guards.circuit(crm, T0 + 92) == CircuitState()  # read from the table
    a.calls.clear()
    a.guards.succeeded(crm, T0 + 93)  # nothing to reset: no write
    assert a.calls == {}


def test_a_target_without_a_rate_limit_takes_no_write(table: None) -> None:
    crm, container = target(), Container()
    assert all(container.guards.take(crm, T0) for _ in range(100))
    assert container.calls == {}


def test_two_concurrent_containers_never_send_more_than_the_limit_in_any_second_and_write_per_block(
    table: None,
) -> None:
    # Given a target limited to 20 a second whose queue runs 2 containers: blocks of 10 (each its share)
    limited = target(name="erp", rate_limit_per_second=20)
    assert (limited.queue_concurrency(), limited.token_block()) == (2, 10)
    now = [T0]
    seconds, steps_per_second, tries_per_step = 3, 10, 5  # each container wants 50 a second
    sends: list[Counter[int]] = [Counter(), Counter()]
    writes: list[Counter[int]] = [Counter(), Counter()]
    step = threading.Barrier(2, action=lambda: now.__setitem__(0, now[0] + 1 / steps_per_second))
    failures: list[BaseException] = []

    def container(n: int) -> None:
        client = boto3.client("dynamodb")
        client.meta.events.register("before-call.dynamodb.UpdateItem", lambda **_: writes[n].update([int(now[0])]))
        guards = DynamoGuards(TABLE, client)
        try:
            for _ in range(seconds * steps_per_second):
                for _ in range(tries_per_step):
                    if guards.take(limited, now[0]):
                        sends[n][int(now[0])] += 1  # a send, in the second the clock shows
                step.wait()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
            step.abort()

    # When both take slots at once, step by step, for 3 seconds
    threads = [threading.Thread(target=container, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    # Then every second sent exactly the limit (both wanted more), never more
    per_second: dict[int, int] = defaultdict(int)
    for counts in sends:
        for second, n in counts.items():
            per_second[second] += n
    assert per_second == {int(T0) + s: 20 for s in range(seconds)}
    # ... with a write per block of 10 and one more that found the second used up: 3 a second, not 20
    assert [writes[0][int(T0) + s] + writes[1][int(T0) + s] for s in range(seconds)] == [3, 3, 3]
    for n in range(2):
        for s in range(seconds):
            second = int(T0) + s
            assert writes[n][second] <= math.ceil(sends[n][second] / limited.token_block()) + 1


@pytest.fixture
def switching() -> Iterator[None]:
    """Threads switched as often as the interpreter can: a check and its update that are not one step
    interleave in a test run, not only under a production load."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def hammer(threads: int, work: Any) -> None:
    """``work()`` on ``threads`` threads started together; a failure in one is raised here."""
    start = threading.Barrier(threads, timeout=30)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert failures == []


def test_one_container_s_threads_never_get_a_slot_twice_and_lose_none(table: None, switching: None) -> None:
    # Given one container (deliver's records of a batch on threads) and a target limited to 20 a second
    limited, container = target(name="erp", rate_limit_per_second=20), Container()
    assert limited.token_block() == 10
    granted: list[int] = []

    def take_until_refused() -> None:
        for _ in range(50):
            if container.guards.take(limited, T0 + 0.5):
                granted.append(1)  # list.append: one step, whatever the switching

    # When 8 threads take slots of one second at once, more than the limit
    hammer(8, take_until_refused)
    # Then exactly the limit was handed out (never a slot twice, no leased slot lost), with one write per
    # block of 10 (the second block's write tells the container the second is used up)
    assert len(granted) == 20
    assert container.calls == {"UpdateItem": 2}
    assert container.guards.take(limited, T0 + 0.9) is False
    assert container.calls == {"UpdateItem": 2}  # the used-up second is known: no further write


def test_one_container_s_threads_read_a_cold_circuit_once(table: None, switching: None) -> None:
    crm, container = target(), Container()
    seen: list[CircuitState] = []
    hammer(8, lambda: seen.extend(container.guards.circuit(crm, T0) for _ in range(5)))
    assert seen == [CircuitState()] * 40
    assert container.calls == {"GetItem": 1}


def test_one_container_s_threads_failing_together_count_every_failure_and_open_once(
    table: None, switching: None
) -> None:
    crm, container = target(), Container()  # opens at 3 failures
    hammer(6, lambda: container.guards.failed(crm, T0))
    assert container.guards.stored("crm") == CircuitState(failures=6, open_until=T0 + 30, opens=1)
    assert container.guards.circuit(crm, T0 + 1) == CircuitState(failures=6, open_until=T0 + 30, opens=1)
