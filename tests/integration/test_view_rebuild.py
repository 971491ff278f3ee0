"""The customer view's owner pointers under concurrency, and ``aftersync lookup rebuild``, on moto.

Two projections of one entity at different versions, racing (the stream's retries and a rebuild do
that), converge on the newer one: the entity in one view only, its selector naming that view. A
rebuild from states the projector never saw gives the very answers the projector would have given,
removes what an older projector left behind, and changes nothing when run again. A deployment from
before the view table (its view in the state table, the new table empty) is rebuilt into the view
table with the same answers, and ``--purge-state-table`` then deletes exactly the old view items.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from functions.project.handler import Projector
from ops.view_rebuild import purge_state_table, rebuild_view
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.view_store import DynamoViewStore
from shared.read.lookup import LookupResult
from shared.read.view import Owner, alias_item, entity_sk, is_live, owner_pk, timeline_sk, view_pk
from shared.state.merge import EntityState
from tests.integration.conftest import Stack
from tests.integration.test_customer_identity import order_webhook
from tests.integration.test_customer_view import (  # noqa: F401 - a fixture
    LEI,
    TRACKING,
    YOUZAN_ORDER,
    CallCounter,
    _lookup,
    _salt,
    two_shops,
)
from tests.integration.test_lookup_hostile import WEI, _customer_of, _reassigned


def _projector(stack: Stack, sandbox_secrets: dict[str, Any], view: DynamoViewStore | None = None) -> Projector:
    """The projector's own code, as the handler builds it (a fresh one per batch)."""
    table = stack.resources.refs.state_table
    return Projector(
        DynamoStateStore(table),
        view or DynamoViewStore(stack.resources.refs.view_table),
        lambda _: _salt(sandbox_secrets),
        lambda tenant: DynamoIdentityIndex(table, tenant),
        "CN",
    )


def _view_items(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the view: views, owner pointers, selectors (the view table holds nothing else)."""
    dynamodb = boto3.client("dynamodb")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": stack.resources.refs.view_table}
    while True:
        page = dynamodb.scan(**kwargs)
        for item in page["Items"]:
            if any(part in item["pk"]["S"] for part in ("#view#", "#viewown#", "#sel#")):
                found[(item["pk"]["S"], item["sk"]["S"])] = item
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _wipe(stack: Stack) -> None:
    dynamodb = boto3.client("dynamodb")
    for pk, sk in _view_items(stack):
        dynamodb.delete_item(TableName=stack.resources.refs.view_table, Key={"pk": {"S": pk}, "sk": {"S": sk}})


@pytest.fixture
def moved_order(stack: Stack, shopify_secret: str) -> tuple[EntityState, EntityState, str, str]:
    """Order #5001 was Lei's, then the shop gave it to Wei: both states, and the two customers."""
    table = stack.resources.refs.state_table
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))
    stack.run_until_quiet()
    older, _ = DynamoStateStore(table).load("demo", "order", "shopify:5001")
    stack.post(_reassigned(shopify_secret, 5001, WEI))
    stack.run_until_quiet()
    newer, _ = DynamoStateStore(table).load("demo", "order", "shopify:5001")
    assert older is not None and newer is not None and newer.version > older.version
    lei, wei = str(older.fields["customer_id"]), str(newer.fields["customer_id"])
    assert lei != wei == _customer_of(stack, "shopify:5003")
    return older, newer, lei, wei


def _where_5001(stack: Stack, lei: str, wei: str) -> tuple[Owner | None, bool, bool]:
    table = stack.resources.refs.view_table
    dynamodb = boto3.client("dynamodb")
    present = [  # a live summary (a tombstone: it moved out)
        is_live(
            dynamodb.get_item(
                TableName=table,
                Key={"pk": {"S": view_pk("demo", c)}, "sk": {"S": entity_sk("order", "shopify:5001")}},
            ).get("Item")
        )
        for c in (lei, wei)
    ]
    return DynamoViewStore(table).owner("demo", "order", "shopify:5001"), present[0], present[1]


def _reset_5001(stack: Stack, lei: str, wei: str) -> None:
    """The order as never projected: no pointer, in neither view."""
    table = stack.resources.refs.view_table
    dynamodb = boto3.client("dynamodb")
    keys = [(owner_pk("demo", "order", "shopify:5001"), "OWN")]
    keys += [(view_pk("demo", c), entity_sk("order", "shopify:5001")) for c in (lei, wei)]
    for pk, sk in keys:
        dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})


