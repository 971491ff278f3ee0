"""No hot key on the delivery path: the real deliver handler on moto, AWS calls counted per operation.

A warm container reads a target's circuit once per ``circuit.cache_seconds``, not before every
delivery, and leases a rate-limited target's send slots a block at a time: in steady state a delivery
costs a BatchGetItem (state and ack) and a PutItem (the ack), and nothing writes ``ops#`` items per
delivery. The clock is the test's (``tests.fakes.Clock``): no outcome depends on how fast this runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra.sandbox.demo import generated_order
from infra.sandbox.lambda_runtime import sqs_record
from infra.wiring import function_environment
from tests.fakes import Clock
from tests.integration.conftest import Stack


class Calls:
    """AWS calls by ``service:Operation`` (botocore's ``before-call``), with the keys of DynamoDB ones."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.ops_keys: Counter[tuple[str, str]] = Counter()  # (operation, pk) of the ops# items

    def __call__(self, event_name: str, **_: Any) -> None:  # before-call.<service>.<Operation>
        _, service, operation = event_name.split(".", 2)
        self.counts[f"{service}:{operation}"] += 1

    def parameters(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        """before-parameter-build.dynamodb.<Operation>: the call's own parameters (its key)."""
        pk = (params.get("Key") or {}).get("pk", {}).get("S", "")
        if pk.startswith("ops#"):
            self.ops_keys[(event_name.rsplit(".", 1)[-1], pk)] += 1

    def take(self) -> Counter[str]:
        taken, self.counts = self.counts, Counter()
        return taken


@pytest.fixture
def calls(stack: Stack) -> Iterator[Calls]:
    """Counts the calls of every client made from now on (the handler's: each test is a cold start)."""
    counter = Calls()
    session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
    assert session is not None
    session.events.register("before-call", counter)
    session.events.register("before-parameter-build.dynamodb", counter.parameters)
    try:
        yield counter
    finally:
        session.events.unregister("before-call", counter)
        session.events.unregister("before-parameter-build.dynamodb", counter.parameters)


def staged(stack: Stack, shopify_secret: str, orders: int) -> None:
    """``orders`` new orders in the state, their changes waiting in the targets' queues."""
    for n in range(orders):
        create, _, _ = generated_order(n, shopify_secret)
        assert stack.post(create)["statusCode"] == 200
    stack.run_until_quiet(skip=frozenset({"deliver"}))


def batches(stack: Stack, target: str) -> list[dict[str, Any]]:
    """The target queue's messages as the Lambda events of its event source mapping (10 a batch)."""
    sqs = boto3.client("sqs")
    url, arn = stack.resources.queue_urls[f"deliver-{target}"], stack.resources.queue_arns[f"deliver-{target}"]
    events = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        events.append({"Records": [sqs_record(m, arn, stack.cfg.region) for m in messages]})
    return events


def sent(stack: Stack, target: str) -> int:
    return len([r for r in stack.target.received if r["target"] == target])


def test_a_warm_container_reads_the_circuit_once_and_a_delivery_costs_two_calls(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    Clock(monkeypatch, Clock.next_minute_plus(0))  # the clock stands still: all within the cache's seconds
    staged(stack, shopify_secret, 20)
    events = batches(stack, "crm")
    assert [len(e["Records"]) for e in events] == [10, 10]
    calls.take()

    for event in events:  # two invocations of one warm container
        assert stack.functions.invoke("deliver", event) == {"batchItemFailures": []}

    assert sent(stack, "crm") == 20
    assert calls.take() == {
        "dynamodb:GetItem": 1,  # the circuit, once for the container (was: before each of the 20)
        "dynamodb:BatchGetItem": 20,  # state and ack, together
        "dynamodb:PutItem": 20,  # the ack
        "secrets-manager:GetSecretValue": 1,  # the target's credentials, cached
    }


def test_a_rate_limited_target_is_written_once_per_leased_block_not_per_delivery(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    clock = Clock(monkeypatch, Clock.next_minute_plus(0))
    erp = next(t for t in stack.cfg.targets if t.name == "erp")
    assert erp.rate_limit_per_second == 20  # its queue runs 2 containers at most: blocks of 10 (its share)
    staged(stack, shopify_secret, 30)
    first, second, third = batches(stack, "erp")
    calls.take()

    # Within one second: the limit (20) in two blocks of 10, one write each
    assert stack.functions.invoke("deliver", first) == {"batchItemFailures": []}
    assert stack.functions.invoke("deliver", second) == {"batchItemFailures": []}
    assert sent(stack, "erp") == 20
    assert calls.take() == {
        "dynamodb:GetItem": 1,
        "dynamodb:UpdateItem": 2,
        "dynamodb:BatchGetItem": 20,
        "dynamodb:PutItem": 20,
        "secrets-manager:GetSecretValue": 1,
    }
    # The second is used up: the next ten wait (a delayed copy each: no attempt, no failure), unsent and
    # without another write to the counter
    assert stack.functions.invoke("deliver", third) == {"batchItemFailures": []}
    assert sent(stack, "erp") == 20
    assert calls.take() == {"sqs:GetQueueUrl": 1, "sqs:SendMessage": 10}
    # The next second: a new block, one write
    clock.advance(2)
    [waited] = batches(stack, "erp")
    calls.take()
    assert stack.functions.invoke("deliver", waited) == {"batchItemFailures": []}
    assert sent(stack, "erp") == 30
    assert calls.take() == {"dynamodb:UpdateItem": 1, "dynamodb:BatchGetItem": 10, "dynamodb:PutItem": 10}
    # No ops# item was written more than once per block: one counter per target and second
    rate_writes = {pk: n for (op, pk), n in calls.ops_keys.items() if op == "UpdateItem"}
    assert sorted(rate_writes.values()) == [1, 2]
    assert all(pk.startswith("ops#rate#erp#") for pk in rate_writes)
    assert (erp.queue_concurrency(), erp.token_block()) == (2, 10)
    assert math.ceil(30 / erp.token_block()) == sum(rate_writes.values())


def test_a_failure_opens_the_circuit_and_the_next_delivery_in_the_container_waits_without_a_read_or_a_call(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    Clock(monkeypatch, Clock.next_minute_plus(0))
    crm = next(t for t in stack.cfg.targets if t.name == "crm")
    assert crm.circuit.failures_to_open == 5
    staged(stack, shopify_secret, 6)
    [event] = batches(stack, "crm")
    # a batch's deliveries are in flight together (on threads): the five fail together, the sixth comes
    # in the container's next invocation
    first, then = {"Records": event["Records"][:5]}, {"Records": event["Records"][5:]}
    stack.target.status["crm"] = 503
    calls.take()

    assert stack.functions.invoke("deliver", first) == {"batchItemFailures": []}  # all went back as copies
    assert stack.functions.invoke("deliver", then) == {"batchItemFailures": []}

    assert sent(stack, "crm") == 5  # the sixth waited: the fifth failure opened the circuit
    counts = calls.take()
    assert counts["dynamodb:GetItem"] == 1  # read once; the failures' writes told the container the rest
    assert counts["dynamodb:UpdateItem"] == 5 + 1  # a failure each, and the opening
    assert stack.functions.metric_totals()["RecordFailed"] == 5
    assert stack.functions.metric_totals()["RecordDeferred"] == 1


def test_with_no_circuit_cache_a_delivery_reads_the_circuit_once(
    stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch, calls: Calls
) -> None:
    # Given a target whose circuit is read before every delivery (circuit.cache_seconds 0, the old design
    # bench/delivery_hotkeys.py measures as its baseline) and ten changes waiting for it
    from functions.deliver import handler as deliver

    targets = tuple(
        type(t).model_validate({**t.model_dump(), "circuit": {**t.circuit.model_dump(), "cache_seconds": 0}})
        for t in stack.cfg.targets
    )
    fakes = (stack.target.server.server_port, stack.robot.server.server_port, stack.shop.server.server_port)
    environment = function_environment(
        "deliver", stack.cfg.model_copy(update={"targets": targets}), stack.resources.refs, loopback_ports=fakes
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for cached in (deliver.settings, deliver.ports, deliver.processor):
        cached.cache_clear()
    Clock(monkeypatch, Clock.next_minute_plus(0))
    staged(stack, shopify_secret, 10)
    [event] = batches(stack, "crm")
    calls.take()
    # When they are delivered to a healthy target
    assert stack.functions.invoke("deliver", event) == {"batchItemFailures": []}
    # Then each delivery read the circuit once, not twice
    assert sent(stack, "crm") == 10
    assert calls.ops_keys[("GetItem", "ops#circuit#crm")] == 10
    for cached in (deliver.settings, deliver.ports, deliver.processor):
        cached.cache_clear()
