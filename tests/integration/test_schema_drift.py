"""Schema drift through the real handlers on moto (issue 17, part 4): a Shopify order with a new field and
one with a field renamed each give one warning in the fake WeCom group, digested by notify like the
alarms, while the records themselves are processed (the renamed required field quarantined with its
reason); two containers seeing the same new field at once record it once and warn once; and once a
topic's shape is known, a payload of that shape costs normalise no AWS call at all."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from functions.normalise import handler as normalise
from infra.sandbox.lambda_runtime import sqs_record
from infra.sandbox.samples import SignedWebhook, load_sample, signed
from ops.cli import app
from shared.adapters.state_store import DynamoStateStore
from shared.constants import Env
from shared.intake.schema_drift import SchemaWatch, ShapeStore
from tests.conftest import clear_handler_caches
from tests.integration.conftest import Stack
from tests.integration.test_operations import _deploy_outputs

BASELINE = 3


@pytest.fixture
def drift_stack(stack: Stack) -> Stack:
    """The stack with a baseline of 3 payloads (the deployed default is 20: ``schema_drift.baseline``)."""
    os.environ[Env.SCHEMA_BASELINE] = str(BASELINE)
    clear_handler_caches()
    return stack


def order(secret: str, n: int, **change: Any) -> SignedWebhook:
    """The sample Shopify order as order ``n`` (its own id and event id), with fields added, renamed
    (``rename={"old": "new"}``) or removed (``drop=[...]``)."""
    body = dict(load_sample("shopify_orders_create")["body"])
    body.update(id=820982911946154508 + n, name=f"#{10000 + n}", order_number=10000 + n)
    for old, new in change.pop("rename", {}).items():
        body[new] = body.pop(old)
    for name in change.pop("drop", []):
        body.pop(name)
    body.update(change)
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return signed("shopify_orders_create", secret, body=raw, **{"X-Shopify-Event-Id": f"drift-{n}"})


def drift_blocks(stack: Stack) -> list[str]:
    """Every drift block the WeCom group received (a digest may carry several, and alarm changes too)."""
    return [
        block
        for content in stack.robot.service.contents()
        for block in content.split("\n\n")
        if "SCHEMA DRIFT" in block
    ]


def recorded(stack: Stack) -> list[tuple[str, str, str, str]]:
    _, drifts = ShapeStore(stack.resources.refs.state_table).of_source("shopify")
    return sorted((d["topic"], d["path"], d["kind"], d["delivery"]) for d in drifts)


def learn_baseline(stack: Stack, secret: str) -> None:
    for n in range(BASELINE):
        stack.post(order(secret, n))
    stack.run_until_quiet()
    assert drift_blocks(stack) == [] and recorded(stack) == []


def test_a_new_field_and_a_renamed_one_each_warn_once_and_the_records_are_processed(
    drift_stack: Stack, shopify_secret: str
) -> None:
    stack = drift_stack
    learn_baseline(stack, shopify_secret)

    stack.post(order(shopify_secret, 10, loyalty_tier="gold"))
    stack.run_until_quiet()
    stack.post(order(shopify_secret, 11, rename={"currency": "currency_code"}))
    stack.run_until_quiet()

    blocks = drift_blocks(stack)
    assert len(blocks) == 2
    new, renamed = blocks
    assert "shopify orders/create" in new and "delivery drift-10" in new and "tenant demo" in new
    assert "> new: loyalty_tier (string)" in new and "missing" not in new
    assert "delivery drift-11" in renamed
    assert "> new: currency_code (string)" in renamed
    assert "> missing: currency (was always present)" in renamed
    assert "gold" not in "".join(blocks) and "CNY" not in "".join(blocks)  # paths and types, never values
    assert recorded(stack) == [
        ("orders/create", "currency", "missing", "drift-11"),
        ("orders/create", "currency_code", "new", "drift-11"),
        ("orders/create", "loyalty_tier", "new", "drift-10"),
    ]
    # the new unmapped field blocked nothing: the order is in the state
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "order", "shopify:820982911946154518")
    assert state is not None and state.fields["total"] == {"amount": "598.00", "currency": "CNY"}
    # the renamed required field: quarantined with the reason, as before
    [parked] = stack.messages("quarantine")
    body = json.loads(parked["Body"])
    assert body["source"] == "shopify"
    assert body["reason"] == "orders/create payload is not usable: missing field 'currency'"
    assert json.loads(body["envelope"])["source_event_id"] == "drift-11"

    # counted: SchemaDrift by source and topic, one per drift
    counted = [
        (r["source"], r["topic"], r["SchemaDrift"], r["_aws"]["CloudWatchMetrics"][0]["Dimensions"])
        for r in stack.functions.emf
        if "SchemaDrift" in r
    ]
    assert counted == [
        ("shopify", "orders/create", [1.0], [["service", "source", "topic"]]),
        ("shopify", "orders/create", [2.0], [["service", "source", "topic"]]),
    ]

    # the operator's view: the known shape's size and each drift, oldest first
    _deploy_outputs(stack)
    shown = CliRunner().invoke(app, ["sources", "drift", "--source", "shopify", "--aws", "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    [shape] = document["shapes"]
    assert (shape["topic"], shape["paths"], shape["payloads"]) == ("orders/create", 44, BASELINE)
    assert [(d["kind"], d["path"], d["was"], d["now"]) for d in document["drifts"]] == [
        ("new", "loyalty_tier", "", "string"),
        ("missing", "currency", "string", ""),
        ("new", "currency_code", "", "string"),
    ]
    table = CliRunner().invoke(app, ["sources", "drift", "--aws"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "orders/create" in table.output and "loyalty_tier" in table.output and "currency_code" in table.output
    unknown = CliRunner().invoke(app, ["sources", "drift", "--source", "nosuch", "--aws"])
    assert unknown.exit_code == 2 and "no source 'nosuch'" in unknown.output

    # the same drift again is no news: nothing recorded, nothing sent
    stack.post(order(shopify_secret, 12, loyalty_tier="silver"))
    stack.run_until_quiet()
    assert len(drift_blocks(stack)) == 2 and len(recorded(stack)) == 3


def test_a_missing_required_field_without_drift_is_still_quarantined_with_its_reason(
    drift_stack: Stack, shopify_secret: str
) -> None:
    stack = drift_stack
    stack.post(order(shopify_secret, 1, drop=["total_price"]))  # in the baseline: no drift to report
    stack.run_until_quiet()
    [parked] = stack.messages("quarantine")
    assert json.loads(parked["Body"])["reason"] == "orders/create payload is not usable: missing field 'total_price'"
    assert drift_blocks(stack) == []


class Container(threading.local):
    """Each thread its own drift watch, as two Lambda containers each have theirs."""

    watch: SchemaWatch | None = None


class Tried(threading.local):
    tried = False


def test_two_containers_seeing_the_same_new_field_at_once_record_it_once_and_warn_once(
    drift_stack: Stack, shopify_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = drift_stack
    learn_baseline(stack, shopify_secret)
    store = ShapeStore(stack.resources.refs.state_table)
    watches = [SchemaWatch(ShapeStore(store.table), BASELINE, lambda m, e: None) for _ in range(2)]
    for watch in watches:  # both warm: each holds the known shape, as read before the new field came
        watch.cache.update(store.load_many([("shopify", "orders/create")]))
    container = Container()
    monkeypatch.setattr(normalise, "schema_watch", lambda: container.watch)
    both_folded = threading.Barrier(2)
    save = ShapeStore.save

    saved: list[bool] = []
    saved_here = Tried()

    def racing_save(self: ShapeStore, *args: Any, **kwargs: Any) -> bool:
        if not saved_here.tried:  # each container's first write waits until both decided on the same shape
            saved_here.tried = True
            both_folded.wait(timeout=10)
        saved.append(save(self, *args, **kwargs))
        return saved[-1]

    monkeypatch.setattr(ShapeStore, "save", racing_save)
    stack.post(order(shopify_secret, 20, loyalty_tier="gold"))
    stack.post(order(shopify_secret, 21, loyalty_tier="gold"))
    sqs = boto3.client("sqs")
    inbox = sqs.receive_message(QueueUrl=stack.resources.queue_urls["inbox"], MaxNumberOfMessages=10)["Messages"]
    assert len(inbox) == 2
    failures: list[dict[str, BaseException]] = []

    def invocation(watch: SchemaWatch, message: dict[str, Any]) -> None:
        container.watch = watch
        record = normalise.SQSRecord(sqs_record(message, stack.resources.queue_arns["inbox"], stack.cfg.region))
        failures.append(normalise.normalise_batch([record]))

    threads = [threading.Thread(target=invocation, args=pair) for pair in zip(watches, inbox, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    monkeypatch.setattr(ShapeStore, "save", save)
    assert failures == [{}, {}]
    # both wrote at once and one lost; it read the winner's shape, found the field known (no drift of its
    # own) and wrote only its payload's count of the new field
    assert saved == [True, False, True]
    for message in inbox:
        sqs.delete_message(QueueUrl=stack.resources.queue_urls["inbox"], ReceiptHandle=message["ReceiptHandle"])
    stack.run_until_quiet()

    [drift] = recorded(stack)
    assert drift[:3] == ("orders/create", "loyalty_tier", "new") and drift[3] in ("drift-20", "drift-21")
    [block] = drift_blocks(stack)
    assert "> new: loyalty_tier (string)" in block
    assert store.load("shopify", "orders/create").counts["loyalty_tier"] == 2  # no count lost either
    states = DynamoStateStore(stack.resources.refs.state_table)
    for n in (20, 21):  # and both orders went on to the state
        state, _ = states.load("demo", "order", f"shopify:{820982911946154508 + n}")
        assert state is not None


class CallCounter:
    """AWS calls by ``service:Operation`` (botocore ``before-call`` events)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}:{operation}"] += 1


