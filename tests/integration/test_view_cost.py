"""What the projector writes for an order update, and its guarantees under races, on moto.

An order update that leaves the order with its customer is one conditional PutItem of the summary and
one of the timeline entry through the real project function: no pointer read, no transaction, no
selector write (bench/RESULTS.md's Lookup section measured 4 calls and 9 WRU per update with the owner
pointers' transaction). The same-owner write holds the guarantees the pointers gave: a move racing an
older same-owner update ends in the mover's view only (the tombstone it leaves refuses the older
summary), an order moved away and back converges on its newest state whatever order the stream
delivers the three in (and again on duplicates), and a state whose selectors changed writes them
even when the state before it was never projected.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from bench.capacity_inputs import Probe
from functions.project import handler as project
from infra.sandbox.pollers import SqsPoller
from infra.sandbox.samples import SignedWebhook
from infra.wiring import queues
from ops.view_rebuild import rebuild_view
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.view_store import DynamoViewStore
from shared.read.view import (
    OWNER_SK,
    REF_OWNER_PREFIX,
    SELECTOR_SK,
    Owner,
    entity_sk,
    owner_pk,
    selector_hmac,
    selector_pk,
    view_pk,
)
from shared.sources import shopify
from shared.state.merge import EntityState
from shared.state.stored import pack
from tests.integration.conftest import Stack
from tests.integration.test_customer_identity import order_webhook
from tests.integration.test_customer_view import LEI, _lookup, _salt
from tests.integration.test_lookup_hostile import WEI, _customer_of
from tests.integration.test_view_rebuild import _projector

ORDER = "shopify:5001"
ORDER_PK = f"demo#order#{ORDER}"


def _order_update(secret: str, customer: dict[str, object], updated_at: str, fulfilled: bool) -> SignedWebhook:
    """The shop's orders/updated of #5001: its customer, fulfilled or not, at ``updated_at``."""
    webhook = order_webhook(secret, 5001, customer, None)
    body = json.loads(webhook.body)
    body["updated_at"] = updated_at
    body["fulfillment_status"] = "fulfilled" if fulfilled else None
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {**webhook.headers, shopify.SIGNATURE_HEADER: shopify.sign(secret, raw)}
    return SignedWebhook("order", "shopify", headers, raw)


def _sync_only(stack: Stack) -> None:
    """Ingest's queues through normalise and sync, the stream left unread (the project function not run)."""
    pollers = [
        SqsPoller(
            stack.functions,
            spec.consumer,
            stack.resources.queue_urls[spec.purpose],
            stack.resources.queue_arns[spec.purpose],
            stack.cfg.region,
            retry_delay=lambda _: 0,
        )
        for spec in queues(stack.cfg)
        if spec.consumer in ("normalise", "sync")
    ]
    quiet = 0
    while quiet < 2:
        quiet = quiet + 1 if sum(p.poll_once() for p in pollers) == 0 else 0


