"""The merge: per-field clocks, conflict policy, audit chain, convergence for any order."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.delivery.targets import canonical_json
from shared.state.audit import verify_chain
from shared.state.merge import merge
from shared.state.policy import default_policy
from shared.state.sync import StaleState, apply_observation
from tests.fakes import FakeStateStore, observed

POLICY = default_policy()


def state_bytes(store: FakeStateStore) -> str:
    state, _ = store.load("t", "order", "shopify:1")
    assert state is not None
    return canonical_json(state.snapshot())


def test_a_newer_value_wins_and_is_audited_with_before_and_after() -> None:
    store = FakeStateStore()
    apply_observation(observed("a", 0), store, POLICY)
    result = apply_observation(observed("b", 5, fulfillment_status="fulfilled"), store, POLICY)
    assert (result.outcome, result.version, result.changed_fields) == ("changed", 2, ("fulfillment_status",))
    trail = store.audit[("t", "order", "shopify:1")]
    assert [r.version for r in trail] == [1, 2]
    assert trail[1].changes == [{"field": "fulfillment_status", "before": "unfulfilled", "after": "fulfilled"}]
    assert verify_chain(trail) == []


def test_an_older_update_arriving_late_changes_nothing_and_says_why() -> None:
    store = FakeStateStore()
    apply_observation(observed("a", 0), store, POLICY)
    apply_observation(observed("b", 30, note="newer"), store, POLICY)
    before = state_bytes(store)
    result = apply_observation(observed("c", 15, note="older"), store, POLICY)
    assert (result.outcome, result.version, result.discarded_fields) == ("unchanged", 2, ("note",))
    assert state_bytes(store) == before
    assert len(store.audit[("t", "order", "shopify:1")]) == 2


def test_the_same_event_five_times_is_one_change_and_one_audit_record() -> None:
    store = FakeStateStore()
    outcomes = [apply_observation(observed("a", 0), store, POLICY).outcome for _ in range(5)]
    assert outcomes == ["changed", "unchanged", "unchanged", "unchanged", "unchanged"]
    assert store.commits == 1
    assert len(store.audit[("t", "order", "shopify:1")]) == 1


def test_immutable_fields_keep_the_first_observed_value() -> None:
    store = FakeStateStore()
    apply_observation(observed("late", 10, order_number="#RENUMBERED"), store, POLICY)
    apply_observation(observed("early", 0), store, POLICY)
    state, _ = store.load("t", "order", "shopify:1")
    assert state is not None and state.fields["order_number"] == "#1"
    apply_observation(observed("later", 20, order_number="#AGAIN"), store, POLICY)
    state, _ = store.load("t", "order", "shopify:1")
    assert state is not None and state.fields["order_number"] == "#1"


def test_a_more_authoritative_source_wins_even_when_older() -> None:
    store = FakeStateStore()
    apply_observation(observed("erp", 0, source="erp", status="closed"), store, POLICY)
    result = apply_observation(observed("shop", 30, source="shopify", status="open"), store, POLICY)
    assert result.outcome in ("unchanged", "clock_only")
    assert "status" in result.discarded_fields
    state, _ = store.load("t", "order", "shopify:1")
    assert state is not None and state.fields["status"] == "closed"


def test_a_concurrent_writer_is_retried_not_overwritten() -> None:
    store = FakeStateStore()
    store.conflicts_to_inject = 3
    result = apply_observation(observed("a", 0), store, POLICY)
    assert (result.outcome, result.attempts) == ("changed", 4)


def test_endless_contention_surfaces_as_an_error() -> None:
    store = FakeStateStore()
    store.conflicts_to_inject = 100
    with pytest.raises(StaleState, match="still contended after 3 attempts"):
        apply_observation(observed("a", 0), store, POLICY, max_attempts=3)


def test_an_edited_audit_record_is_detected() -> None:
    store = FakeStateStore()
    apply_observation(observed("a", 0), store, POLICY)
    apply_observation(observed("b", 5, note="x"), store, POLICY)
    trail = store.audit[("t", "order", "shopify:1")]
    edited = [trail[0], trail[1].model_copy(update={"source": "crm"})]
    assert verify_chain(edited) == ["version 2: content does not match its hash"]
    assert verify_chain([trail[1]]) == [
        "version 1 is missing (found 2)",
        "version 2: previous-hash link broken",
    ]


EVENTS = st.lists(
    st.tuples(
        st.integers(0, 6),  # minutes: collisions on purpose (equal clocks)
        st.sampled_from(["shopify", "erp", "crm"]),
        st.sampled_from(["open", "closed", "cancelled"]),
        st.sampled_from(["unfulfilled", "fulfilled"]),
        st.sampled_from([None, "a", "b"]),
        st.sampled_from(["#1", "#2"]),
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(specs=EVENTS, data=st.data())
def test_any_order_and_duplication_converges_to_byte_identical_state(
    specs: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    events = [
        observed(f"e{i}", m, source=src, status=status, fulfillment_status=ful, note=note, order_number=num)
        for i, (m, src, status, ful, note, num) in enumerate(specs)
    ]
    reference = FakeStateStore()
    for event in events:
        apply_observation(event, reference, POLICY)
    shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=5))))
    other = FakeStateStore()
    for event in shuffled:
        apply_observation(event, other, POLICY)
    assert state_bytes(other) == state_bytes(reference)
    state, _ = other.load("t", "order", "shopify:1")
    assert state is not None
    assert verify_chain(other.audit[("t", "order", "shopify:1")]) == []
    assert len(other.audit[("t", "order", "shopify:1")]) == state.version


def test_three_orders_with_duplicates_give_identical_states() -> None:
    events = [
        observed("a", 0),
        observed("b", 5, note="x"),
        observed("c", 3, note="y"),
        observed("d", 5, status="closed", note="x"),
    ]
    results = set()
    for permutation in itertools.permutations(events):
        store = FakeStateStore()
        for event in (*permutation, permutation[0]):
            apply_observation(event, store, POLICY)
        results.add(state_bytes(store))
    assert len(results) == 1
    state = json.loads(results.pop())
    assert (state["fields"]["note"], state["fields"]["status"]) == ("x", "closed")


def test_merge_is_pure() -> None:
    event = observed("a", 0)
    first = merge(None, event, POLICY.for_type("order"))
    second = merge(None, event, POLICY.for_type("order"))
    assert first == second