@pytest.fixture
def counted() -> Iterator[CallCounter]:
    counter = CallCounter()
    events = boto3._get_default_session().events
    events.register("before-call", counter)
    yield counter
    events.unregister("before-call", counter)


def normalise_now(stack: Stack) -> None:
    """One normalise invocation of what the inbox holds (the inbox's receives are not normalise's)."""
    sqs = boto3.client("sqs")
    inbox = sqs.receive_message(QueueUrl=stack.resources.queue_urls["inbox"], MaxNumberOfMessages=10)["Messages"]
    records = [normalise.SQSRecord(sqs_record(m, stack.resources.queue_arns["inbox"], stack.cfg.region)) for m in inbox]
    assert normalise.normalise_batch(records) == {}
    for message in inbox:
        sqs.delete_message(QueueUrl=stack.resources.queue_urls["inbox"], ReceiptHandle=message["ReceiptHandle"])


def test_a_known_shape_costs_a_warm_container_no_aws_call_and_a_cold_one_a_single_read(
    drift_stack: Stack, shopify_secret: str, counted: CallCounter
) -> None:
    stack = drift_stack
    learn_baseline(stack, shopify_secret)
    clear_handler_caches()  # a cold container: it reads the shape once
    for n in range(30, 35):
        stack.post(order(shopify_secret, n))
    counted.calls.clear()
    normalise_now(stack)
    cold = {k: v for k, v in counted.calls.items() if k.startswith("dynamodb:") or k == "sqs:SendMessage"}
    assert cold == {"dynamodb:BatchGetItem": 1}
    for n in range(40, 45):  # warm: the same shape, five payloads
        stack.post(order(shopify_secret, n))
    counted.calls.clear()
    normalise_now(stack)
    warm = {k: v for k, v in counted.calls.items() if k.startswith("dynamodb:") or k == "sqs:SendMessage"}
    assert warm == {}  # no shape read, no shape write, no notice: zero calls added per event