def _stream(stack: Stack, pk: str) -> list[dict[str, Any]]:
    """Every stream record of one item collection, oldest first, as the event source mapping hands them over."""
    streams = boto3.client("dynamodbstreams")
    arn = stack.resources.stream_arn
    found: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        position = iterator["ShardIterator"]
        while True:
            page = streams.get_records(ShardIterator=position, Limit=1000)
            position = page["NextShardIterator"]
            found += [{**r, "eventSourceARN": arn} for r in page["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == pk]
            if not page["Records"]:
                break
    return sorted(found, key=lambda r: int(r["dynamodb"]["SequenceNumber"]))


class _Metered:
    """The project function's DynamoDB calls by operation and their write units (the bench's probe:
    DynamoDB's size rules, a refused conditional write charged too), and the tables each call names
    (``tables``: operation -> table names), while in a ``with``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.tables: dict[str, set[str]] = {}
        self.client = project.ports().store.client
        self.probe = Probe(boto3.client("dynamodb"), {})

    def count(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[1]] += 1

    def name_tables(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[1]
        named = {params["TableName"]} if "TableName" in params else set(params.get("RequestItems", {}))
        for write in params.get("TransactItems", []):
            named |= {action["TableName"] for action in write.values()}
        self.tables.setdefault(operation, set()).update(named)

    def writes(self) -> set[str]:
        """The tables any write names."""
        kinds = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
        return set().union(*(t for op, t in self.tables.items() if op in kinds))

    def __enter__(self) -> _Metered:
        events = self.client.meta.events
        events.register("before-call.dynamodb", self.count)
        events.register("provide-client-params.dynamodb", self.name_tables)
        events.register("before-parameter-build.dynamodb", self.probe.before)
        events.register("after-call.dynamodb", self.probe.after)
        return self

    def __exit__(self, *_: object) -> None:
        events = self.client.meta.events
        events.unregister("before-call.dynamodb", self.count)
        events.unregister("provide-client-params.dynamodb", self.name_tables)
        events.unregister("before-parameter-build.dynamodb", self.probe.before)
        events.unregister("after-call.dynamodb", self.probe.after)

    @property
    def wru(self) -> float:
        return sum(t.wru for t in self.probe.tally.touches)


def test_an_order_update_that_keeps_its_customer_costs_two_puts_and_two_write_units(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    table = stack.resources.refs.state_table
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.run_until_quiet()
    lei = _customer_of(stack, ORDER)
    stack.post(_order_update(shopify_secret, LEI, "2026-11-20T10:30:00+08:00", fulfilled=True))
    _sync_only(stack)
    state, _ = DynamoStateStore(table).load("demo", "order", ORDER)
    assert state is not None and state.fields["fulfillment_status"] == "fulfilled"
    records = [r for r in _stream(stack, ORDER_PK) if r["eventName"] != "REMOVE"][-2:]  # the update's two
    assert sorted((r["eventName"], r["dynamodb"]["Keys"]["sk"]["S"][:6]) for r in records) == [
        ("INSERT", "AUDIT#"),
        ("MODIFY", "STATE"),
    ]

    with _Metered() as metered:
        assert stack.functions.invoke("project", {"Records": records}) == {"batchItemFailures": []}
    # the summary and the timeline entry, each one PutItem; the customer's canonical id: one read a batch
    assert metered.calls == Counter({"PutItem": 2, "BatchGetItem": 1})
    assert metered.wru == 2.0  # no transaction (it doubles), no selector, no pointer
    # both writes into the view's own table; the one read (the canonical customer) from the state table
    assert metered.tables == {
        "PutItem": {stack.resources.refs.view_table},
        "BatchGetItem": {stack.resources.refs.state_table},
    }

    summary = boto3.client("dynamodb").get_item(
        TableName=stack.resources.refs.view_table,
        Key={"pk": {"S": view_pk("demo", lei)}, "sk": {"S": entity_sk("order", ORDER)}},
    )["Item"]
    assert int(summary["version"]["N"]) == state.version
    view = _lookup(stack, sandbox_secrets, "order", "#5001")
    assert view.customer_id == lei
    assert [o["fulfillment_status"] for o in view.orders] == ["fulfilled"]
    assert max(t["version"] for t in view.timeline if t["entity_id"] == ORDER) == state.version


def test_the_project_function_writes_only_the_view_table_through_a_first_placement_and_a_move(
    stack: Stack, shopify_secret: str
) -> None:
    """The view is its own table: a new customer, a new order (pointer, summary, selectors, timeline) and
    the order moving to another customer (a transaction) write nothing into the state table, sync's."""
    with _Metered() as metered:
        stack.post(order_webhook(shopify_secret, 5001, LEI, None))
        stack.post(order_webhook(shopify_secret, 5003, WEI, None))
        stack.run_until_quiet()
        stack.post(_order_update(shopify_secret, WEI, "2026-11-20T11:00:00+08:00", fulfilled=True))
        stack.run_until_quiet()
    assert _customer_of(stack, ORDER) == _customer_of(stack, "shopify:5003")  # it moved
    assert metered.calls["TransactWriteItems"] >= 1 and metered.calls["PutItem"] >= 4
    assert metered.calls["UpdateItem"] >= 1  # the selectors
    assert metered.writes() == {stack.resources.refs.view_table}
    assert stack.resources.refs.state_table in metered.tables["BatchGetItem"]  # states, the canonical customer


# --- races and out-of-order delivery -------------------------------------------------------------------
@pytest.fixture
def three_states(stack: Stack, shopify_secret: str) -> dict[str, Any]:
    """Order #5001: Lei's (v1), updated for Lei (v2), moved to Wei (v3), moved back to Lei (v4)."""
    table = stack.resources.refs.state_table
    store = DynamoStateStore(table)
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))  # Wei's customer
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.run_until_quiet()
    states: list[EntityState] = []
    steps = [
        (LEI, "2026-11-20T10:30:00+08:00", True),
        (WEI, "2026-11-20T11:00:00+08:00", True),
        (LEI, "2026-11-20T12:00:00+08:00", True),
    ]
    first, _ = store.load("demo", "order", ORDER)
    assert first is not None
    states.append(first)
    for customer, at, fulfilled in steps:
        stack.post(_order_update(shopify_secret, customer, at, fulfilled))
        stack.run_until_quiet()
        state, _ = store.load("demo", "order", ORDER)
        assert state is not None and state.version > states[-1].version
        states.append(state)
    lei, wei = str(states[0].fields["customer_id"]), str(states[2].fields["customer_id"])
    assert lei != wei and states[1].fields["customer_id"] == states[3].fields["customer_id"] == lei
    return {"states": states, "lei": lei, "wei": wei}


