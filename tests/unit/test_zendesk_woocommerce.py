"""Zendesk (timestamped signature, replay window) and WooCommerce (ping, refunds inside orders)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from infra.sandbox.samples import body_bytes, load_sample
from shared.errors import MalformedPayload, SignatureInvalid
from shared.models import InboxMessage, Money
from shared.sources.base import Headers
from shared.sources.woocommerce import WooCommerce
from shared.sources.zendesk import Zendesk, zendesk_sign

SIGNED_AT = datetime(2021, 3, 25, 5, 9, 27, tzinfo=UTC)


def test_zendesk_signature_matches_the_published_vector() -> None:
    secret, timestamp, body = (
        "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
        "2021-03-25T05:09:27Z",
        b'{"event":"ticket.updated","id":123}',
    )
    signature = zendesk_sign(secret, timestamp, body)
    assert signature == "S/RDdU2ERmj7LHDDoWJ2onPYH+t7/f2+LTM4dL7UiLM="
    headers = Headers({"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": timestamp})
    Zendesk().verify(headers, body, [secret], SIGNED_AT)


@pytest.mark.parametrize(
    ("headers", "now", "message"),
    [
        ({}, SIGNED_AT, "missing X-Zendesk-Webhook-Signature header"),
        ({"X-Zendesk-Webhook-Signature": "x"}, SIGNED_AT, "missing X-Zendesk-Webhook-Signature-Timestamp"),
        (
            {"X-Zendesk-Webhook-Signature": "x", "X-Zendesk-Webhook-Signature-Timestamp": "yesterday"},
            SIGNED_AT,
            "not an ISO-8601",
        ),
        (
            {"X-Zendesk-Webhook-Signature": "x", "X-Zendesk-Webhook-Signature-Timestamp": "2021-03-25T05:09:27Z"},
            datetime(2021, 3, 25, 6, 0, tzinfo=UTC),
            "outside the 300 s window",
        ),
        (
            {"X-Zendesk-Webhook-Signature": "x", "X-Zendesk-Webhook-Signature-Timestamp": "2021-03-25T05:09:27Z"},
            SIGNED_AT,
            "does not match",
        ),
    ],
)
def test_zendesk_refusals_say_why(headers: dict[str, str], now: datetime, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        Zendesk().verify(Headers(headers), b"{}", ["s"], now)


def _message(source: str, name: str, topic: str) -> tuple[InboxMessage, dict[str, object]]:
    body = body_bytes(load_sample(name))
    return InboxMessage(
        source=source,
        tenant="demo",
        dedupe_key=f"{source}:demo:x",
        source_event_id="x",
        topic=topic,
        received_at=SIGNED_AT,
        headers={},
        body_sha256=hashlib.sha256(body).hexdigest(),
        archive_key="raw/x",
        body=body.decode(),
    ), json.loads(body)


def test_zendesk_status_change_becomes_a_ticket() -> None:
    message, payload = _message("zendesk", "zendesk_ticket_status_changed", "zen:event-type:ticket.status_changed")
    assert Zendesk().identify(Headers({}), payload).source_event_id == "cbe4028c-7239-495d-b020-f22348516046"
    [event] = Zendesk().normalise(message, payload)
    ticket = event.entity
    assert (event.entity_id, ticket.status, ticket.priority, ticket.requester_ref, ticket.tags) == (  # type: ignore[union-attr]
        "zendesk:5158",
        "open",
        "high",
        "1512863381522",
        ("repair", "warranty"),
    )


def test_woocommerce_creation_ping_is_answered_without_a_signature() -> None:
    assert (
        WooCommerce().ping(Headers({"Content-Type": "application/x-www-form-urlencoded"}), b"webhook_id=12") is not None
    )
    assert WooCommerce().ping(Headers({"X-WC-Webhook-Signature": "x"}), b"webhook_id=12") is None  # signed: a delivery
    assert WooCommerce().ping(Headers({}), b'{"id": 1}') is None


def test_woocommerce_refunded_order_gives_the_order_and_its_refund_case() -> None:
    message, payload = _message("woocommerce", "woocommerce_order_refunded", "order.updated")
    headers = Headers(load_sample("woocommerce_order_refunded")["headers"])
    assert (
        WooCommerce().identify(headers, payload).source_event_id == "https://shop.example.com/|727|2026-11-21T10:30:00"
    )
    order_event, case_event = WooCommerce().normalise(message, payload)
    assert (order_event.entity_id, order_event.entity.payment_status) == ("woocommerce:727", "refunded")  # type: ignore[union-attr]
    assert case_event.entity_id == "woocommerce:731"
    assert case_event.entity.amount == Money(amount=Decimal("129.00"), currency="USD")  # type: ignore[union-attr]
    assert case_event.entity.reason == "Arrived damaged"  # type: ignore[union-attr]


def test_woocommerce_order_deleted_marks_the_order_deleted_with_only_its_id() -> None:
    sample = load_sample("woocommerce_order_deleted")
    message, payload = _message("woocommerce", "woocommerce_order_deleted", "order.deleted")
    delivery = WooCommerce().identify(Headers(sample["headers"]), payload)
    assert delivery.source_event_id == "https://shop.example.com/|deleted|727|a71c0e55d2b4"
    [event] = WooCommerce().normalise(message, payload)
    assert event.entity.model_dump(exclude_unset=True) == {"order_id": "727", "status": "deleted"}
    assert event.occurred_at == message.received_at  # the deletion carries no time of its own
    with pytest.raises(MalformedPayload, match="needs the X-WC-Webhook-Delivery-ID header"):
        WooCommerce().identify(
            Headers({k: v for k, v in sample["headers"].items() if k != "X-WC-Webhook-Delivery-ID"}), payload
        )
