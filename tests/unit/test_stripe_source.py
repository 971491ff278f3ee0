"""Stripe: signatures checked against stripe-python as an independent oracle, refunds to cases."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import stripe as stripe_sdk

from infra.sandbox.samples import body_bytes, load_sample
from shared.errors import NormalisationError, SignatureInvalid
from shared.models import AfterSalesCase, InboxMessage, Money
from shared.sources.base import Headers
from shared.sources.stripe import Stripe, sign

SOURCE = Stripe()
NOW = datetime.fromtimestamp(1700000000, UTC)


def test_the_published_vector_and_stripe_python_agree_with_our_signer() -> None:
    body = b'{"id":"evt_test","object":"event","type":"charge.refunded"}'
    header = sign("whsec_test", body, 1700000000)
    assert header == "t=1700000000,v1=29f3bb1246cb8b05db79723f29d6e699eebd7ba9d233e9f049384b8f3b8aa00a"
    assert stripe_sdk.WebhookSignature.verify_header(body.decode(), header, "whsec_test", tolerance=None)


def test_a_header_made_by_stripe_python_is_accepted() -> None:
    body = b'{"id":"evt_1","type":"refund.created"}'
    header = stripe_sdk.WebhookSignature.generate_signature_header(body.decode(), "whsec_x", timestamp=1700000000)
    SOURCE.verify(Headers({"stripe-signature": header}), body, ["whsec_x"], NOW)


def test_any_of_several_v1_signatures_may_match() -> None:
    body = b"{}"
    good = sign("whsec_x", body, 1700000000).split("v1=")[1]
    SOURCE.verify(Headers({"Stripe-Signature": f"t=1700000000,v1={'0' * 64},v1={good}"}), body, ["whsec_x"], NOW)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing Stripe-Signature header"),
        ("v1=abc", "must carry one t= and at least one v1="),
        ("t=1700000000", "must carry one t= and at least one v1="),
        ("t=1699999000,v1=" + "0" * 64, "outside the 300 s tolerance"),
        ("t=1700000000,v1=" + "0" * 64, "no v1 signature"),
    ],
)
def test_bad_headers_are_refused_with_the_reason(header: str | None, message: str) -> None:
    headers = Headers({} if header is None else {"Stripe-Signature": header})
    with pytest.raises(SignatureInvalid, match=message):
        SOURCE.verify(headers, b"{}", ["whsec_x"], NOW)


def _message(name: str) -> tuple[InboxMessage, dict[str, object]]:
    sample = load_sample(name)
    body = body_bytes(sample)
    payload = json.loads(body)
    message = InboxMessage(
        source="stripe",
        tenant="demo",
        dedupe_key=f"stripe:demo:{payload['id']}",
        source_event_id=payload["id"],
        topic=payload["type"],
        received_at=NOW,
        headers={},
        body_sha256=hashlib.sha256(body).hexdigest(),
        archive_key="raw/x",
        body=body.decode(),
    )
    return message, payload


def test_a_refund_becomes_an_after_sales_case() -> None:
    message, payload = _message("stripe_refund_created")
    assert SOURCE.identify(Headers({}), payload).topic == "refund.created"
    [event] = SOURCE.normalise(message, payload)
    assert (event.entity_type, event.entity_id) == ("after_sales_case", "stripe:re_3QJx2cLkdIwHu7ix0kzQ1Nqf")
    assert event.entity == AfterSalesCase(
        case_id="re_3QJx2cLkdIwHu7ix0kzQ1Nqf",
        kind="refund",
        status="approved",
        order_id="820982911946154508",
        scenario="refund_without_restock",
        amount=Money(amount=Decimal("99.00"), currency="CNY"),
        reason="requested_by_customer",
    )
    updated, payload = _message("stripe_refund_updated")
    assert SOURCE.normalise(updated, payload)[0].entity.status == "refunded"  # type: ignore[union-attr]


def test_charge_refunded_without_expanded_refunds_is_one_case_for_the_charge() -> None:
    message, payload = _message("stripe_charge_refunded")
    [event] = SOURCE.normalise(message, payload)
    assert event.entity.amount == Money(amount=Decimal("598.00"), currency="CNY")  # type: ignore[union-attr]
    assert event.entity.customer_ref == "cus_RBr3S1lY0qv4Ng"  # type: ignore[union-attr]


def test_zero_decimal_currencies_are_not_divided() -> None:
    message, payload = _message("stripe_refund_created")
    payload["data"]["object"]["currency"] = "jpy"  # type: ignore[index]
    assert SOURCE.normalise(message, payload)[0].entity.amount == Money(amount=Decimal(9900), currency="JPY")  # type: ignore[union-attr]


def test_other_event_types_are_quarantined_by_name() -> None:
    message, payload = _message("stripe_refund_created")
    with pytest.raises(NormalisationError, match=r"unsupported event type 'invoice\.paid'"):
        SOURCE.normalise(message.model_copy(update={"topic": "invoice.paid"}), payload)
