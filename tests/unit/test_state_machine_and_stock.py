"""After-sales state machine and stock accumulation: validated, recorded, and still convergent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.delivery.targets import canonical_json
from shared.models import AfterSalesCase, InventoryAdjustment, Money, ObservedEntity
from shared.state.policy import default_policy, load_policy
from shared.state.sync import apply_observation
from tests.fakes import FakeStateStore

T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
POLICY = default_policy()


def case_event(event_id: str, minutes: int, status: str, source: str = "shopify") -> ObservedEntity:
    return ObservedEntity(
        event_id=event_id,
        tenant="t",
        source=source,
        source_event_id=event_id,
        topic="refunds/create",
        entity_type="after_sales_case",
        entity_id="shopify:r1",
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0,
        origin="webhook",
        entity=AfterSalesCase(
            case_id="r1",
            kind="refund",
            status=status,
            order_id="1",  # type: ignore[arg-type]
            amount=Money(amount=Decimal("10.00"), currency="CNY"),
        ),
    )


def stock_event(event_id: str, adjustment: str, delta: int, minutes: int = 0) -> ObservedEntity:
    return ObservedEntity(
        event_id=event_id,
        tenant="t",
        source="wms",
        source_event_id=event_id,
        topic="stock",
        entity_type="stock",
        entity_id="SKU-1@WH1",
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0,
        origin="webhook",
        entity=InventoryAdjustment(
            adjustment_id=adjustment, sku="SKU-1", location="WH1", delta=delta, reason="return_restock"
        ),
    )


def fields(store: FakeStateStore, entity_type: str, entity_id: str) -> dict[str, Any]:
    state, _ = store.load("t", entity_type, entity_id)
    assert state is not None
    return state.fields


def test_a_valid_path_is_applied_step_by_step() -> None:
    store = FakeStateStore()
    for i, status in enumerate(["requested", "approved", "refunded", "closed"]):
        apply_observation(case_event(f"e{i}", i, status), store, POLICY)
    f = fields(store, "after_sales_case", "shopify:r1")
    assert (f["status"], f["rejected_transitions"]) == ("closed", [])


def test_refunded_before_approved_is_recorded_not_applied() -> None:
    store = FakeStateStore()
    apply_observation(case_event("a", 0, "requested"), store, POLICY)
    result = apply_observation(case_event("b", 1, "refunded"), store, POLICY)
    f = fields(store, "after_sales_case", "shopify:r1")
    assert f["status"] == "requested"
    assert f["rejected_transitions"] == [
        {"at": "2026-11-20T02:01:00.000000Z", "from": "requested", "to": "refunded", "source": "shopify"}
    ]
    assert "rejected_transitions" in result.changed_fields  # it is in the audit trail
    trail = store.audit[("t", "after_sales_case", "shopify:r1")]
    assert trail[-1].changes[-1]["field"] == "rejected_transitions"


def test_an_authoritative_source_may_skip_steps() -> None:
    store = FakeStateStore()
    apply_observation(case_event("a", 0, "requested"), store, POLICY)
    apply_observation(case_event("b", 1, "refunded", source="erp"), store, POLICY)
    assert fields(store, "after_sales_case", "shopify:r1")["status"] == "refunded"


def test_the_missing_step_arriving_late_repairs_the_path() -> None:
    store = FakeStateStore()
    apply_observation(case_event("a", 0, "requested"), store, POLICY)
    apply_observation(case_event("c", 2, "refunded"), store, POLICY)
    apply_observation(case_event("b", 1, "approved"), store, POLICY)  # the approval was only delayed
    f = fields(store, "after_sales_case", "shopify:r1")
    assert (f["status"], f["rejected_transitions"]) == ("refunded", [])


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["requested", "approved", "received", "refunded", "rejected", "closed", "cancelled"]),
            st.sampled_from(["shopify", "erp", "crm"]),
        ),
        min_size=1,
        max_size=7,
    ),
    data=st.data(),
)
def test_case_state_converges_for_any_order_and_duplication(
    steps: list[tuple[int, str, str]], data: st.DataObject
) -> None:
    events = [case_event(f"e{i}", m, s, src) for i, (m, s, src) in enumerate(steps)]
    results = set()
    for _ in range(2):
        store = FakeStateStore()
        for event in data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=4)))):
            apply_observation(event, store, POLICY)
        state, _ = store.load("t", "after_sales_case", "shopify:r1")
        assert state is not None
        results.add(canonical_json(state.snapshot()))
    assert len(results) == 1


@settings(max_examples=200, deadline=None)
@given(deltas=st.lists(st.integers(-5, 5), min_size=1, max_size=8), data=st.data())
def test_stock_is_the_sum_of_distinct_adjustments_in_any_order(deltas: list[int], data: st.DataObject) -> None:
    events = [stock_event(f"e{i}", f"adj-{i}", d, minutes=i % 3) for i, d in enumerate(deltas)]
    store = FakeStateStore()
    for event in data.draw(st.permutations(events + events[:2])):  # with duplicates
        apply_observation(event, store, POLICY)
    assert fields(store, "stock", "SKU-1@WH1")["quantity_delta"] == sum(deltas)


def test_a_policy_that_names_an_unknown_field_fails_to_load(tmp_path: Path) -> None:
    document = json.loads((Path(__file__).resolve().parents[2] / "shared/state/policy.json").read_text())
    document["ticket"]["immutable"] = ["ticket_id", "ticket_number"]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    with pytest.raises(
        ValidationError, match=r"ticket: policy names fields the model does not have: \['ticket_number'\]"
    ):
        load_policy(path)


def test_an_entity_that_does_not_match_its_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="case_id"):
        ObservedEntity.model_validate(
            {
                **case_event("a", 0, "requested").model_dump(),
                "entity_type": "after_sales_case",
                "entity": {"order_id": "1"},
            }
        )
