"""The customer view through the real handlers on moto: the projector keeps it from the state table's
stream, and a lookup reads it in at most three DynamoDB calls."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from typing import Any

import boto3
import pytest

from infra.sandbox.samples import signed
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.view_store import DynamoViewStore
from shared.read.lookup import LookupResult, lookup
from shared.read.view import view_pk
from shared.state.stored import pack
from tests.fakes import erp_webhook
from tests.integration.conftest import Stack
from tests.integration.test_customer_identity import order_webhook

YOUZAN_ORDER = "youzan:E20261121103015012300001"
TRACKING = "75311234567890"  # events/youzan_trade_order_express.json
LEI = {"id": 3001, "first_name": "Lei", "last_name": "Li", "phone": "+86 138 0013 8000"}


class CallCounter:
    """DynamoDB calls made through one client, by operation (botocore's before-call events)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.client = boto3.client("dynamodb")
        self.client.meta.events.register("before-call.dynamodb", self)

    def __call__(self, event_name: str, **_: Any) -> None:
        self.calls[event_name.rsplit(".", 1)[1]] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def _salt(sandbox_secrets: dict[str, Any]) -> bytes:
    return str(sandbox_secrets["tenants"]["demo"]["identity_salt"]).encode()


def _erp_order_of_the_youzan_shop() -> Any:
    """The ERP's record of the Youzan order: the buyer (Youzan's push names none) and the serial."""
    return erp_webhook(
        "msg_erp_youzan_1",
        {
            "entity_type": "order",
            "entity_id": YOUZAN_ORDER,
            "occurred_at": "2026-11-21T02:40:00Z",
            "entity": {
                "order_id": "E20261121103015012300001",
                "channel": "youzan",
                "customer_source_id": "yz-buyer-88",
                "customer_name": "Lei Li",
                "customer_phone": "13800138000",
                "lines": [
                    {
                        "line_id": "1",
                        "sku": "ROBOT-V2",
                        "title": "扫地机器人",
                        "quantity": 1,
                        "unit_price": {"amount": "299.00", "currency": "CNY"},
                        "serial_number": "SN-RV2-0001",
                        "warranty_ends_on": "2027-11-20",
                    }
                ],
            },
        },
    )


@pytest.fixture
def two_shops(stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]) -> Stack:
    """Lei Li buys on Shopify and on Youzan with one phone; the Youzan order ships."""
    youzan = sandbox_secrets["sources"]["youzan"]["demo"][0]
    assert stack.post(order_webhook(shopify_secret, 5001, LEI, None))["statusCode"] == 200
    assert stack.post(signed("youzan_trade_order_state", youzan))["statusCode"] == 200
    stack.run_until_quiet()  # (one after the other: two records of one new person at once make two customers)
    assert stack.post(_erp_order_of_the_youzan_shop(), source="erp")["statusCode"] == 200
    stack.run_until_quiet()
    assert stack.post(signed("youzan_trade_order_express", youzan))["statusCode"] == 200
    stack.run_until_quiet()
    return stack


def _lookup(stack: Stack, sandbox_secrets: dict[str, Any], kind: str, value: str, **kwargs: Any) -> LookupResult:
    refs = stack.resources.refs
    store = DynamoViewStore(refs.view_table, kwargs.pop("client", None), state_table=refs.state_table)
    return lookup(kind, value, "demo", store=store, salt=_salt(sandbox_secrets), **kwargs)


def test_one_phone_finds_the_customer_and_both_shops_orders(two_shops: Stack, sandbox_secrets: dict[str, Any]) -> None:
    result = _lookup(two_shops, sandbox_secrets, "phone", "138 0013 8000")
    assert result.found and result.matches == []
    assert result.customer is not None
    assert result.customer["customer_id"] == result.customer_id
    assert (result.customer["name"], result.customer["sources"]) == ("Lei Li", ["erp", "shopify"])
    assert sorted(o["order_id"] for o in result.orders) == ["shopify:5001", YOUZAN_ORDER]
    youzan = next(o for o in result.orders if o["order_id"] == YOUZAN_ORDER)
    assert (youzan["source"], youzan["financial_status"], youzan["total"], youzan["currency"]) == (
        "youzan",
        "paid",
        "299.00",
        "CNY",
    )
    # the timeline: every audit record of the customer's entities, newest first
    assert {(t["entity_type"], t["entity_id"]) for t in result.timeline} >= {
        ("order", "shopify:5001"),
        ("order", YOUZAN_ORDER),
        ("shipment", f"zhongtong:{TRACKING}"),
        ("customer", result.customer_id),
    }
    times = [t["occurred_at"] for t in result.timeline]
    assert times == sorted(times, reverse=True)
    # the same phone written another way, and the e-mail-less customer's id, find the same view
    assert _lookup(two_shops, sandbox_secrets, "phone", "+8613800138000").customer_id == result.customer_id
    assert _lookup(two_shops, sandbox_secrets, "customer_id", str(result.customer_id)).orders == result.orders
    assert not _lookup(two_shops, sandbox_secrets, "phone", "13900139000").found


