"""Shopify webhooks: HMAC-SHA256 (base64) over the raw body, dedupe on ``X-Shopify-Event-Id``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from pydantic import ValidationError

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.mappings import status_maps
from shared.models import InboxMessage, Money, ObservedEntity, Order, OrderLine
from shared.sources.base import Ack, Delivery, Headers, JsonSource, observation

SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TOPIC_HEADER = "X-Shopify-Topic"

# Topics whose payload is a full Order resource.
ORDER_TOPICS = frozenset(
    {
        "orders/create",
        "orders/updated",
        "orders/paid",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
    }
)


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class Shopify(JsonSource):
    name: ClassVar[str] = "shopify"
    kept_headers: ClassVar[tuple[str, ...]] = (
        TOPIC_HEADER,
        EVENT_ID_HEADER,
        WEBHOOK_ID_HEADER,
        "X-Shopify-Shop-Domain",
        "X-Shopify-Triggered-At",
        "X-Shopify-API-Version",
    )

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        presented = headers.get(SIGNATURE_HEADER)
        if not presented:
            raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
        given = presented.strip().encode()
        # Every secret is tried (old and new during a rotation) without short-circuiting on the
        # first match, so timing does not reveal which one signed.
        matched = False
        for secret in secrets:
            matched |= hmac.compare_digest(sign(secret, body).encode(), given)
        if not matched:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        event_id = headers.get(EVENT_ID_HEADER) or headers.get(WEBHOOK_ID_HEADER)
        if not event_id:
            raise MalformedPayload(f"missing {EVENT_ID_HEADER} (and {WEBHOOK_ID_HEADER}) header")
        topic = headers.get(TOPIC_HEADER)
        if not topic:
            raise MalformedPayload(f"missing {TOPIC_HEADER} header")
        if not isinstance(payload, dict):
            raise MalformedPayload("Shopify webhook body must be a JSON object")
        return Delivery(source_event_id=event_id.strip(), topic=topic.strip())

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"status": "duplicate" if duplicate else "accepted", "event_id": delivery.source_event_id})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if message.topic not in ORDER_TOPICS:
            raise NormalisationError(self.name, f"unsupported topic {message.topic!r}")
        try:
            order = _order(payload)
            return [observation(self.name, message, "order", f"shopify:{order.order_id}", order, payload["updated_at"])]
        except (KeyError, TypeError, ValueError, InvalidOperation, ValidationError) as exc:
            raise NormalisationError(self.name, f"{message.topic} payload is not an order: {_describe(exc)}") from exc


def _order(p: dict[str, Any]) -> Order:
    maps = status_maps("shopify")
    currency = p["currency"]
    payment = maps.lookup("payment_status", p.get("financial_status"))
    fulfillment = maps.lookup("fulfillment_status", p.get("fulfillment_status"))
    if payment is None:
        raise ValueError(f"unknown financial_status {p.get('financial_status')!r}")
    if fulfillment is None:
        raise ValueError(f"unknown fulfillment_status {p.get('fulfillment_status')!r}")
    status = "cancelled" if p.get("cancelled_at") else "closed" if p.get("closed_at") else "open"
    customer = p.get("customer") or {}
    tags = tuple(sorted(t.strip() for t in (p.get("tags") or "").split(",") if t.strip()))
    return Order(
        order_id=str(p["id"]),
        order_number=str(p.get("name") or p["order_number"]),
        channel="shopify",
        status=status,
        payment_status=payment,
        fulfillment_status=fulfillment,
        total=Money(amount=Decimal(str(p["total_price"])), currency=currency),
        customer_email=p.get("email") or customer.get("email"),
        customer_phone=p.get("phone") or customer.get("phone"),
        customer_name=" ".join(x for x in (customer.get("first_name"), customer.get("last_name")) if x) or None,
        customer_source_id=str(customer["id"]) if customer.get("id") else None,
        purchased_at=p.get("processed_at") or p["created_at"],
        lines=tuple(
            OrderLine(
                line_id=str(li["id"]),
                sku=li.get("sku") or None,
                title=li.get("title"),
                model=li.get("variant_title") or None,
                quantity=int(li["quantity"]),
                unit_price=Money(amount=Decimal(str(li["price"])), currency=currency),
            )
            for li in p.get("line_items", [])
        ),
        tags=tags,
        note=p.get("note"),
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)