def _reset(stack: Stack, lei: str, wei: str, salt: bytes) -> None:
    """#5001 as never projected: no pointer, nothing (not even a tombstone) in either view, no selectors."""
    dynamodb = boto3.client("dynamodb")
    keys = [(owner_pk("demo", "order", ORDER), OWNER_SK)]
    keys += [(view_pk("demo", c), entity_sk("order", ORDER)) for c in (lei, wei)]
    keys += [(selector_pk("demo", "order", selector_hmac(salt, "order", v)), SELECTOR_SK) for v in ("5001", ORDER)]
    for pk, sk in keys:
        dynamodb.delete_item(TableName=stack.resources.refs.view_table, Key={"pk": {"S": pk}, "sk": {"S": sk}})


def _where(stack: Stack, lei: str, wei: str) -> tuple[Owner | None, int | None, int | None]:
    """The pointer, and the version of the live summary in Lei's and in Wei's view (None: not there)."""
    table = stack.resources.refs.view_table
    found: list[int | None] = []
    for customer in (lei, wei):
        item = boto3.client("dynamodb").get_item(
            TableName=table, Key={"pk": {"S": view_pk("demo", customer)}, "sk": {"S": entity_sk("order", ORDER)}}
        )
        live = "Item" in item and "tombstone" not in item["Item"]  # (a tombstone: it moved out)
        found.append(int(item["Item"]["version"]["N"]) if live else None)
    return DynamoViewStore(table).owner("demo", "order", ORDER), found[0], found[1]


def _number_owner(stack: Stack, sandbox_secrets: dict[str, Any]) -> str | None:
    """The view order number #5001's selector names for the order."""
    digest = selector_hmac(_salt(sandbox_secrets), "order", "5001")
    item = boto3.client("dynamodb").get_item(
        TableName=stack.resources.refs.view_table,
        Key={"pk": {"S": selector_pk("demo", "order", digest)}, "sk": {"S": SELECTOR_SK}},
    )["Item"]
    owner = item.get(f"{REF_OWNER_PREFIX}order#{ORDER}")
    return owner["S"] if owner else None


class _PausingMove(DynamoViewStore):
    """The view store pausing a move between its reads and its transaction (the first time only)."""

    def __init__(self, table: str, read: threading.Event, go_on: threading.Event) -> None:
        super().__init__(table)
        self.read, self.go_on, self.paused = read, go_on, False

    def place(self, *args: Any, **kwargs: Any) -> Owner:
        if not self.paused:
            self.paused = True
            self.read.set()
            assert self.go_on.wait(30)
        return super().place(*args, **kwargs)


