"""Identity: key normalisation, salted hashing, resolution that never merges on weak evidence."""

from __future__ import annotations

import pytest

from bench.identity_dataset import evaluate, generate
from shared.identity.resolver import (
    MemoryIdentityIndex,
    hash_key,
    identity_keys,
    normalise_email,
    normalise_name,
    normalise_phone,
    resolve,
)
from shared.models import Customer

SALT = b"tenant-salt"


@pytest.mark.parametrize(
    "raw",
    ["13800138000", "+86 138 0013 8000", "138-0013-8000", "0086 13800138000", "+8613800138000", " 138 00138000 "],
)
def test_phone_formats_normalise_to_e164(raw: str) -> None:
    assert normalise_phone(raw, "CN") == "+8613800138000"


@pytest.mark.parametrize("raw", ["", "   ", "12345", "not a phone", "14365254675"])
def test_unusable_phones_are_no_key_at_all(raw: str) -> None:
    assert normalise_phone(raw, "CN") is None


def test_email_and_name_normalisation() -> None:
    assert normalise_email("  Jon.Snow@Example.COM ") == "jon.snow@example.com"
    assert normalise_email("not-an-address") is None
    assert normalise_name("  WANG   Fang ") == "wang fang"


def test_only_salted_hashes_are_stored() -> None:
    index = MemoryIdentityIndex()
    resolve(
        Customer(source_customer_id="1", name="Jon", email="jon@example.com", phone="13800138000"),
        "shopify",
        index,
        SALT,
    )
    assert all("jon" not in h and "138" not in h and len(h) == 64 for h in index.keys)
    other_tenant = hash_key(
        b"other-salt", identity_keys(Customer(source_customer_id="1", email="jon@example.com"), "shopify", "CN")[1]
    )
    assert other_tenant not in index.keys


def test_the_same_person_across_channels_is_one_customer() -> None:
    index = MemoryIdentityIndex()
    shop = resolve(
        Customer(source_customer_id="s1", name="Li Na", email="LI.NA@example.com", phone="+86 138 0013 8000"),
        "shopify",
        index,
        SALT,
    )
    youzan = resolve(
        Customer(source_customer_id="y1", name="li na", phone="138-0013-8000", openid="oU1"), "youzan", index, SALT
    )
    wecom = resolve(
        Customer(source_customer_id="w1", name="LI NA", openid="oU1", wecom_external_user_id="wm1"),
        "wecom",
        index,
        SALT,
    )
    assert shop.created and not youzan.created and not wecom.created
    assert shop.customer_id == youzan.customer_id == wecom.customer_id
    assert (youzan.evidence, wecom.evidence) == (("phone", "name"), ("openid",))


def test_a_family_sharing_a_phone_is_never_merged() -> None:
    index = MemoryIdentityIndex()
    mother = resolve(
        Customer(source_customer_id="1", name="Wang Fang", email="fang@example.com", phone="13800138000"),
        "shopify",
        index,
        SALT,
    )
    son = resolve(
        Customer(source_customer_id="2", name="Wang Lei", email="lei@example.com", phone="13800138000"),
        "shopify",
        index,
        SALT,
    )
    twin_name = resolve(
        Customer(source_customer_id="3", name="Wang Fang", email="other@example.com", phone="13800138000"),
        "shopify",
        index,
        SALT,
    )
    assert len({mother.customer_id, son.customer_id, twin_name.customer_id}) == 3


def test_strong_keys_of_two_customers_make_a_merge_candidate_not_a_merge() -> None:
    index = MemoryIdentityIndex()
    a = resolve(Customer(source_customer_id="1", name="A", email="a@example.com"), "shopify", index, SALT)
    b = resolve(Customer(source_customer_id="2", name="B", openid="oU2"), "youzan", index, SALT)
    both = resolve(
        Customer(source_customer_id="3", name="A", email="a@example.com", openid="oU2"), "wecom", index, SALT
    )
    assert both.customer_id in {a.customer_id, b.customer_id}
    assert set(both.merge_candidates) | {both.customer_id} == {a.customer_id, b.customer_id}
    assert list(index.candidates) == [tuple(sorted({a.customer_id, b.customer_id}))]
    assert index.canonical(a.customer_id) != index.canonical(b.customer_id)


