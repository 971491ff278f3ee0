"""The stored state layout (compact, old layout still read) and the customer an order names: a hint
that cannot turn a shared account into a hot key."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.delivery.targets import canonical_json
from shared.identity.customer_link import linked_observations
from shared.identity.resolver import NAME_KEY_LIMIT, SHARED_ACCOUNT_LIMIT, MemoryIdentityIndex
from shared.models import Customer, ObservedEntity
from shared.state.merge import EntityState, FieldClock
from shared.state.policy import default_policy
from shared.state.stored import pack, state_from_item, unpack
from shared.state.sync import apply_observation
from tests.fakes import FakeStateStore, observed

POLICY = default_policy()
SALT = b"s" * 32

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
clocks = st.builds(
    FieldClock,
    rank=st.integers(-1, 40),
    at=st.sampled_from(["2026-11-20T02:00:00.000000Z", "2026-11-20T03:00:00.000000Z"]),
    event_id=st.sampled_from(["e1", "e2", "e3"]),
    source=st.sampled_from(["shopify", "erp", "derived"]),
)


@st.composite
def states(draw: Any) -> EntityState:
    names = draw(st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=12))
    fields = {n: draw(json_values) for n in names if draw(st.booleans()) or not names}
    clocked = {n: draw(clocks) for n in names if draw(st.booleans())}  # some fields without a clock, some clocks alone
    return EntityState(
        tenant=draw(st.text(min_size=1, max_size=5)),
        entity_type="order",
        entity_id=draw(st.text(min_size=1, max_size=10)),
        version=draw(st.integers(0, 10**6)),
        revision=draw(st.integers(0, 10**6)),
        fields=fields,
        clocks=clocked,
    )


@given(states())
def test_the_compact_layout_reads_back_every_state_exactly(state: EntityState) -> None:
    assert unpack(pack(state), state.version, state.revision) == state


def test_an_item_in_the_old_layout_loads_as_it_was() -> None:
    state = apply_and_get([observed("a", 0), observed("b", 5, note="x")])
    old_item = {
        "doc": {"S": canonical_json(state.model_dump(mode="json"))},
        "version": {"N": str(state.version)},
        "revision": {"N": str(state.revision)},
    }
    new_item = {"docz": {"B": pack(state)}, "version": old_item["version"], "revision": old_item["revision"]}
    assert state_from_item(old_item) == state_from_item(new_item) == state


def test_each_clock_is_stored_once_and_the_order_document_shrinks_to_a_quarter() -> None:
    state = apply_and_get([observed("a", 0), observed("b", 5, note="x", fulfillment_status="fulfilled")])
    assert len(set(state.clocks.values())) == 2  # two observations set every field
    assert len(pack(state)) * 4 < len(canonical_json(state.model_dump(mode="json")))


def apply_and_get(events: list[ObservedEntity]) -> EntityState:
    store = FakeStateStore()
    for event in events:
        apply_observation(event, store, POLICY)
    state, _ = store.load("t", "order", "shopify:1")
    assert state is not None
    return state


# --- the customer an order names ------------------------------------------------------------------
def b2b_order(n: int, buyer: int | None = None, minutes: int | None = None) -> ObservedEntity:
    """Order ``n`` of one B2B account, placed by buyer ``buyer`` (each with their own name, e-mail, phone)."""
    buyer = n if buyer is None else buyer
    event = observed(
        f"order-{n}",
        n if minutes is None else minutes,
        order_id=str(n),
        customer_source_id="acme-account",
        customer_name=f"Buyer {buyer}",
        customer_email=f"buyer{buyer}@acme.example",
        customer_phone=f"+86138001380{buyer:02d}",
    )
    return event.model_copy(update={"entity_id": f"shopify:{n}"})


class CountingIndex(MemoryIdentityIndex):
    def __init__(self) -> None:
        super().__init__()
        self.profile_writes: Counter[str] = Counter()

    def claim(self, customer_id: str, keys: Any, name: str | None) -> None:
        before = self.profile(customer_id)
        names, kinds = set(before.names), {k: set(v) for k, v in before.strong_kinds.items()}
        super().claim(customer_id, keys, name)
        after = self.profile(customer_id)
        if after.names != names or after.strong_kinds != kinds:
            self.profile_writes[customer_id] += 1


class CountingStore(FakeStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.writes: Counter[tuple[str, str, str]] = Counter()

    def commit(self, state: EntityState, expected_revision: int, audit: Any, head: str) -> None:
        super().commit(state, expected_revision, audit, head)
        self.writes[(state.tenant, state.entity_type, state.entity_id)] += 1


def sync(events: list[ObservedEntity], store: FakeStateStore, index: MemoryIdentityIndex) -> list[str]:
    customers = []
    for event in events:
        for linked in linked_observations(event, lambda _: index, lambda _: SALT):
            apply_observation(linked.observation, store, POLICY, hint=linked.hint)
            if linked.observation.entity_type == "customer":
                customers.append(linked.observation.entity_id)
    return customers


def test_a_hundred_orders_of_one_b2b_account_write_its_customer_once_and_its_profile_a_bounded_number_of_times() -> (
    None
):
    store, index = CountingStore(), CountingIndex()
    # Given 100 orders of one account, placed by 100 different buyers
    customers = sync([b2b_order(n) for n in range(100)], store, index)
    # Then every order names the same customer, whose state was written by the first order only
    [customer] = set(customers)
    assert store.writes[("t", "customer", customer)] == 1
    state, _ = store.load("t", "customer", customer)
    assert state is not None and state.fields["name"] == "Buyer 0"
    # and whose identity profile stopped taking names and e-mails at the shared-account limits (one key a
    # name here: "Buyer 7" has no other spelling)
    assert index.profile_writes[customer] == NAME_KEY_LIMIT
    assert len(index.profile(customer).names) == NAME_KEY_LIMIT
    assert len(index.profile(customer).strong_kinds["email"]) == SHARED_ACCOUNT_LIMIT
    # while each order was written once
    assert all(store.writes[("t", "order", f"shopify:{n}")] == 1 for n in range(100))


def test_a_guest_placeholder_seen_again_with_the_same_details_costs_no_write() -> None:
    store, index = CountingStore(), CountingIndex()
    customers = sync([b2b_order(n, buyer=7) for n in range(50)], store, index)
    assert store.writes[("t", "customer", customers[0])] == 1
    assert index.profile_writes[customers[0]] == 1
    assert not store.decisions  # an order's hint that loses is no decision to record


def test_the_customer_an_order_names_converges_for_any_order_of_arrival() -> None:
    orders = [b2b_order(n, minutes=m) for n, m in ((1, 30), (2, 10), (3, 20), (4, 10))]
    results = set()
    for permutation in itertools.permutations(orders):
        store = FakeStateStore()
        [customer, *_] = sync(list(permutation), store, MemoryIdentityIndex())
        state, _ = store.load("t", "customer", customer)
        assert state is not None
        results.add(canonical_json(state.snapshot()))
    assert len(results) == 1
    # the earliest order's word stays (minute 10: order 2 or 4, whichever event id is the smaller)
    final = results.pop()
    assert '"name":"Buyer 2"' in final or '"name":"Buyer 4"' in final


def test_the_customer_s_own_source_outranks_what_any_order_implies_in_any_order() -> None:
    index = MemoryIdentityIndex()
    direct = observed("crm-1", 50, source="shopify").model_copy(
        update={
            "entity_type": "customer",
            "entity": Customer(source_customer_id="acme-account", name="ACME Trading Co."),
        }
    )
    for events in ([b2b_order(1), direct], [direct, b2b_order(1)]):
        store = FakeStateStore()
        sync(events, store, index)
        [state] = [s for (_, entity_type, _), (s, _) in store.states.items() if entity_type == "customer"]
        assert state.fields["name"] == "ACME Trading Co."
        assert state.clocks["name"].rank == POLICY.for_type("customer").rank("shopify")
