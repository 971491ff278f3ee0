"""The customer view's pure parts: summaries per entity type, the items, selectors and their HMACs,
warranty rows and the timeline cursor."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date

import pytest

from shared.identity.resolver import IdentityKey, hash_key
from shared.read.lookup import InvalidLookup, decode_cursor, encode_cursor, warranty_rows
from shared.read.view import (
    Owner,
    Selector,
    customer_of,
    entity_item,
    identity_digests,
    is_live,
    normalise_selector,
    order_entity_ids,
    owner_from_item,
    owner_pk,
    selector_customers,
    selector_hmac,
    selector_owners,
    selector_signature,
    selectors,
    summary,
    timeline_entity,
    timeline_item,
    timeline_sk,
    tombstone_item,
)
from shared.state.audit import AuditRecord
from shared.state.merge import EntityState, FieldClock

SALT = b"s" * 32


def state(entity_type: str, entity_id: str, version: int = 1, **fields: object) -> EntityState:
    clock = FieldClock(rank=20, at="2026-11-21T02:31:02.000000Z", event_id="e1", source=entity_id.split(":")[0])
    return EntityState(
        tenant="demo",
        entity_type=entity_type,
        entity_id=entity_id,
        version=version,
        revision=version,
        fields=fields,
        clocks={name: clock for name in fields},
    )


ORDER = state(
    "order",
    "shopify:5001",
    version=3,
    order_id="5001",
    order_number="#5001",
    channel="shopify",
    status="open",
    payment_status="paid",
    fulfillment_status="unfulfilled",
    total={"amount": "598.00", "currency": "CNY"},
    purchased_at="2026-11-20T02:00:00Z",
    customer_id="cus_1",
    customer_phone="+86 138 0013 8000",
    lines=[
        {
            "line_id": "a",
            "sku": "CABLE",
            "title": "Cable",
            "quantity": 2,
            "unit_price": {"amount": "9.00", "currency": "CNY"},
        },
        {
            "line_id": "b",
            "sku": "ROBOT-V2",
            "title": "Robot",
            "quantity": 1,
            "unit_price": {"amount": "580.00", "currency": "CNY"},
            "serial_number": " sn-rv2 0001 ",
            "warranty_ends_on": "2027-11-20",
        },
    ],
)


def test_selector_values_are_normalised_per_kind() -> None:
    assert normalise_selector("serial", " sn-rv2 0001 ") == "SN-RV20001"
    assert normalise_selector("tracking", "7531 1234\t567") == "75311234567"
    assert normalise_selector("order", " #1001 ") == "1001"
    assert normalise_selector("order", "Shopify:820982911946154508") == "shopify:820982911946154508"
    assert normalise_selector("order", "# ") is None
    assert normalise_selector("serial", "   ") is None
    with pytest.raises(ValueError, match="unknown selector kind"):
        normalise_selector("phone", "13800138000")


def test_a_selector_is_keyed_by_a_salted_hmac_of_its_kind_and_value() -> None:
    expected = hmac.new(SALT, b"serial:SN-RV20001", hashlib.sha256).hexdigest()
    assert selector_hmac(SALT, "serial", "SN-RV20001") == expected
    assert selector_hmac(SALT, "tracking", "SN-RV20001") != expected
    assert selector_hmac(b"t" * 32, "serial", "SN-RV20001") != expected


def test_an_order_answers_to_its_number_its_id_and_each_serial() -> None:
    assert selectors(ORDER) == [
        Selector("order", "5001", "order#shopify:5001"),
        Selector("order", "shopify:5001", "order#shopify:5001"),
        Selector("serial", "SN-RV20001", "order#shopify:5001#line:1"),
    ]
    shipment = state("shipment", "zhongtong:75311234567890", tracking_number="75311234567890", order_id="E1")
    assert selectors(shipment) == [Selector("tracking", "75311234567890", "shipment#zhongtong:75311234567890")]
    assert selectors(state("ticket", "zendesk:1", subject="x")) == []


def test_the_order_summary() -> None:
    assert summary(ORDER) == {
        "order_id": "shopify:5001",
        "source": "shopify",
        "number": "#5001",
        "status": "open",
        "financial_status": "paid",
        "fulfillment_status": "unfulfilled",
        "total": "598.00",
        "currency": "CNY",
        "created_at": "2026-11-20T02:00:00Z",
        "lines": [
            {
                "sku": "CABLE",
                "title": "Cable",
                "quantity": 2,
                "serial": None,
                "warranty_months": None,
                "warranty_ends_on": None,
                "warranty_status": None,
            },
            {
                "sku": "ROBOT-V2",
                "title": "Robot",
                "quantity": 1,
                "serial": " sn-rv2 0001 ",
                "warranty_months": None,
                "warranty_ends_on": "2027-11-20",
                "warranty_status": None,
            },
        ],
    }
    assert customer_of(ORDER) == "cus_1"


def test_the_customer_card_names_its_sources() -> None:
    customer = state(
        "customer",
        "cus_1",
        name="Lei Li",
        phone="+86 138 0013 8000",
        **{"source_customer_id.shopify": "3001", "source_customer_id.erp": "yz-buyer-88"},
    )
    assert summary(customer) == {
        "customer_id": "cus_1",
        "name": "Lei Li",
        "phone": "+86 138 0013 8000",
        "email": None,
        "wecom_external_user_id": None,
        "sources": ["erp", "shopify"],
    }
    assert customer_of(customer) == "cus_1"


def test_a_case_summary_walks_the_statuses_the_state_machine_accepted() -> None:
    case = state(
        "after_sales_case",
        "youzan:201126112114300001",
        kind="return",
        status="refunded",
        order_id="E1",
        amount={"amount": "299.00", "currency": "CNY"},
        **{
            "status_log.2026-11-21T01:00:00.000000Z|e1": {"value": "requested", "source": "youzan"},
            "status_log.2026-11-21T02:00:00.000000Z|e2": {"value": "approved", "source": "youzan"},
            "status_log.2026-11-21T02:30:00.000000Z|e3": {"value": "requested", "source": "youzan"},  # refused
            "status_log.2026-11-21T03:00:00.000000Z|e4": {"value": "refunded", "source": "youzan"},
        },
    )
    assert summary(case) == {
        "case_id": "youzan:201126112114300001",
        "kind": "return",
        "status": "refunded",
        "status_path": ["requested", "approved", "refunded"],
        "amount": "299.00",
        "currency": "CNY",
        "order_id": "youzan:E1",
    }
    assert customer_of(case) is None  # no customer of its own: the projector asks its order


def test_a_shipment_summary_has_its_last_checkpoint_and_the_order_its_source_named() -> None:
    shipment = state(
        "shipment",
        "zhongtong:75311234567890",
        carrier="zhongtong",
        tracking_number="75311234567890",
        status="in_transit",
        order_id="E1",
        checkpoints=[
            {"at": "2026-11-22T01:00:00Z", "status": "in_transit", "location": "杭州", "message": "已发出"},
            {"at": "2026-11-21T09:00:00Z", "status": "info_received", "location": None, "message": "揽收"},
        ],
    )
    assert order_entity_ids(shipment) == ["zhongtong:E1"]  # the clock's source is the entity id's prefix here
    assert summary(shipment, order_id="youzan:E1") == {
        "shipment_id": "zhongtong:75311234567890",
        "carrier": "zhongtong",
        "tracking_number": "75311234567890",
        "status": "in_transit",
        "last_checkpoint": {"time": "2026-11-22T01:00:00Z", "location": "杭州", "message": "已发出"},
        "order_id": "youzan:E1",
    }


def test_a_ticket_summary_and_types_the_view_does_not_show() -> None:
    ticket = state("ticket", "zendesk:7", status="open", assignee="1512863381481", priority="high", subject="坏了")
    assert summary(ticket) == {
        "ticket_id": "zendesk:7",
        "status": "open",
        "assignee": "1512863381481",
        "priority": "high",
        "subject": "坏了",
    }
    assert summary(state("stock", "SKU@WH1", quantity_delta=3)) is None
    assert entity_item("demo", "cus_1", state("stock", "SKU@WH1")) is None


def test_items_carry_the_version_and_sort_the_timeline_by_time() -> None:
    item = entity_item("demo", "cus_1", ORDER)
    assert item is not None
    assert (item["pk"], item["sk"], item["version"]) == (
        {"S": "demo#view#cus_1"},
        {"S": "E#order#shopify:5001"},
        {"N": "3"},
    )
    assert json.loads(item["doc"]["S"]) == summary(ORDER)
    # fixed-width UTC: a time without a fraction sorts before one with it in the same second
    assert timeline_sk("2026-11-21T10:31:02+08:00", "order", "shopify:5001", 2) == (
        "T#2026-11-21T02:31:02.000000Z#order#shopify:5001#000000000002"
    )
    assert timeline_sk("2026-11-21T02:31:02+00:00", "order", "x", 1) < timeline_sk(
        "2026-11-21T02:31:02.5+00:00", "order", "x", 1
    )
    audit = AuditRecord(
        tenant="demo",
        entity_type="order",
        entity_id="shopify:5001",
        version=2,
        event_id="e2",
        source="shopify",
        source_event_id="s2",
        origin="webhook",
        occurred_at="2026-11-21T02:31:02+00:00",
        changes=[{"field": "status", "before": "open", "after": "closed"}],
        discarded=[],
        prev_hash="0" * 64,
    )
    assert json.loads(timeline_item("demo", "cus_1", audit)["doc"]["S"]) == {
        "entity_type": "order",
        "entity_id": "shopify:5001",
        "version": 2,
        "source": "shopify",
        "occurred_at": "2026-11-21T02:31:02+00:00",
        "changes": [{"field": "status", "after": "closed"}],
    }


def test_warranty_rows_are_eligible_through_their_last_day() -> None:
    order = summary(ORDER)
    assert order is not None
    void = {**order["lines"][1], "serial": "SN2", "warranty_status": "void"}
    unknown = {**order["lines"][1], "serial": "SN3", "warranty_ends_on": None}
    orders = [{**order, "lines": [*order["lines"], void, unknown]}]
    rows = warranty_rows(orders, date(2027, 11, 20))
    assert [(r.serial, r.status, r.eligible, r.ends_on) for r in rows] == [
        (" sn-rv2 0001 ", "active", True, date(2027, 11, 20)),
        ("SN2", "void", False, date(2027, 11, 20)),
        ("SN3", "unknown", False, None),
    ]
    assert [(r.status, r.eligible) for r in warranty_rows(orders, date(2027, 11, 21))] == [
        ("expired", False),
        ("void", False),
        ("unknown", False),
    ]


def test_a_cursor_opens_only_the_timeline_it_was_given_for() -> None:
    key = {"pk": {"S": "demo#view#cus_1"}, "sk": {"S": "T#2026-11-21T02:31:02.000000Z#order#x#000000000001"}}
    assert decode_cursor(encode_cursor(key), "demo", "cus_1") == key
    for other in (
        {**key, "pk": {"S": "demo#view#cus_2"}},
        {**key, "pk": {"S": "other#view#cus_1"}},
        {**key, "sk": {"S": "E#order#x"}},
    ):
        with pytest.raises(InvalidLookup):
            decode_cursor(encode_cursor(other), "demo", "cus_1")
    with pytest.raises(InvalidLookup):
        decode_cursor("not base64 json", "demo", "cus_1")


# --- owner pointers, selector owners, identity selectors ----------------------------------------------
def test_a_selector_answers_for_its_refs_current_owners_and_an_older_item_s_customers_until_each_ref_has_one() -> None:
    moved = {
        "refs": {"SS": ["order#shopify:1", "order#shopify:1#line:0"]},
        "customers": {"SS": ["cus_a", "cus_b"]},  # the older layout: every customer ever seen
        "o:order#shopify:1": {"S": "cus_b"},
    }
    assert selector_owners(moved) == {"order#shopify:1": "cus_b"}
    assert selector_customers(moved) == ["cus_a", "cus_b"]  # a ref without an owner yet: the old set counts
    moved["o:order#shopify:1#line:0"] = {"S": "cus_b"}
    assert selector_customers(moved) == ["cus_b"]  # every ref owned: the order moved to b, a is gone
    two_shops = {"refs": {"SS": ["order#shopify:1", "order#youzan:1"]}, "o:order#shopify:1": {"S": "cus_a"}}
    two_shops["o:order#youzan:1"] = {"S": "cus_c"}
    assert selector_customers(two_shops) == ["cus_a", "cus_c"]
    assert selector_customers({"refs": {"SS": ["order#shopify:1"]}}) == []  # its entity has no customer now


def test_a_timeline_key_names_its_entity_and_version() -> None:
    sk = timeline_sk("2026-11-21T10:31:02+08:00", "order", "youzan:E2026#1", 12)
    assert timeline_entity(sk) == ("order", "youzan:E2026#1", 12)
    assert timeline_entity("E#order#shopify:1") is None
    assert timeline_entity("T#garbage") is None


def test_an_owner_pointer_reads_back() -> None:
    item = {
        "pk": {"S": owner_pk("demo", "order", "shopify:1")},
        "sk": {"S": "OWN"},
        "customer_id": {"S": "cus_b"},
        "version": {"N": "7"},
        "former": {"SS": ["cus_a"]},
    }
    assert owner_pk("demo", "order", "shopify:1") == "demo#viewown#order#shopify:1"
    assert owner_from_item(item) == Owner("cus_b", 7, frozenset({"cus_a"}))
    assert owner_from_item({"version": {"N": "3"}}) == Owner(None, 3)
    assert owner_from_item(None) is None


def test_a_card_is_keyed_by_its_phone_e_mail_and_wecom_id_as_the_identity_index_keys_them() -> None:
    card = state(
        "customer", "cus_1", phone="138 0013 8000", email=" Li.Lei@Example.com ", wecom_external_user_id=" wm1 "
    )
    assert identity_digests(card, SALT, "CN") == [
        hash_key(SALT, IdentityKey("phone", "+8613800138000")),
        hash_key(SALT, IdentityKey("email", "li.lei@example.com")),
        hash_key(SALT, IdentityKey("wecom", "wm1")),
    ]
    assert identity_digests(state("customer", "cus_2", phone="not a phone", email=None), SALT, "CN") == []
    assert identity_digests(ORDER, SALT, "CN") == []


def test_a_selector_signature_is_the_same_for_the_same_selectors_in_any_order_and_changes_with_them() -> None:
    number, serial = ("demo#sel#order#a", ("order#shopify:1",)), ("demo#sel#serial#b", ("order#shopify:1#line:0",))
    assert selector_signature([number, serial]) == selector_signature([serial, number])
    assert selector_signature([number]) != selector_signature([number, serial])
    assert selector_signature([number]) != selector_signature([("demo#sel#order#a", ("order#shopify:2",))])
    assert len(selector_signature([])) == 24


def test_a_tombstone_keeps_the_moving_version_expires_a_day_later_and_is_not_live() -> None:
    tomb = tombstone_item("demo", "cus_1", "order", "shopify:1", 7, now=1_000)
    assert tomb == {
        "pk": {"S": "demo#view#cus_1"},
        "sk": {"S": "E#order#shopify:1"},
        "tombstone": {"BOOL": True},
        "version": {"N": "7"},
        "expires_at": {"N": str(1_000 + 86_400)},
    }
    live = entity_item("demo", "cus_1", state("order", "shopify:1", 8), sel="abc")
    assert live is not None and live["sel"] == {"S": "abc"}
    assert (is_live(tomb), is_live(live), is_live(None)) == (False, True, False)


def test_a_timeline_entry_shows_the_fields_that_changed_not_the_state_machine_s_log_entries() -> None:
    # a case's status change is stored as the status and a log entry keyed by time and event id
    # ("status_log.<time>|<event id>"): the entry is the merge's bookkeeping, not a field an agent knows
    audit = AuditRecord(
        tenant="demo",
        entity_type="after_sales_case",
        entity_id="youzan:2011",
        version=3,
        event_id="e3",
        source="payments",
        source_event_id="s3",
        origin="webhook",
        occurred_at="2026-11-23T08:40:00+00:00",
        changes=[
            {"field": "status_log.2026-11-23T08:40:00Z|4ae1bef3", "before": None, "after": {"value": "refunded"}},
            {"field": "status", "before": "approved", "after": "refunded"},
        ],
        discarded=[],
        prev_hash="0" * 64,
    )
    assert json.loads(timeline_item("demo", "cus_1", audit)["doc"]["S"])["changes"] == [
        {"field": "status", "after": "refunded"}
    ]