@pytest.mark.parametrize("first", ["move", "update"])
def test_a_move_racing_an_older_same_owner_update_leaves_the_order_in_the_new_view_only(
    stack: Stack, sandbox_secrets: dict[str, Any], three_states: dict[str, Any], first: str
) -> None:
    v1, v2, v3, _ = three_states["states"]
    lei, wei = three_states["lei"], three_states["wei"]
    _reset(stack, lei, wei, _salt(sandbox_secrets))
    assert _projector(stack, sandbox_secrets).project_state(v1) is True
    if first == "move":  # the move commits, then the older update's same-owner write meets the tombstone
        assert _projector(stack, sandbox_secrets).project_state(v3, same_place_likely=True) is True
        assert _projector(stack, sandbox_secrets).project_state(v2, same_place_likely=True) is False
    else:  # the move read Lei's v1; the update's write lands before the move's transaction, which decides again
        read, go_on = threading.Event(), threading.Event()
        pausing = _projector(stack, sandbox_secrets, _PausingMove(stack.resources.refs.view_table, read, go_on))
        with ThreadPoolExecutor(1) as pool:
            moving = pool.submit(pausing.project_state, v3, True)
            assert read.wait(30)
            assert _projector(stack, sandbox_secrets).project_state(v2, same_place_likely=True) is True
            assert _where(stack, lei, wei)[1] == v2.version  # Lei's summary is v2 now: the move's read is stale
            go_on.set()
            assert moving.result(30) is True
    assert _where(stack, lei, wei) == (Owner(wei, v3.version), None, v3.version)
    assert _number_owner(stack, sandbox_secrets) == wei
    assert _lookup(stack, sandbox_secrets, "phone", "13800138000").orders == []


def test_concurrent_same_owner_updates_and_moves_converge_on_the_newest_state(
    stack: Stack, sandbox_secrets: dict[str, Any], three_states: dict[str, Any]
) -> None:
    states = three_states["states"]
    lei, wei = three_states["lei"], three_states["wei"]
    for round_ in range(4):
        _reset(stack, lei, wei, _salt(sandbox_secrets))
        assert _projector(stack, sandbox_secrets).project_state(states[0]) is True
        runs = [(s, likely) for s in states[1:] for likely in (True, False)] * 2  # twelve at once
        start = threading.Barrier(len(runs))

        def run(entry: tuple[EntityState, bool], start: threading.Barrier = start) -> bool:
            start.wait()
            return _projector(stack, sandbox_secrets).project_state(entry[0], same_place_likely=entry[1])

        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(run, runs))
        pointer, in_lei, in_wei = _where(stack, lei, wei)
        assert pointer is not None and pointer.customer_id == lei, f"round {round_}"
        assert (in_lei, in_wei) == (states[3].version, None), f"round {round_}"
        assert _number_owner(stack, sandbox_secrets) == lei, f"round {round_}"


