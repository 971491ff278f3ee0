"""WooCommerce orders and the refunds inside them: ``X-WC-Webhook-Signature``, an unsigned creation ping,
no event id (site, resource id and modification time identify a delivery)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
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
)
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation
from shared.sources.hmac_headers import b64_hmac, matches_any
from shared.sources.mappings import load_mapping

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
    return b64_hmac(secret, body)


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
        if not matches_any(given, secrets, lambda s: woocommerce_sign(s, body)):
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
            return [
                observation(self.name, message, "order", f"woocommerce:{order.order_id}", order, message.received_at)
            ]
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
            events = [observation(self.name, message, "order", f"woocommerce:{order.order_id}", order, at)]
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
                events.append(
                    observation(self.name, message, "after_sales_case", f"woocommerce:{case.case_id}", case, at)
                )
            return events
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} payload is not an order: {describe_error(exc)}"
            ) from exc
