"""Canonical model: what every source is normalised into and what the sync engine merges.

Money is ``Decimal`` plus an ISO-4217 currency; every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Origin = Literal["webhook", "reconcile", "backfill", "replay", "automation"]
EntityType = Literal["order", "after_sales_case", "shipment", "ticket", "customer", "stock"]


class Frozen(BaseModel):
    # built on first use, not at import: each function validates a few of these models, and building
    # all of them was most of its cold start
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Money(Frozen):
    amount: Decimal
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


PaymentStatus = Literal["pending", "authorized", "partially_paid", "paid", "partially_refunded", "refunded", "voided"]
FulfillmentStatus = Literal["unfulfilled", "partially_fulfilled", "fulfilled", "restocked"]
OrderStatus = Literal["open", "closed", "cancelled", "deleted"]  # deleted: removed at the source (may be restored)
WarrantyStatus = Literal["in_warranty", "extended", "expired", "void", "none"]


class OrderLine(Frozen):
    line_id: str
    sku: str | None = None
    title: str | None = None
    model: str | None = None
    serial_number: str | None = None
    quantity: Annotated[int, Field(ge=0)]
    unit_price: Money
    warranty_status: WarrantyStatus | None = None
    warranty_ends_on: date | None = None  # the last day covered, in the shop's calendar


class LineDelta(Frozen):
    line_id: str
    delta: Annotated[int, Field(gt=0)]


class OrderEdit(Frozen):
    """The latest edit of an order after it was placed (lines added or removed), as the shop reported it."""

    edit_id: str
    edited_at: UtcDatetime
    added: tuple[LineDelta, ...] = ()
    removed: tuple[LineDelta, ...] = ()
    staff_note: str | None = None


class Address(Frozen):
    """A postal address (personal data: masked in what operators see, never logged)."""

    name: str | None = None
    phone: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    province: str | None = None
    postal_code: str | None = None
    country_code: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None


class Order(Frozen):
    """An order as the shop sold it. Field names are the sync engine's field names."""

    order_id: str
    # The rest may be absent: a source that reports only what changed (an ERP closing an order) sends
    # a partial observation, and only the fields it sent are merged.
    order_number: str | None = None
    channel: str | None = None
    status: OrderStatus | None = None
    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None
    total: Money | None = None
    customer_email: str | None = None
    customer_phone: str | None = None
    customer_name: str | None = None
    customer_source_id: str | None = None  # the source's own customer id, for identity resolution
    customer_id: str | None = None  # set by sync: the resolved Aftersync customer id
    shipping_address: Address | None = None  # where a replacement goes (exchanges)
    purchased_at: UtcDatetime | None = None
    lines: tuple[OrderLine, ...] = ()
    tags: tuple[str, ...] = ()
    note: str | None = None
    last_edit: OrderEdit | None = None


CaseKind = Literal["refund", "return", "exchange", "repair"]
CaseStatus = Literal[
    "requested",
    "approved",
    "rejected",
    "received",
    "inspected",
    "refunded",
    "exchanged",
    "repaired",
    "closed",
    "cancelled",
]
RefundScenario = Literal[
    "normal_return",
    "refund_without_restock",
    "cancel_before_fulfilment",
    "appeasement",
    "shipping_refund",
    "lost_in_shipment",
    "gift_card",
    "exchange",
]
TrackingStatus = Literal[
    "info_received",
    "in_transit",
    "out_for_delivery",
    "ready_for_pickup",
    "failed_attempt",
    "delivered",
    "exception",
    "expired",
]
TicketStatus = Literal["new", "open", "pending", "on_hold", "solved", "closed"]


class CaseItem(Frozen):
    sku: str
    quantity: Annotated[int, Field(gt=0)]
    serial_number: str | None = None
    restock: bool = True


class ReplacementItem(Frozen):
    sku: str
    quantity: Annotated[int, Field(gt=0)]
    title: str | None = None


class AfterSalesCase(Frozen):
    """A refund, return, exchange or repair. ``status`` follows the after-sales state machine."""

    case_id: str
    kind: CaseKind
    status: CaseStatus | None = None  # absent in a partial observation (e.g. only the items changed)
    order_id: str | None = None
    scenario: RefundScenario | None = None
    amount: Money | None = None
    items: tuple[CaseItem, ...] = ()
    # An exchange: what the customer gets instead, shipped out of stock once the return is received
    replacements: tuple[ReplacementItem, ...] = ()
    reason: str | None = None
    customer_ref: str | None = None  # the source's own customer id
    customer_id: str | None = None  # set by sync: the resolved Aftersync customer id