# --- concurrency ------------------------------------------------------------------------------------
def test_concurrent_projections_of_an_older_and_a_newer_state_converge_on_the_newer(
    stack: Stack, sandbox_secrets: dict[str, Any], moved_order: tuple[EntityState, EntityState, str, str]
) -> None:
    older, newer, lei, wei = moved_order
    for round_ in range(6):
        _reset_5001(stack, lei, wei)
        states = [older, newer] * 4  # eight projections at once, four of each version
        start = threading.Barrier(len(states))

        def project(state: EntityState, start: threading.Barrier = start) -> bool:
            start.wait()
            return _projector(stack, sandbox_secrets).project_state(state)

        with ThreadPoolExecutor(len(states)) as pool:
            list(pool.map(project, states))
        pointer, in_lei, in_wei = _where_5001(stack, lei, wei)
        assert (pointer, in_lei, in_wei) == (Owner(wei, newer.version), False, True), f"round {round_}"
    by_number = _lookup(stack, sandbox_secrets, "order", "#5001")
    assert (by_number.customer_id, by_number.matches) == (wei, [])
    assert _lookup(stack, sandbox_secrets, "phone", "13800138000").orders == []


class _PausingView(DynamoViewStore):
    """The view store with a pause after reading the owner pointer (the first time only): the window in
    which another projection may move the entity."""

    def __init__(self, table: str, read: threading.Event, go_on: threading.Event) -> None:
        super().__init__(table)
        self.read, self.go_on, self.paused = read, go_on, False

    def owner(self, tenant: str, entity_type: str, entity_id: str) -> Owner | None:
        found = super().owner(tenant, entity_type, entity_id)
        if not self.paused:
            self.paused = True
            self.read.set()
            assert self.go_on.wait(30)
        return found


@pytest.mark.parametrize("slow", ["older", "newer"])
def test_a_projection_that_read_the_pointer_before_another_moved_the_entity_decides_again(
    stack: Stack, sandbox_secrets: dict[str, Any], moved_order: tuple[EntityState, EntityState, str, str], slow: str
) -> None:
    older, newer, lei, wei = moved_order
    _reset_5001(stack, lei, wei)
    # the slow one reads "never projected", the other places the order meanwhile, then the slow one writes
    read, go_on = threading.Event(), threading.Event()
    pausing = _projector(stack, sandbox_secrets, _PausingView(stack.resources.refs.view_table, read, go_on))
    first, second = (older, newer) if slow == "older" else (newer, older)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(pausing.project_state, first)
        assert read.wait(30)
        assert _projector(stack, sandbox_secrets).project_state(second) is True
        go_on.set()
        # the slow one's transaction fails on the pointer; read again, it is older (nothing) or newer (moves)
        assert waiting.result(30) is (slow == "newer")
    assert _where_5001(stack, lei, wei) == (Owner(wei, newer.version), False, True)


# --- rebuild -----------------------------------------------------------------------------------------
LOOKUPS = [
    ("phone", "13800138000"),
    ("phone", "13500135000"),
    ("serial", "SN-RV2-0001"),
    ("tracking", TRACKING),
    ("order", "#5001"),
    ("order", "#5003"),
]


def _answers(stack: Stack, sandbox_secrets: dict[str, Any]) -> dict[str, LookupResult]:
    return {f"{k}={v}": _lookup(stack, sandbox_secrets, k, v, limit=100) for k, v in LOOKUPS}


@pytest.mark.usefixtures("two_shops")
def test_a_rebuild_from_states_the_projector_never_saw_answers_as_the_projector_would_and_twice_changes_nothing(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    table = stack.resources.refs.state_table
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))
    stack.run_until_quiet()
    lei, wei = _customer_of(stack, "shopify:5001"), _customer_of(stack, "shopify:5003")
    DynamoIdentityIndex(table, "demo").absorb(wei, lei, ("test",), by="test")  # Wei's a second account of Lei's
    stack.run_until_quiet()
    projected = _answers(stack, sandbox_secrets)
    assert sorted(o["order_id"] for o in projected["phone=13500135000"].orders) == sorted(
        ["shopify:5001", "shopify:5003", YOUZAN_ORDER]
    )
    assert projected["serial=SN-RV2-0001"].warranty[0].serial == "SN-RV2-0001"
    store, view = DynamoStateStore(table), DynamoViewStore(stack.resources.refs.view_table)

    # 6 states: Lei and Wei, their Shopify orders, the Youzan order and its shipment
    # the states as they were before the projector was deployed: no view at all; and what an older
    # projector left: #5001 in a stranger's view with a timeline entry, an alias marker of nobody's
    _wipe(stack)
    assert not _lookup(stack, sandbox_secrets, "phone", "13800138000").found
    stranger = "cus_0000000000000000000stale"
    order_5001, _ = store.load("demo", "order", "shopify:5001")
    assert order_5001 is not None
    stale = [
        {
            "pk": {"S": view_pk("demo", stranger)},
            "sk": {"S": entity_sk("order", "shopify:5001")},
            "doc": {"S": '{"order_id":"shopify:5001"}'},
            "version": {"N": "1"},
        },
        {
            "pk": {"S": view_pk("demo", stranger)},
            "sk": {"S": timeline_sk("2026-11-20T02:00:05Z", "order", "shopify:5001", 1)},
            "doc": {"S": "{}"},
        },
        alias_item("demo", stranger, lei),
    ]
    for item in stale:
        view.put_item(item)
    before = _view_items(stack)

    dry = rebuild_view(_projector(stack, sandbox_secrets), store, view, "demo", dry_run=True)
    assert _view_items(stack) == before  # a dry run changes nothing
    assert (dry.states, dry.placed, dry.removed, dry.without_customer) == (6, 6, 3, 0)
    assert dry.timeline > 0

    done = rebuild_view(_projector(stack, sandbox_secrets), store, view, "demo")
    assert (done.placed, done.timeline, done.removed, done.aliases) == (dry.placed, dry.timeline, dry.removed, 0)
    assert _answers(stack, sandbox_secrets) == projected  # the exact answers the stream had given
    assert all((i["pk"]["S"], i["sk"]["S"]) not in _view_items(stack) for i in stale)
    counter = CallCounter()
    assert _lookup(stack, sandbox_secrets, "phone", "13500135000", client=counter.client).customer_id == lei
    assert sum(counter.take().values()) == 3

    after = _view_items(stack)
    again = rebuild_view(_projector(stack, sandbox_secrets), store, view, "demo")
    assert (again.states, again.changes, again.changed_entities) == (6, 0, [])
    assert _view_items(stack) == after  # a second run writes nothing