def test_a_serial_finds_its_order_line_and_the_warranty_ends_on_its_last_day(
    two_shops: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    before = _lookup(two_shops, sandbox_secrets, "serial", " sn-rv2-0001 ", today=date(2027, 11, 20))
    assert before.refs == [f"order#{YOUZAN_ORDER}#line:0"]
    [row] = before.warranty
    assert (row.order_id, row.serial, row.sku, row.status, row.ends_on, row.eligible) == (
        YOUZAN_ORDER,
        "SN-RV2-0001",
        "ROBOT-V2",
        "active",
        date(2027, 11, 20),
        True,
    )
    after = _lookup(two_shops, sandbox_secrets, "serial", "SN-RV2-0001", today=date(2027, 11, 21))
    [row] = after.warranty
    assert (row.status, row.eligible) == ("expired", False)
    assert not _lookup(two_shops, sandbox_secrets, "serial", "SN-RV2-0002").found


def test_a_tracking_number_finds_the_shipment_and_its_order(two_shops: Stack, sandbox_secrets: dict[str, Any]) -> None:
    result = _lookup(two_shops, sandbox_secrets, "tracking", TRACKING[:7] + " " + TRACKING[7:])
    assert result.refs == [f"shipment#zhongtong:{TRACKING}"]
    [shipment] = result.shipments
    assert shipment == {
        "shipment_id": f"zhongtong:{TRACKING}",
        "carrier": "zhongtong",
        "tracking_number": TRACKING,
        "status": "info_received",
        "last_checkpoint": None,
        "order_id": YOUZAN_ORDER,
    }
    assert YOUZAN_ORDER in [o["order_id"] for o in result.orders]
    by_number = _lookup(two_shops, sandbox_secrets, "order", "#5001")
    assert (by_number.customer_id, by_number.refs) == (result.customer_id, ["order#shopify:5001"])
    assert _lookup(two_shops, sandbox_secrets, "order", "YOUZAN:E20261121103015012300001").refs == [
        f"order#{YOUZAN_ORDER}"
    ]


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("phone", "13800138000"),
        ("serial", "SN-RV2-0001"),
        ("tracking", TRACKING),
        ("order", "#5001"),
        ("customer_id", None),
    ],
)
def test_a_lookup_makes_at_most_three_dynamodb_calls(
    two_shops: Stack, sandbox_secrets: dict[str, Any], kind: str, value: str | None
) -> None:
    customer = _lookup(two_shops, sandbox_secrets, "phone", "13800138000").customer_id
    counter = CallCounter()
    result = _lookup(two_shops, sandbox_secrets, kind, value or str(customer), client=counter.client, limit=2)
    assert result.customer_id == customer and len(result.orders) == 2
    expected = {"Query": 2} if kind == "customer_id" else {"BatchGetItem": 1, "Query": 2}
    assert counter.take() == expected
    # the next page of the timeline: the same three calls
    assert result.next_cursor is not None and len(result.timeline) == 2
    following = _lookup(
        two_shops,
        sandbox_secrets,
        kind,
        value or str(customer),
        client=counter.client,
        limit=2,
        cursor=result.next_cursor,
    )
    assert sum(counter.take().values()) <= 3
    assert following.timeline and following.timeline[0] != result.timeline[0]
    assert following.timeline[0]["occurred_at"] <= result.timeline[-1]["occurred_at"]


def test_a_family_sharing_a_phone_answers_with_their_cards(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    sister = {"id": 3002, "first_name": "Mei", "last_name": "Li", "phone": "13800138000"}
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5002, sister, None))
    stack.run_until_quiet()
    counter = CallCounter()
    result = _lookup(stack, sandbox_secrets, "phone", "13800138000", client=counter.client)
    assert result.found and result.customer is None and result.orders == []
    assert sorted(m.card["name"] for m in result.matches if m.card) == ["Lei Li", "Mei Li"]
    assert counter.take() == {"BatchGetItem": 2}


def test_a_late_older_state_never_overwrites_the_view(two_shops: Stack, sandbox_secrets: dict[str, Any]) -> None:
    table = two_shops.resources.refs.state_table
    current, _ = DynamoStateStore(table).load("demo", "order", "shopify:5001")
    assert current is not None and current.version >= 1
    customer = current.fields["customer_id"]
    key = {"pk": {"S": view_pk("demo", customer)}, "sk": {"S": "E#order#shopify:5001"}}
    before = boto3.client("dynamodb").get_item(TableName=two_shops.resources.refs.view_table, Key=key)["Item"]
    assert before["version"] == {"N": str(current.version)}
    older = current.model_copy(
        update={"version": current.version - 1, "fields": {**current.fields, "payment_status": "pending"}}
    )
    record = {
        "eventID": "late",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": {"S": "demo#order#shopify:5001"}, "sk": {"S": "STATE"}},
            "NewImage": {
                "pk": {"S": "demo#order#shopify:5001"},
                "sk": {"S": "STATE"},
                "version": {"N": str(older.version)},
                "revision": {"N": str(older.revision)},
                "docz": {"B": pack(older)},
            },
            "SequenceNumber": "1",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    assert two_shops.functions.invoke("project", {"Records": [record]}) == {"batchItemFailures": []}
    after = boto3.client("dynamodb").get_item(TableName=two_shops.resources.refs.view_table, Key=key)["Item"]
    assert after == before
    assert json.loads(after["doc"]["S"])["financial_status"] == "paid"


def test_an_absorbed_customer_s_view_moves_to_the_survivor(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    other = {"id": 3003, "first_name": "Wei", "last_name": "Wang", "phone": "13500135000"}
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5003, other, None))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    lei = store.load("demo", "order", "shopify:5001")[0].fields["customer_id"]  # type: ignore[union-attr]
    wei = store.load("demo", "order", "shopify:5003")[0].fields["customer_id"]  # type: ignore[union-attr]
    DynamoIdentityIndex(stack.resources.refs.state_table, "demo").absorb(wei, lei, ("test",), by="test")
    stack.run_until_quiet()
    # by the absorbed customer's phone: the survivor's view, which now holds both orders
    result = _lookup(stack, sandbox_secrets, "phone", "13500135000")
    assert result.customer_id == lei
    assert sorted(o["order_id"] for o in result.orders) == ["shopify:5001", "shopify:5003"]
    assert _lookup(stack, sandbox_secrets, "order", "#5003").customer_id == lei
