"""Convergence for shipments, tickets and customers (orders, cases and stock have their own property
tests): random partial observations from several sources, with colliding clocks, shuffled and
duplicated, end in byte-identical states with an intact audit chain of one record per version."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.targets import canonical_json
from shared.models import Checkpoint, Customer, ObservedEntity, Shipment, Ticket
from shared.state.audit import verify_chain
from shared.state.policy import default_policy
from shared.state.sync import apply_observation
from tests.fakes import FakeStateStore

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
POLICY = default_policy()

SHIPMENTS = st.builds(
    lambda status, checkpoints: Shipment(
        shipment_id="sf:SF1",
        carrier="sf",
        tracking_number="SF1",
        status=status,
        order_id="1",
        checkpoints=tuple(
            Checkpoint(at=T0 + timedelta(minutes=m), status=s, message=f"{s} at {m}") for m, s in checkpoints
        ),
    ),
    st.sampled_from(["in_transit", "out_for_delivery", "delivered", "exception"]),
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["in_transit", "delivered"])), max_size=2),
)
TICKETS = st.builds(
    lambda fields: Ticket(ticket_id="7", **fields),
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["new", "open", "pending", "solved"]),
            "priority": st.sampled_from(["low", "normal", "urgent"]),
            "assignee": st.sampled_from(["101", "102"]),
            "subject": st.sampled_from(["Screen broken", "Where is my refund?"]),
            "tags": st.sampled_from([(), ("repair",), ("repair", "vip")]),
        },
    ),
)
CUSTOMERS = st.builds(
    lambda source_id, fields: Customer(source_customer_id=source_id, **fields),
    st.sampled_from(["c1", "c2"]),
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["Li Lei", "LI LEI"]),
            "email": st.sampled_from(["li@example.com", "lilei@example.com"]),
            "phone": st.sampled_from(["+8613800138000", "+8613900139000"]),
            "member_card_no": st.sampled_from(["M1", "M2"]),
        },
    ),
)
TYPES: dict[str, tuple[str, Any, list[str]]] = {
    "shipment": ("sf:SF1", SHIPMENTS, ["aftership", "kuaidi100", "wms", "shopify"]),
    "ticket": ("zendesk:7", TICKETS, ["zendesk", "dispatch", "crm"]),
    "customer": ("acme-customer-1", CUSTOMERS, ["crm", "shopify", "wecom", "mdm"]),
}


def observed(entity_type: str, event_id: str, minutes: int, source: str, entity: Any) -> ObservedEntity:
    return ObservedEntity(
        event_id=event_id,
        tenant="t",
        source=source,
        source_event_id=event_id,
        topic=f"{entity_type}/updated",
        entity_type=entity_type,  # type: ignore[arg-type]
        entity_id=TYPES[entity_type][0],
        occurred_at=T0 + timedelta(minutes=minutes),  # 0–4: equal clocks on purpose
        received_at=T0 + timedelta(hours=1),
        origin="webhook",
        entity=entity,
    )


@st.composite
def event_sets(draw: st.DrawFn) -> tuple[str, list[ObservedEntity]]:
    entity_type = draw(st.sampled_from(sorted(TYPES)))
    _, entities, sources = TYPES[entity_type]
    specs = draw(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(sources), entities), min_size=1, max_size=7))
    return entity_type, [observed(entity_type, f"e{i}", m, s, e) for i, (m, s, e) in enumerate(specs)]


def final_state(entity_type: str, events: list[ObservedEntity]) -> tuple[str, FakeStateStore]:
    store = FakeStateStore()
    for event in events:
        apply_observation(event, store, POLICY)
    state, _ = store.load("t", entity_type, TYPES[entity_type][0])
    assert state is not None
    return canonical_json({"fields": state.fields, "clocks": state.model_dump(mode="json")["clocks"]}), store


@settings(max_examples=300, deadline=None)
@given(drawn=event_sets(), data=st.data())
def test_shipments_tickets_and_customers_converge_for_any_order_and_duplication(
    drawn: tuple[str, list[ObservedEntity]], data: st.DataObject
) -> None:
    entity_type, events = drawn
    reference, _ = final_state(entity_type, events)
    shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))
    other, store = final_state(entity_type, shuffled)
    assert other == reference
    state, _ = store.load("t", entity_type, TYPES[entity_type][0])
    trail = store.audit[("t", entity_type, TYPES[entity_type][0])]
    assert state is not None
    assert verify_chain(trail) == []
    assert len(trail) == state.version


def test_a_customer_keeps_each_sources_own_id_and_the_higher_authority_wins_a_field() -> None:
    crm = Customer(source_customer_id="crm-9", name="Li Lei", email="li@example.com")
    shop = Customer(source_customer_id="shop-3", name="LI LEI")
    events = [
        observed("customer", "a", 3, "shopify", shop),  # newer, but the CRM ranks above the shop
        observed("customer", "b", 1, "crm", crm),
    ]
    for order in (events, events[::-1]):
        text, _ = final_state("customer", order)
        state = json.loads(text)["fields"]
        assert state == {
            "source_customer_id.crm": "crm-9",
            "source_customer_id.shopify": "shop-3",
            "name": "Li Lei",
            "email": "li@example.com",
        }