@pytest.mark.usefixtures("two_shops")
def test_a_rebuild_of_one_entity_type_leaves_the_others_alone(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    table = stack.resources.refs.state_table
    _wipe(stack)
    store, view = DynamoStateStore(table), DynamoViewStore(stack.resources.refs.view_table)
    report = rebuild_view(_projector(stack, sandbox_secrets), store, view, "demo", entity_types=["shipment"])
    assert (report.states, report.placed, report.entity_types) == (1, 1, ["shipment"])
    views = {pk for pk, sk in _view_items(stack) if "#view#" in pk and sk.startswith("E#")}
    assert [sk for pk, sk in _view_items(stack) if pk in views and sk.startswith("E#")] == [
        entity_sk("shipment", f"zhongtong:{TRACKING}")
    ]


def _scan(table: str) -> dict[tuple[str, str], dict[str, Any]]:
    dynamodb, found = boto3.client("dynamodb"), {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = dynamodb.scan(**kwargs)
        found.update({(i["pk"]["S"], i["sk"]["S"]): i for i in page["Items"]})
        if "LastEvaluatedKey" not in page:
            return found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.mark.usefixtures("two_shops")
def test_an_upgrade_from_the_view_in_the_state_table_rebuilds_into_the_view_table_and_purges_the_old_items(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    state_table, view_table = stack.resources.refs.state_table, stack.resources.refs.view_table
    projected = _answers(stack, sandbox_secrets)
    assert projected["phone=13800138000"].found
    # as a deployment before the view table left it: every view item in the state table, the new table empty
    dynamodb = boto3.client("dynamodb")
    old = _view_items(stack)
    assert any("#viewown#" in pk for pk, _ in old) and any("#sel#" in pk for pk, _ in old)
    sync_items = _scan(state_table)
    for item in old.values():
        dynamodb.put_item(TableName=state_table, Item=item)
    _wipe(stack)
    assert not _lookup(stack, sandbox_secrets, "phone", "13800138000").found  # deployed: the new table is empty

    store, view = DynamoStateStore(state_table), DynamoViewStore(view_table)
    report = rebuild_view(_projector(stack, sandbox_secrets), store, view, "demo")
    assert (report.states, report.placed) == (4, 4)  # Lei, both shops' orders, the shipment
    assert _answers(stack, sandbox_secrets) == projected

    other_tenant = {"pk": {"S": "acme#view#cus_1"}, "sk": {"S": "E#order#shopify:1"}}  # another tenant's: kept
    dynamodb.put_item(TableName=state_table, Item=other_tenant)
    assert purge_state_table(dynamodb, state_table, view_table, "demo", dry_run=True) == len(old)
    assert len(_scan(state_table)) == len(sync_items) + len(old) + 1  # a dry run deletes nothing
    assert purge_state_table(dynamodb, state_table, view_table, "demo") == len(old)
    left = _scan(state_table)
    assert left == {**sync_items, ("acme#view#cus_1", "E#order#shopify:1"): other_tenant}  # sync's items, exactly
    assert purge_state_table(dynamodb, state_table, view_table, "demo") == 0
    assert _answers(stack, sandbox_secrets) == projected  # the view table answers as before
    with pytest.raises(ValueError, match="would delete the view"):
        purge_state_table(dynamodb, view_table, view_table, "demo")
