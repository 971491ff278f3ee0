"""Zendesk (tickets) and WooCommerce (orders and the refunds inside them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.mappings import load_mapping
from shared.models import (
    AfterSalesCase,
    FulfillmentStatus,
    InboxMessage,
    Money,
    ObservedEntity,
    Order,
    OrderLine,
    OrderStatus,
    PaymentStatus,
    Ticket,
    TicketStatus,
)
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation


def _b64_hmac(secret: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def _matches(given: str, secrets: Sequence[str], make: Any) -> bool:
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(make(secret).encode(), given.strip().encode())
    return matched


_observe = observation


# --- Zendesk ------------------------------------------------------------------------------------
ZENDESK_SIGNATURE = "X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
ZENDESK_WINDOW_SECONDS = 300  # Zendesk does not enforce one; a replayed old request is refused here


class ZendeskMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: dict[str, TicketStatus]
    priority: dict[str, str]


@cache
def zendesk_maps() -> ZendeskMaps:
    return load_mapping("zendesk", ZendeskMaps)


def zendesk_sign(secret: str, timestamp: str, body: bytes) -> str:
    return _b64_hmac(secret, timestamp.encode() + body)


class Zendesk(JsonSource):
    name: ClassVar[str] = "zendesk"
    kept_headers: ClassVar[tuple[str, ...]] = ("x-zendesk-webhook-invocation-id",)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        given, timestamp = headers.get(ZENDESK_SIGNATURE), headers.get(ZENDESK_TIMESTAMP)
        if not given:
            raise SignatureInvalid(f"missing {ZENDESK_SIGNATURE} header")
        if not timestamp:
            raise SignatureInvalid(f"missing {ZENDESK_TIMESTAMP} header")
        try:
            signed_at = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SignatureInvalid(f"{ZENDESK_TIMESTAMP} is not an ISO-8601 time") from exc
        if signed_at.tzinfo is None or abs((now - signed_at).total_seconds()) > ZENDESK_WINDOW_SECONDS:
            raise SignatureInvalid(f"{ZENDESK_TIMESTAMP} is outside the {ZENDESK_WINDOW_SECONDS} s window")
        if not _matches(given, secrets, lambda s: zendesk_sign(s, timestamp.strip(), body)):
            raise SignatureInvalid(f"{ZENDESK_SIGNATURE} does not match the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        event_id = (payload.get("id") if isinstance(payload, dict) else None) or headers.get(
            "x-zendesk-webhook-invocation-id"
        )
        if not event_id or not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise MalformedPayload("a Zendesk event needs 'id' and 'type'")
        return Delivery(source_event_id=str(event_id), topic=payload["type"])

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"status": "duplicate" if duplicate else "accepted"})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if not message.topic.startswith("zen:event-type:ticket."):
            raise NormalisationError(self.name, f"unsupported event type {message.topic!r}")
        try:
            detail, maps = payload["detail"], zendesk_maps()
            ticket = Ticket(
                ticket_id=str(detail["id"]),
                status=maps.status[str(detail["status"]).upper()],
                priority=maps.priority.get(str(detail.get("priority") or "").upper()),
                assignee=str(detail["assignee_id"]) if detail.get("assignee_id") else None,
                subject=detail.get("subject"),
                requester_ref=str(detail["requester_id"]) if detail.get("requester_id") else None,
                tags=tuple(sorted(detail.get("tags") or [])),
            )
            at = detail.get("updated_at") or payload["time"]
            return [_observe(self.name, message, "ticket", f"zendesk:{ticket.ticket_id}", ticket, at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} payload is not a ticket: {describe_error(exc)}"
            ) from exc


# --- WooCommerce --------------------------------------------------------------------------------
WC_SIGNATURE = "X-WC-Webhook-Signature"
WC_PING = re.compile(rb"^webhook_id=\d+$")


class WooStatus(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: OrderStatus
    payment_status: PaymentStatus
    fulfillment_status: FulfillmentStatus


class WooMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    order: dict[str, WooStatus]


@cache
def woo_maps() -> WooMaps:
    return load_mapping("woocommerce", WooMaps)


def woocommerce_sign(secret: str, body: bytes) -> str:
    return _b64_hmac(secret, body)


class WooCommerce(JsonSource):
    name: ClassVar[str] = "woocommerce"
    kept_headers: ClassVar[tuple[str, ...]] = (
        "X-WC-Webhook-Topic",
        "X-WC-Webhook-Source",
        "X-WC-Webhook-ID",
        "X-WC-Webhook-Delivery-ID",
    )

    def ping(self, headers: Headers, body: bytes) -> Ack | None:
        # When a webhook is created, WooCommerce posts an unsigned form 'webhook_id=N' and disables the
        # webhook unless it gets a 200. It carries nothing to keep.
        if not headers.get(WC_SIGNATURE) and WC_PING.match(body.strip()):
            return Ack(200, {"status": "ping received"})
        return None

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        given = headers.get(WC_SIGNATURE)
        if not given:
            raise SignatureInvalid(f"missing {WC_SIGNATURE} header")
        if not _matches(given, secrets, lambda s: woocommerce_sign(s, body)):
            raise SignatureInvalid(f"{WC_SIGNATURE} does not match the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        topic = headers.get("X-WC-Webhook-Topic")
        if not topic:
            raise MalformedPayload("missing X-WC-Webhook-Topic header")
        if not isinstance(payload, dict) or "id" not in payload:
            raise MalformedPayload("a WooCommerce resource needs an 'id'")
        site = headers.get("X-WC-Webhook-Source", "")
        if topic.endswith(".deleted"):
            # A deletion carries only the id: the delivery id tells a re-deletion (after a restore) apart.
            delivery = headers.get("X-WC-Webhook-Delivery-ID")
            if not delivery:
                raise MalformedPayload("a WooCommerce deletion needs the X-WC-Webhook-Delivery-ID header")
            return Delivery(source_event_id=f"{site}|deleted|{payload['id']}|{delivery}", topic=topic)
        modified = payload.get("date_modified_gmt") or payload.get("date_modified") or ""
        # No event id: (site, resource id, modification time) identifies a delivery.
        return Delivery(source_event_id=f"{site}|{payload['id']}|{modified}", topic=topic)

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"status": "duplicate" if duplicate else "accepted"})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if not message.topic.startswith("order."):
            raise NormalisationError(self.name, f"unsupported topic {message.topic!r}")
        if message.topic == "order.deleted":  # only {"id": …}; order.restored later sends the full order
            try:
                order = Order(order_id=str(payload["id"]), status="deleted")
            except PAYLOAD_ERRORS as exc:
                raise NormalisationError(self.name, f"order.deleted needs an id: {describe_error(exc)}") from exc
            return [_observe(self.name, message, "order", f"woocommerce:{order.order_id}", order, message.received_at)]
        try:
            currency = payload["currency"]
            status = woo_maps().order[payload["status"]]
            at = datetime.fromisoformat(payload["date_modified_gmt"]).replace(tzinfo=UTC)
            billing = payload.get("billing") or {}
            order = Order(
                order_id=str(payload["id"]),
                order_number=str(payload.get("number") or payload["id"]),
                channel="woocommerce",
                status=status.status,
                payment_status=status.payment_status,
                fulfillment_status=status.fulfillment_status,
                total=Money(amount=Decimal(str(payload["total"])), currency=currency),
                customer_email=billing.get("email") or None,
                customer_phone=billing.get("phone") or None,
                customer_name=" ".join(x for x in (billing.get("first_name"), billing.get("last_name")) if x) or None,
                customer_source_id=str(payload["customer_id"]) if payload.get("customer_id") else None,
                purchased_at=datetime.fromisoformat(payload["date_created_gmt"]).replace(tzinfo=UTC),
                lines=tuple(
                    OrderLine(
                        line_id=str(li["id"]),
                        sku=li.get("sku") or None,
                        title=li.get("name"),
                        quantity=int(li["quantity"]),
                        unit_price=Money(amount=Decimal(str(li["price"])), currency=currency),
                    )
                    for li in payload.get("line_items") or []
                ),
            )
            events = [_observe(self.name, message, "order", f"woocommerce:{order.order_id}", order, at)]
            for refund in payload.get("refunds") or []:
                case = AfterSalesCase(
                    case_id=str(refund["id"]),
                    kind="refund",
                    status="refunded",
                    order_id=order.order_id,
                    amount=Money(amount=abs(Decimal(str(refund["total"]))), currency=currency),
                    reason=refund.get("reason") or None,
                    customer_ref=order.customer_source_id,
                )
                events.append(_observe(self.name, message, "after_sales_case", f"woocommerce:{case.case_id}", case, at))
            return events
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} payload is not an order: {describe_error(exc)}"
            ) from exc