class Checkpoint(Frozen):
    at: UtcDatetime
    status: TrackingStatus
    location: str | None = None
    message: str | None = None


class Shipment(Frozen):
    shipment_id: str  # "<carrier>:<tracking number>"
    carrier: str
    tracking_number: str
    status: TrackingStatus
    order_id: str | None = None
    checkpoints: tuple[Checkpoint, ...] = ()


class TicketLogEntry(Frozen):
    at: UtcDatetime
    actor: str
    action: str
    note: str | None = None


class TicketCost(Frozen):
    kind: str
    amount: Money


class Ticket(Frozen):
    """A customer-service work order."""

    ticket_id: str
    status: TicketStatus | None = None  # absent in a partial observation (dispatch sets only the assignee)
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    assignee: str | None = None
    subject: str | None = None
    requester_ref: str | None = None  # the source's own id of the requester
    customer_id: str | None = None  # set by sync: the resolved Aftersync customer id
    order_id: str | None = None
    tags: tuple[str, ...] = ()
    operation_log: tuple[TicketLogEntry, ...] = ()
    costs: tuple[TicketCost, ...] = ()


class Customer(Frozen):
    """A person as one source knows them; identity keys are resolved to one customer id."""

    source_customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    wecom_external_user_id: str | None = None
    openid: str | None = None
    member_card_no: str | None = None


class InventoryAdjustment(Frozen):
    """A stock movement. Merged into the ``stock`` entity ``<sku>@<location>`` as an immutable entry."""

    adjustment_id: str
    sku: str
    location: str
    delta: int
    reason: Literal["return_restock", "exchange_out", "sale", "count", "damage", "other"]
    reference: str | None = None


Entity = Order | AfterSalesCase | Shipment | Ticket | Customer | InventoryAdjustment

ENTITY_MODELS: dict[str, type[BaseModel]] = {
    "order": Order,
    "after_sales_case": AfterSalesCase,
    "shipment": Shipment,
    "ticket": Ticket,
    "customer": Customer,
    "stock": InventoryAdjustment,
}


class ObservedEntity(Frozen):
    """A source reported the state of one entity at ``occurred_at`` (the source's own clock).

    Put on the bus by normalise as ``{entity_type}.observed``; merged by the sync functions.
    """

    event_id: str  # deterministic from the source's dedupe key: a replay carries the same id
    tenant: str
    source: str
    source_event_id: str
    topic: str
    entity_type: EntityType
    entity_id: str
    occurred_at: UtcDatetime  # the source's updated_at: the clock that orders field values
    received_at: UtcDatetime
    origin: Origin
    entity: Entity

    @model_validator(mode="before")
    @classmethod
    def _entity_matches_type(cls, data: Any) -> Any:
        """Validate ``entity`` with the model its ``entity_type`` names (no guessing between models)."""
        if isinstance(data, dict) and "entity_type" in data and isinstance(data.get("entity"), dict):
            model = ENTITY_MODELS.get(data["entity_type"])
            if model is not None:
                data = {**data, "entity": model.model_validate(data["entity"])}
        return data

    @model_validator(mode="after")
    def _entity_type_consistent(self) -> ObservedEntity:
        if not isinstance(self.entity, ENTITY_MODELS[self.entity_type]):
            raise ValueError(f"entity is a {type(self.entity).__name__}, not a {self.entity_type}")
        return self


class InboxMessage(Frozen):
    """The raw envelope that ingest puts on the inbox queue.

    ``body`` is the exact request body as text. An envelope too large for a queue message is put in
    the archive whole at ``archive_key`` and travels without its body; otherwise ``archive_key`` is
    ``None`` (normalise archives the inbox's envelopes in batches).
    """

    source: str
    tenant: str
    dedupe_key: str
    source_event_id: str
    topic: str
    received_at: UtcDatetime
    origin: Origin = "webhook"
    headers: dict[str, str]
    body_sha256: str
    archive_key: str | None = None
    body: str | None = None


class EntityChanged(Frozen):
    """Published after a state change was committed: which fields changed, to which version."""

    tenant: str
    entity_type: EntityType
    entity_id: str
    version: int
    event_id: str
    origin_source: str
    occurred_at: UtcDatetime
    changed: dict[str, object]


def utcnow() -> datetime:
    return datetime.now(UTC)
