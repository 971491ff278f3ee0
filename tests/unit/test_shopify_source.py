"""Shopify adapter: signature on raw bytes, dedupe id, ack, normalisation to the canonical Order."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.sandbox.samples import body_bytes, load_sample
from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import Address, InboxMessage, Money, Order, OrderLine
from shared.sources.base import Headers
from shared.sources.shopify import Shopify, sign
from shared.state.merge import merge
from shared.state.policy import default_policy

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
SHOPIFY = Shopify()


def test_signature_matches_the_published_test_vector() -> None:
    # Given the vector from PLATFORMS.md, computed independently with the stdlib here too
    body = b'{"id":820982911946154508,"name":"#9999"}'
    expected = "UWmFPcwrxLn7+1AvhBs6vTRFPRkfNGH8pt53/pxTr4U="
    assert base64.b64encode(hmac.new(b"my_secret", body, hashlib.sha256).digest()).decode() == expected
    # Then our signer agrees and the verifier accepts it
    assert sign("my_secret", body) == expected
    SHOPIFY.verify(Headers({"x-shopify-hmac-sha256": expected}), body, ["my_secret"], NOW)


def test_a_missing_signature_header_never_passes() -> None:
    with pytest.raises(SignatureInvalid, match="missing X-Shopify-Hmac-Sha256 header"):
        SHOPIFY.verify(Headers({}), b"{}", ["my_secret"], NOW)


def test_an_empty_signature_header_never_passes() -> None:
    with pytest.raises(SignatureInvalid, match="missing"):
        SHOPIFY.verify(Headers({"X-Shopify-Hmac-Sha256": ""}), b"{}", ["my_secret"], NOW)


def test_one_changed_byte_is_rejected() -> None:
    body = b'{"id":820982911946154508,"name":"#9999"}'
    signature = sign("my_secret", body)
    with pytest.raises(SignatureInvalid, match="does not match the body"):
        SHOPIFY.verify(
            Headers({"X-Shopify-Hmac-Sha256": signature}), body.replace(b"9999", b"9998"), ["my_secret"], NOW
        )


def test_both_secrets_are_accepted_during_rotation_and_nothing_else() -> None:
    body = b'{"x":1}'
    for secret in ("new_secret", "old_secret"):
        SHOPIFY.verify(Headers({"X-Shopify-Hmac-Sha256": sign(secret, body)}), body, ["new_secret", "old_secret"], NOW)
    with pytest.raises(SignatureInvalid):
        SHOPIFY.verify(
            Headers({"X-Shopify-Hmac-Sha256": sign("retired", body)}), body, ["new_secret", "old_secret"], NOW
        )


def test_identify_uses_event_id_then_webhook_id() -> None:
    headers = {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-1"}
    assert SHOPIFY.identify(Headers(headers), {}).source_event_id == "wh-1"
    assert SHOPIFY.identify(Headers({**headers, "X-Shopify-Event-Id": "ev-1"}), {}).source_event_id == "ev-1"


def test_identify_names_what_is_missing() -> None:
    with pytest.raises(MalformedPayload, match="missing X-Shopify-Event-Id"):
        SHOPIFY.identify(Headers({"X-Shopify-Topic": "orders/create"}), {})
    with pytest.raises(MalformedPayload, match="missing X-Shopify-Topic"):
        SHOPIFY.identify(Headers({"X-Shopify-Event-Id": "e"}), {})
    with pytest.raises(MalformedPayload, match="must be a JSON object"):
        SHOPIFY.identify(Headers({"X-Shopify-Event-Id": "e", "X-Shopify-Topic": "orders/create"}), [1])


def _message(topic: str, body: bytes) -> InboxMessage:
    return InboxMessage(
        source="shopify",
        tenant="demo",
        dedupe_key="shopify:demo:ev-1",
        source_event_id="ev-1",
        topic=topic,
        received_at=NOW,
        headers={},
        body_sha256=hashlib.sha256(body).hexdigest(),
        archive_key="raw/x",
        body=body.decode(),
    )


def test_orders_create_normalises_to_the_exact_canonical_order() -> None:
    sample = load_sample("shopify_orders_create")
    body = body_bytes(sample)
    [event] = SHOPIFY.normalise(_message("orders/create", body), json.loads(body))
    assert event.entity_type == "order"
    assert event.entity_id == "shopify:820982911946154508"
    assert event.occurred_at == datetime(2026, 11, 20, 2, 0, 5, tzinfo=UTC)  # +08:00 converted to UTC
    assert event.entity == Order(
        order_id="820982911946154508",
        order_number="#9999",
        channel="shopify",
        status="open",
        payment_status="paid",
        fulfillment_status="unfulfilled",
        total=Money(amount=Decimal("598.00"), currency="CNY"),
        customer_email="jon@example.com",
        customer_phone="+8613800138000",
        customer_name="Jon Snow",
        customer_source_id="115310627314723954",
        purchased_at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
        lines=(
            OrderLine(
                line_id="866550311766439020",
                sku="AIRPURIFIER-X1",
                title="Air purifier X1",
                model="X1-2026",
                quantity=1,
                unit_price=Money(amount=Decimal("499.00"), currency="CNY"),
            ),
            OrderLine(
                line_id="141249953214522974",
                sku="FILTER-X1",
                title="Replacement filter",
                quantity=1,
                unit_price=Money(amount=Decimal("99.00"), currency="CNY"),
            ),
        ),
        tags=("vip", "warranty"),
        note=None,
        shipping_address=Address(
            name="Jon Snow", phone="+8613800138000", line1="1 Century Ave", city="Shanghai", country_code="CN"
        ),
    )


def test_the_event_id_is_the_same_for_a_replay_of_the_same_delivery() -> None:
    body = body_bytes(load_sample("shopify_orders_create"))
    first = SHOPIFY.normalise(_message("orders/create", body), json.loads(body))[0]
    again = SHOPIFY.normalise(_message("orders/create", body), json.loads(body))[0]
    assert first.event_id == again.event_id


def test_an_unsupported_topic_is_quarantined_with_its_name() -> None:
    with pytest.raises(NormalisationError, match="unsupported topic 'products/update'"):
        SHOPIFY.normalise(_message("products/update", b"{}"), {})


def test_a_verified_payload_that_is_not_an_order_says_which_field() -> None:
    with pytest.raises(NormalisationError, match="missing field 'currency'"):
        SHOPIFY.normalise(_message("orders/create", b"{}"), {"id": 1})
    payload = json.loads(body_bytes(load_sample("shopify_orders_create")))
    payload["financial_status"] = "paid_twice"
    with pytest.raises(NormalisationError, match="financial_status: not a known value"):
        SHOPIFY.normalise(_message("orders/create", b"{}"), payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(payload=JSON)
def test_junk_of_any_shape_is_a_normalisation_error_never_a_crash(payload: object) -> None:
    with contextlib.suppress(NormalisationError):
        SHOPIFY.normalise(_message("orders/updated", b"{}"), payload)


@settings(max_examples=200, deadline=None)
@given(
    order=st.fixed_dictionaries(
        {
            "id": st.integers(1, 2**63),
            "currency": st.sampled_from(["CNY", "USD", "eu", ""]),
            "total_price": st.text(max_size=8),
            "created_at": st.text(max_size=30),
            "updated_at": st.text(max_size=30),
            "financial_status": st.sampled_from(["paid", "x", None]),
            "line_items": st.lists(st.dictionaries(st.sampled_from(["id", "quantity", "price"]), JSON), max_size=3),
        }
    )
)
def test_near_miss_orders_are_normalised_or_quarantined(order: dict[str, object]) -> None:
    try:
        events = SHOPIFY.normalise(_message("orders/updated", b"{}"), order)
    except NormalisationError:
        return
    assert events[0].entity.order_id == str(order["id"])


def test_refunds_create_with_a_returned_line_is_a_restocked_return_case() -> None:
    sample = load_sample("shopify_refunds_create")
    body = body_bytes(sample)
    [event] = SHOPIFY.normalise(_message("refunds/create", body), json.loads(body))
    case = event.entity
    assert (event.entity_type, event.entity_id) == ("after_sales_case", "shopify:refund:929361462")
    assert (case.kind, case.status, case.scenario, case.order_id) == (  # type: ignore[union-attr]
        "return",
        "refunded",
        "normal_return",
        "820982911946154508",
    )
    assert case.amount == Money(amount=Decimal("499.00"), currency="CNY")  # type: ignore[union-attr]
    assert [(i.sku, i.quantity, i.restock) for i in case.items] == [("AIRPURIFIER-X1", 1, True)]  # type: ignore[union-attr]


def test_a_refund_without_lines_is_an_appeasement_and_without_restock_says_so() -> None:
    payload = json.loads(body_bytes(load_sample("shopify_refunds_create")))
    appeasement = {**payload, "refund_line_items": []}
    assert SHOPIFY.normalise(_message("refunds/create", b"{}"), appeasement)[0].entity.scenario == "appeasement"  # type: ignore[union-attr]
    kept = {**payload, "refund_line_items": [{**payload["refund_line_items"][0], "restock_type": "no_restock"}]}
    case = SHOPIFY.normalise(_message("refunds/create", b"{}"), kept)[0].entity
    assert (case.kind, case.scenario, case.items[0].restock) == ("refund", "refund_without_restock", False)  # type: ignore[union-attr]


def test_a_fulfillment_update_is_a_shipment_on_the_canonical_tracking_scale() -> None:
    body = body_bytes(load_sample("shopify_fulfillments_update"))
    [event] = SHOPIFY.normalise(_message("fulfillments/update", body), json.loads(body))
    assert (event.entity_id, event.entity.status) == ("sf-express:SF1410029637153", "in_transit")  # type: ignore[union-attr]
    no_tracking = {**json.loads(body), "tracking_number": None, "tracking_numbers": []}
    with pytest.raises(NormalisationError, match="tracking_number: missing: a fulfillment needs one"):
        SHOPIFY.normalise(_message("fulfillments/update", b"{}"), no_tracking)


def _sample_message(name: str) -> tuple[InboxMessage, dict[str, object]]:
    sample = load_sample(name)
    body = body_bytes(sample)
    headers = {k.lower(): v for k, v in sample["headers"].items()}
    message = _message(sample["headers"]["X-Shopify-Topic"], body).model_copy(update={"headers": headers})
    return message, json.loads(body)


@pytest.mark.parametrize(
    ("name", "status", "items", "reason"),
    [
        ("shopify_returns_request", "requested", [("FILTER-X1", 1)], "defective"),
        ("shopify_returns_approve", "approved", [("FILTER-X1", 1)], "defective"),
        ("shopify_returns_decline", "rejected", None, "declined: final_sale"),
        ("shopify_returns_process", "received", None, None),
    ],
)
def test_each_returns_topic_is_the_return_case_in_its_canonical_status(
    name: str, status: str, items: list[tuple[str, int]] | None, reason: str | None
) -> None:
    message, payload = _sample_message(name)
    [event] = SHOPIFY.normalise(message, payload)
    case = event.entity
    assert event.entity_type == "after_sales_case"
    assert (case.kind, case.status, case.reason) == ("return", status, reason)  # type: ignore[union-attr]
    sent = case.model_dump(exclude_unset=True)
    if items is None:
        assert "items" not in sent  # not reported by this topic: nothing to merge, nothing erased
    else:
        assert [(i.sku, i.quantity) for i in case.items] == items  # type: ignore[union-attr]
    # The trigger time orders return events (the payloads carry no update time)
    assert event.occurred_at == datetime.fromisoformat(message.headers["x-shopify-triggered-at"])


def test_a_return_with_exchange_line_items_is_an_exchange_with_its_replacements() -> None:
    [event] = SHOPIFY.normalise(*_sample_message("shopify_returns_request_exchange"))
    case = event.entity
    assert event.entity_id == "shopify:return:945000977"
    assert (case.kind, case.status, case.reason) == ("exchange", "requested", "wrong_item")  # type: ignore[union-attr]
    assert [(i.sku, i.quantity) for i in case.items] == [("FILTER-X1", 1)]  # type: ignore[union-attr]
    assert [(r.sku, r.quantity, r.title) for r in case.replacements] == [  # type: ignore[union-attr]
        ("FILTER-X1-HEPA", 1, "Replacement filter (HEPA)")
    ]
    # returns/process carries no line items and says "return"; kind is immutable, so the merged case
    # is an exchange whichever arrives first
    [processed] = SHOPIFY.normalise(*_sample_message("shopify_returns_process_exchange"))
    assert (processed.entity.kind, processed.entity.status) == ("return", "received")  # type: ignore[union-attr]
    policy = default_policy().for_type("after_sales_case")
    for first, second in ((event, processed), (processed, event)):
        merged = merge(merge(None, first, policy).state, second, policy).state
        assert merged.fields["kind"] == "exchange"
        assert merged.fields["replacements"] == [
            {"sku": "FILTER-X1-HEPA", "quantity": 1, "title": "Replacement filter (HEPA)"}
        ]


def test_a_return_is_one_case_across_its_topics() -> None:
    ids = {
        SHOPIFY.normalise(*_sample_message(n))[0].entity_id
        for n in ("shopify_returns_request", "shopify_returns_process", "shopify_returns_update")
    }
    assert ids == {"shopify:return:945000954"}


def test_returns_update_without_a_status_reports_no_status_and_no_item_list() -> None:
    [event] = SHOPIFY.normalise(*_sample_message("shopify_returns_update"))
    assert event.entity.model_dump(exclude_unset=True) == {"case_id": "945000954", "kind": "return"}


def test_an_unknown_return_status_is_quarantined_with_the_status() -> None:
    message, payload = _sample_message("shopify_returns_update")
    with pytest.raises(NormalisationError, match="status: not a known value"):
        SHOPIFY.normalise(message, {**payload, "status": "LOST"})


def test_orders_edited_is_the_order_with_its_last_edit() -> None:
    [event] = SHOPIFY.normalise(*_sample_message("shopify_orders_edited"))
    assert (event.entity_type, event.entity_id) == ("order", "shopify:820982911946154508")
    assert event.entity.model_dump(mode="json", exclude_unset=True) == {
        "order_id": "820982911946154508",
        "last_edit": {
            "edit_id": "78912328",
            "edited_at": "2026-11-20T05:00:00Z",
            "added": [{"line_id": "141249953214522974", "delta": 1}],
            "removed": [],
            "staff_note": "Customer asked for a spare filter",
        },
    }
