"""Shopify webhooks: HMAC-SHA256 (base64) over the raw body, dedupe on ``X-Shopify-Event-Id``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid, UnusableValue
from shared.models import (
    Address,
    AfterSalesCase,
    CaseItem,
    InboxMessage,
    LineDelta,
    Money,
    ObservedEntity,
    Order,
    OrderEdit,
    OrderLine,
    RefundScenario,
    ReplacementItem,
    Shipment,
)
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation
from shared.sources.mappings import status_maps
from shared.sources.tracking import tracking_maps

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


FULFILLMENT_TOPICS = frozenset({"fulfillments/create", "fulfillments/update"})
RETURN_TOPICS = frozenset(
    {
        "returns/request",
        "returns/approve",
        "returns/decline",
        "returns/cancel",
        "returns/close",
        "returns/reopen",
        "returns/process",
        "returns/update",
    }
)
# What a refund line's restock type says about the after-sales scenario.
RESTOCK_SCENARIO: dict[str, RefundScenario] = {
    "return": "normal_return",
    "no_restock": "refund_without_restock",
    "cancel": "cancel_before_fulfilment",
    "legacy_restock": "normal_return",
}


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
        try:
            if message.topic in ORDER_TOPICS:
                order = _order(payload)
                at = payload["updated_at"]
                return [observation(self.name, message, "order", f"shopify:{order.order_id}", order, at)]
            if message.topic == "refunds/create":
                case = _refund(payload)
                at = payload.get("processed_at") or payload["created_at"]
                return [observation(self.name, message, "after_sales_case", f"shopify:refund:{case.case_id}", case, at)]
            if message.topic in FULFILLMENT_TOPICS:
                shipment = _fulfillment(payload)
                at = payload.get("updated_at") or payload["created_at"]
                return [observation(self.name, message, "shipment", shipment.shipment_id, shipment, at)]
            if message.topic in RETURN_TOPICS:
                case = _return(message.topic, payload)
                # a pulled return carries its order's change time; a webhook's clock is its trigger time
                at = payload.get("updated_at") or _triggered_at(message)
                return [observation(self.name, message, "after_sales_case", f"shopify:return:{case.case_id}", case, at)]
            if message.topic == "orders/edited":
                edited = _order_edit(payload["order_edit"])
                at = edited.last_edit.edited_at  # type: ignore[union-attr]
                return [observation(self.name, message, "order", f"shopify:{edited.order_id}", edited, at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} payload is not usable: {describe_error(exc)}"
            ) from exc
        raise NormalisationError(self.name, f"unsupported topic {message.topic!r}")


def _order(p: dict[str, Any]) -> Order:
    maps = status_maps("shopify")
    currency = p["currency"]
    payment = maps.lookup("payment_status", p.get("financial_status"))
    fulfillment = maps.lookup("fulfillment_status", p.get("fulfillment_status"))
    if payment is None:
        raise UnusableValue("financial_status")
    if fulfillment is None:
        raise UnusableValue("fulfillment_status")
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
        shipping_address=_address(p.get("shipping_address")),
    )


def _address(a: Any) -> Address | None:
    if not isinstance(a, dict) or not any(a.get(k) for k in ("address1", "city", "zip")):
        return None
    values = {
        "name": a.get("name") or " ".join(x for x in (a.get("first_name"), a.get("last_name")) if x),
        "phone": a.get("phone"),
        "line1": a.get("address1"),
        "line2": a.get("address2"),
        "city": a.get("city"),
        "province": a.get("province"),
        "postal_code": a.get("zip"),
        "country_code": str(a["country_code"]).upper() if a.get("country_code") else None,
    }
    return Address(**{k: str(v) for k, v in values.items() if v})  # what is absent stays unset


def _refund(p: dict[str, Any]) -> AfterSalesCase:
    lines = p.get("refund_line_items") or []
    restock_types = {li.get("restock_type") for li in lines}
    # A refund whose transactions are not settled yet (pending) is approved, not refunded: its amount is
    # still known, and the payment step is what the after-sales automation then asks for.
    refunds = [t for t in p.get("transactions") or [] if t.get("kind") == "refund" and t.get("status") != "failure"]
    paid = [t for t in refunds if t.get("status") == "success"]
    currency = refunds[0]["currency"] if refunds else None
    amount = sum((Decimal(str(t["amount"])) for t in (paid or refunds)), Decimal(0))
    shipping_only = not lines and any(a.get("kind") == "shipping_refund" for a in p.get("order_adjustments") or [])
    scenario: RefundScenario = (
        "shipping_refund"
        if shipping_only
        else "appeasement"
        if not lines
        else RESTOCK_SCENARIO.get(
            sorted(t for t in restock_types if t)[0] if any(restock_types) else "", "refund_without_restock"
        )
    )
    return AfterSalesCase(
        case_id=str(p["id"]),
        kind="return" if "return" in restock_types else "refund",
        status="refunded" if paid else "approved",
        order_id=str(p["order_id"]),
        scenario=scenario,
        amount=Money(amount=amount, currency=currency) if currency else None,
        items=tuple(
            CaseItem(
                sku=li["line_item"].get("sku") or str(li["line_item_id"]),
                quantity=int(li["quantity"]),
                restock=li.get("restock_type") in ("return", "cancel", "legacy_restock"),
            )
            for li in lines
        ),
        reason=p.get("note") or None,
    )


def _fulfillment(p: dict[str, Any]) -> Shipment:
    number = p.get("tracking_number") or (p.get("tracking_numbers") or [None])[0]
    if not number:
        raise UnusableValue("tracking_number", "missing: a fulfillment needs one")
    carrier = (p.get("tracking_company") or "unknown").strip().lower().replace(" ", "-")
    status = tracking_maps().status("shopify", p["shipment_status"]) if p.get("shipment_status") else "info_received"
    return Shipment(
        shipment_id=f"{carrier}:{number}",
        carrier=carrier,
        tracking_number=number,
        status=status,
        order_id=str(p["order_id"]),
    )


def _triggered_at(message: InboxMessage) -> str:
    """Return payloads carry no update time; Shopify's trigger time orders them (else our receipt)."""
    return message.headers.get("x-shopify-triggered-at") or message.received_at.isoformat()