def _record(state: EntityState, sequence: int) -> dict[str, Any]:
    """A stream record of an order's state as the project function's event source mapping hands it over."""
    image = {
        "pk": {"S": ORDER_PK},
        "sk": {"S": "STATE"},
        "version": {"N": str(state.version)},
        "revision": {"N": str(state.revision)},
        "docz": {"B": pack(state)},
    }
    return {
        "eventID": f"replay-{sequence}",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": {"S": ORDER_PK}, "sk": {"S": "STATE"}},
            "NewImage": image,
            "SequenceNumber": str(sequence),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_an_order_moved_away_and_back_converges_whatever_order_and_how_often_the_stream_delivers_it(
    stack: Stack, sandbox_secrets: dict[str, Any], three_states: dict[str, Any]
) -> None:
    _, v2, v3, v4 = three_states["states"]  # Lei's, Wei's, Lei's again
    lei, wei = three_states["lei"], three_states["wei"]
    for order in itertools.permutations((v2, v3, v4)):
        _reset(stack, lei, wei, _salt(sandbox_secrets))
        for sequence, state in enumerate([*order, *order]):  # every record twice (at least once)
            assert stack.functions.invoke("project", {"Records": [_record(state, 900 + sequence)]}) == {
                "batchItemFailures": []
            }
        pointer, in_lei, in_wei = _where(stack, lei, wei)
        assert pointer is not None and (pointer.customer_id, in_lei, in_wei) == (lei, v4.version, None), order
        assert _number_owner(stack, sandbox_secrets) == lei, [s.version for s in order]
    assert [o["order_id"] for o in _lookup(stack, sandbox_secrets, "phone", "13500135000").orders] == ["shopify:5003"]


def test_a_state_whose_selectors_changed_writes_them_though_the_state_before_it_was_never_projected(
    stack: Stack, sandbox_secrets: dict[str, Any], three_states: dict[str, Any]
) -> None:
    v1, v2, *_ = three_states["states"]
    lei, wei = three_states["lei"], three_states["wei"]
    _reset(stack, lei, wei, _salt(sandbox_secrets))
    assert _projector(stack, sandbox_secrets).project_state(v1) is True
    # v2 gained a serial on its line; its record was lost; v3 (as v2, one version on) arrives as an update
    first_line, *others = v2.fields["lines"]
    lines = [{**first_line, "serial_number": "SN-LOST-0001"}, *others]
    with_serial = v2.model_copy(update={"fields": {**v2.fields, "lines": lines}})
    later = with_serial.model_copy(update={"version": v2.version + 1})
    assert _projector(stack, sandbox_secrets).project_state(later, same_place_likely=True) is True
    found = _lookup(stack, sandbox_secrets, "serial", "SN-LOST-0001")
    assert (found.customer_id, found.refs) == (lei, [f"order#{ORDER}#line:0"])
    # and a duplicate of it (a retry after a crash between its summary and its selectors) points them again
    dynamodb = boto3.client("dynamodb")
    digest = selector_hmac(_salt(sandbox_secrets), "serial", "SN-LOST-0001")
    dynamodb.delete_item(
        TableName=stack.resources.refs.view_table,
        Key={"pk": {"S": selector_pk("demo", "serial", digest)}, "sk": {"S": SELECTOR_SK}},
    )
    assert _projector(stack, sandbox_secrets).project_state(later, same_place_likely=True) is False
    assert _lookup(stack, sandbox_secrets, "serial", "SN-LOST-0001").customer_id == lei


def test_a_rebuild_of_a_view_the_stream_kept_changes_nothing_and_leaves_the_tombstones(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any], three_states: dict[str, Any]
) -> None:
    # the stream projected #5001's states, and one more update for Lei: written in place (the pointer's
    # version stays the move back's), a tombstone in Wei's view from the move back
    table, view_table = stack.resources.refs.state_table, stack.resources.refs.view_table
    lei, wei = three_states["lei"], three_states["wei"]
    stack.post(_order_update(shopify_secret, LEI, "2026-11-20T13:00:00+08:00", fulfilled=False))
    stack.run_until_quiet()
    v5, _ = DynamoStateStore(table).load("demo", "order", ORDER)
    assert v5 is not None and v5.version > three_states["states"][3].version
    pointer, in_lei, in_wei = _where(stack, lei, wei)
    assert pointer == Owner(lei, three_states["states"][3].version)
    assert (in_lei, in_wei) == (v5.version, None)
    tombstone_key = {"pk": {"S": view_pk("demo", wei)}, "sk": {"S": entity_sk("order", ORDER)}}
    assert "tombstone" in boto3.client("dynamodb").get_item(TableName=view_table, Key=tombstone_key)["Item"]
    view = DynamoViewStore(view_table)
    report = rebuild_view(_projector(stack, sandbox_secrets), DynamoStateStore(table), view, "demo")
    assert (report.changes, report.changed_entities) == (0, [])
    assert "tombstone" in boto3.client("dynamodb").get_item(TableName=view_table, Key=tombstone_key)["Item"]