def test_one_record_with_strong_keys_of_two_customers_of_its_name_joins_them() -> None:
    index = MemoryIdentityIndex()
    shop = resolve(Customer(source_customer_id="s1", name="Li Na", email="li.na@example.com"), "shopify", index, SALT)
    follower = resolve(Customer(source_customer_id="y1", name="LI NA", openid="oU1"), "youzan", index, SALT)
    assert shop.customer_id != follower.customer_id  # nothing in common yet
    crm = resolve(
        Customer(source_customer_id="c1", name="li  na", email="Li.Na@example.com", openid="oU1"), "wecom", index, SALT
    )
    # Equal evidence (one key each) and the CRM's own id unknown: the lower id stays, the other is absorbed.
    stays, goes = sorted([shop.customer_id, follower.customer_id])
    assert (crm.customer_id, crm.absorbed, crm.merge_candidates, crm.created) == (stays, (goes,), (), False)
    assert index.canonical(shop.customer_id) == index.canonical(follower.customer_id) == crm.customer_id
    assert index.absorbed == {crm.absorbed[0]: ("email", "openid")}
    assert index.candidates == {}
    again = resolve(Customer(source_customer_id="s1", name="Li Na"), "shopify", index, SALT)
    assert again.customer_id == crm.customer_id  # the absorbed customer's own keys answer to the survivor


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (Customer(source_customer_id="c1", name="Li Na", email="a@example.com", openid="oU2"), "another name"),
        (Customer(source_customer_id="c1", email="a@example.com", openid="oU2"), "no name"),
    ],
)
def test_two_customers_named_by_one_record_stay_apart_without_the_same_name(record: Customer, why: str) -> None:
    index = MemoryIdentityIndex()
    a = resolve(Customer(source_customer_id="1", name="Li Na", email="a@example.com"), "shopify", index, SALT)
    b = resolve(Customer(source_customer_id="2", name="Wang Fang", openid="oU2"), "youzan", index, SALT)
    both = resolve(record, "wecom", index, SALT)
    assert both.absorbed == (), why
    assert list(index.candidates) == [tuple(sorted({a.customer_id, b.customer_id}))]
    assert index.canonical(a.customer_id) != index.canonical(b.customer_id)


def test_two_customers_with_different_emails_are_not_joined_by_a_record_naming_both() -> None:
    index = MemoryIdentityIndex()
    a = resolve(Customer(source_customer_id="1", name="Li Na", email="a@example.com"), "shopify", index, SALT)
    b = resolve(
        Customer(source_customer_id="2", name="Li Na", email="b@example.com", openid="oU2"), "youzan", index, SALT
    )
    both = resolve(
        Customer(source_customer_id="3", name="Li Na", email="a@example.com", openid="oU2"), "wecom", index, SALT
    )
    assert both.absorbed == () and set(both.merge_candidates) | {both.customer_id} == {a.customer_id, b.customer_id}
    assert index.canonical(a.customer_id) != index.canonical(b.customer_id)


def test_customers_a_person_kept_apart_are_never_joined_again() -> None:
    index = MemoryIdentityIndex()
    a = resolve(Customer(source_customer_id="1", name="Li Na", email="a@example.com"), "shopify", index, SALT)
    b = resolve(Customer(source_customer_id="2", name="Li Na", openid="oU2"), "youzan", index, SALT)
    index.keep_apart([a.customer_id, b.customer_id])
    both = resolve(
        Customer(source_customer_id="3", name="Li Na", email="a@example.com", openid="oU2"), "wecom", index, SALT
    )
    assert both.absorbed == ()
    assert index.canonical(a.customer_id) != index.canonical(b.customer_id)


def test_resolution_is_deterministic_on_retry() -> None:
    customer = Customer(source_customer_id="9", name="Z", email="z@example.com")
    first = resolve(customer, "shopify", MemoryIdentityIndex(), SALT)
    again = resolve(customer, "shopify", MemoryIdentityIndex(), SALT)
    assert first.customer_id == again.customer_id


def test_generated_data_set_precision_is_total_and_recall_reaches_what_is_linkable() -> None:
    score = evaluate(generate(2000, seed=7))
    assert score.precision == 1.0
    assert score.correct_pairs / score.linkable_pairs >= 0.99
    assert score.records > 5000


def test_cases_and_tickets_link_to_the_customer_their_source_knows() -> None:
    from datetime import UTC, datetime

    from shared.identity.customer_link import link_customers
    from shared.models import AfterSalesCase, ObservedEntity, Ticket

    index = MemoryIdentityIndex()
    known = resolve(Customer(source_customer_id="c-7", name="Li Na", email="li.na@example.com"), "shopify", index, SALT)
    now = datetime(2026, 11, 20, tzinfo=UTC)

    def observe(entity_type: str, entity: object, source: str) -> ObservedEntity:
        return ObservedEntity.model_validate(
            {
                "event_id": "e",
                "tenant": "t",
                "source": source,
                "source_event_id": "e",
                "topic": "x",
                "entity_type": entity_type,
                "entity_id": "x:1",
                "occurred_at": now,
                "received_at": now,
                "origin": "webhook",
                "entity": entity,
            }
        )

    case = observe(
        "after_sales_case",
        AfterSalesCase(case_id="r1", kind="refund", status="requested", customer_ref="c-7"),
        "shopify",
    )
    ticket = observe("ticket", Ticket(ticket_id="9", status="new", requester_ref="c-7"), "shopify")
    [linked_case] = link_customers(case, lambda _: index, lambda _: SALT)
    [linked_ticket] = link_customers(ticket, lambda _: index, lambda _: SALT)
    assert linked_case.entity.customer_id == linked_ticket.entity.customer_id == known.customer_id  # type: ignore[union-attr]
    assert "customer_id" in linked_case.entity.model_dump(exclude_unset=True)


def test_a_missing_or_short_tenant_salt_is_refused_by_name() -> None:
    from shared.errors import ConfigurationError
    from shared.identity.resolver import salt_from_secret

    assert salt_from_secret({"salt": "x" * 32}, "s") == b"x" * 32
    for secret in (None, {}, {"salt": "short"}, {"salt": 12345}):
        with pytest.raises(ConfigurationError, match="secret 's' must be"):
            salt_from_secret(secret, "s")  # type: ignore[arg-type]