def _gid_tail(value: Any) -> str | None:
    return str(value).rsplit("/", 1)[-1] if value else None


def _return(topic: str, p: dict[str, Any]) -> AfterSalesCase:
    """A returns/* payload. The topic says what happened; ``returns/update`` carries its own status, if any."""
    maps = status_maps("shopify")
    return_id = str(p["id"]) if p.get("id") else _gid_tail(p.get("admin_graphql_api_id"))
    if not return_id:
        raise UnusableValue("id", "missing (and no admin_graphql_api_id)")
    status = maps.return_topic.get(topic)
    if status is None and p.get("status") is not None:
        status = maps.return_status.get(str(p["status"]).lower())
        if status is None:
            raise UnusableValue("status")
    order = p.get("order") or {}
    order_id = p.get("order_id") or order.get("id") or _gid_tail(order.get("admin_graphql_api_id"))
    lines = p.get("return_line_items")
    reasons = sorted(
        {str(li["return_reason"]) for li in lines or [] if isinstance(li, dict) and li.get("return_reason")}
    )
    decline = p.get("decline") or {}
    exchange = p.get("exchange_line_items")
    # A return with exchange line items is an exchange: the replacement ships once the return is in.
    # Only requests and approvals carry the list; a later topic without it keeps the first kind.
    values: dict[str, Any] = {"case_id": return_id, "kind": "exchange" if exchange else "return"}
    if exchange:
        values["replacements"] = tuple(_exchange_item(x) for x in exchange)
    if status is not None:
        values["status"] = status
    if order_id:
        values["order_id"] = str(order_id)
    if isinstance(lines, list):  # returns/update sends {"removals": [...]} instead: not the item list
        values["items"] = tuple(_return_item(li) for li in lines)
    if reasons or decline.get("reason"):
        values["reason"] = ", ".join(reasons) if reasons else f"declined: {decline['reason']}"
    return AfterSalesCase(**values)


def _return_item(li: dict[str, Any]) -> CaseItem:
    line_item = (li.get("fulfillment_line_item") or {}).get("line_item") or {}
    sku = line_item.get("sku") or (str(line_item["id"]) if line_item.get("id") else None) or str(li["id"])
    return CaseItem(sku=sku, quantity=int(li["quantity"]), restock=True)


def _exchange_item(x: dict[str, Any]) -> ReplacementItem:
    line_item = x.get("line_item") or {}
    variant = x.get("variant") or line_item.get("variant") or {}
    sku = line_item.get("sku") or variant.get("sku")
    if not sku:
        raise UnusableValue("exchange_line_items.sku", "missing")
    return ReplacementItem(
        sku=str(sku),
        quantity=int(x.get("quantity") or line_item["quantity"]),
        title=line_item.get("title") or variant.get("title") or None,
    )


def _order_edit(e: dict[str, Any]) -> Order:
    """``orders/edited``: which lines were added and removed. Shopify follows up with ``orders/updated``
    carrying the new totals; the edit itself is kept as the order's ``last_edit``."""
    lines = e.get("line_items") or {}
    return Order(
        order_id=str(e["order_id"]),
        last_edit=OrderEdit(
            edit_id=str(e["id"]),
            edited_at=e["created_at"],
            added=tuple(LineDelta(line_id=str(x["id"]), delta=int(x["delta"])) for x in lines.get("additions") or []),
            removed=tuple(LineDelta(line_id=str(x["id"]), delta=int(x["delta"])) for x in lines.get("removals") or []),
            staff_note=e.get("staff_note") or None,
        ),
    )
