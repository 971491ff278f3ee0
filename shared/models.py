"""Canonical model: what every source is normalised into and what the sync engine merges.

Money is ``Decimal`` plus an ISO-4217 currency; every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Origin = Literal["webhook", "reconcile", "backfill", "replay"]
EntityType = Literal["order"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(Frozen):
    amount: Decimal
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


PaymentStatus = Literal["pending", "authorized", "partially_paid", "paid", "partially_refunded", "refunded", "voided"]
FulfillmentStatus = Literal["unfulfilled", "partially_fulfilled", "fulfilled", "restocked"]
OrderStatus = Literal["open", "closed", "cancelled"]


class OrderLine(Frozen):
    line_id: str
    sku: str | None = None
    title: str | None = None
    model: str | None = None
    serial_number: str | None = None
    quantity: Annotated[int, Field(ge=0)]
    unit_price: Money


class Order(Frozen):
    """An order as the shop sold it. Field names are the sync engine's field names."""

    order_id: str
    order_number: str
    channel: str
    status: OrderStatus
    payment_status: PaymentStatus
    fulfillment_status: FulfillmentStatus
    total: Money
    customer_email: str | None = None
    customer_phone: str | None = None
    purchased_at: UtcDatetime
    lines: tuple[OrderLine, ...] = ()
    tags: tuple[str, ...] = ()
    note: str | None = None


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
    entity: Order


class InboxMessage(Frozen):
    """The raw envelope that ingest puts on the inbox queue (and archives to S3).

    ``body`` is the exact request body as text when small enough; larger bodies are read back from
    the archive by ``archive_key``.
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
    archive_key: str
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
