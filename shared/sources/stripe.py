"""Stripe refunds: ``Stripe-Signature: t=…,v1=…`` over ``"{t}.{body}"``, 300 s tolerance, dedupe on the
event id. ``refund.*`` and ``charge.refunded`` become after-sales cases of kind ``refund``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import AfterSalesCase, CaseStatus, InboxMessage, Money, ObservedEntity
from shared.sources import wire
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation
from shared.sources.mappings import load_mapping

SIGNATURE_HEADER = "Stripe-Signature"
TOLERANCE_SECONDS = 300
TOPICS = frozenset({"charge.refunded", "refund.created", "refund.updated", "refund.failed"})


class StripeMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    refund_status: dict[str, CaseStatus]
    zero_decimal_currencies: frozenset[str]


@cache
def maps() -> StripeMaps:
    return load_mapping("stripe", StripeMaps)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Stripe(JsonSource):
    name: ClassVar[str] = "stripe"
    kept_headers: ClassVar[tuple[str, ...]] = ()

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
        parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
        timestamps = [v for k, v in parts if k.strip() == "t"]
        given = [v.strip().encode() for k, v in parts if k.strip() == "v1"]
        if len(timestamps) != 1 or not given:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} must carry one t= and at least one v1=")
        timestamp = wire.epoch_seconds(timestamps[0], f"{SIGNATURE_HEADER} t=")
        if abs(now.timestamp() - timestamp) > TOLERANCE_SECONDS:
            raise SignatureInvalid(f"{SIGNATURE_HEADER} timestamp is outside the {TOLERANCE_SECONDS} s tolerance")
        matched = False
        for secret in secrets:
            expected = sign(secret, body, timestamp).split("v1=", 1)[1].encode()
            for candidate in given:
                matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureInvalid(f"no v1 signature in {SIGNATURE_HEADER} matches the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        if (
            not isinstance(payload, dict)
            or not isinstance(payload.get("id"), str)
            or not isinstance(payload.get("type"), str)
        ):
            raise MalformedPayload("a Stripe event needs string 'id' and 'type'")
        return Delivery(source_event_id=payload["id"], topic=payload["type"])

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"received": True})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if message.topic not in TOPICS:
            raise NormalisationError(self.name, f"unsupported event type {message.topic!r}")
        try:
            obj = payload["data"]["object"]
            occurred_at = datetime.fromtimestamp(int(payload["created"]), UTC)
            if message.topic == "charge.refunded":
                refunds = (obj.get("refunds") or {}).get("data") or []
                cases = [_case(r, obj) for r in refunds] or [_charge_case(obj)]
            else:
                cases = [_case(obj, None)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} payload is not a refund: {describe_error(exc)}"
            ) from exc
        return [
            observation(self.name, message, "after_sales_case", f"stripe:{case.case_id}", case, occurred_at)
            for case in cases
        ]


def _money(amount: int, currency: str) -> Money:
    code = currency.upper()
    value = Decimal(amount) if code in maps().zero_decimal_currencies else Decimal(amount) / 100
    return Money(amount=value, currency=code)


def _case(refund: dict[str, Any], charge: dict[str, Any] | None) -> AfterSalesCase:
    metadata = refund.get("metadata") or (charge or {}).get("metadata") or {}
    return AfterSalesCase(
        case_id=refund["id"],
        kind="refund",
        status=maps().refund_status[refund["status"]],
        order_id=metadata.get("order_id"),
        scenario=metadata.get("scenario"),
        amount=_money(int(refund["amount"]), refund["currency"]),
        reason=refund.get("reason") or refund.get("failure_reason"),
        customer_ref=(charge or {}).get("customer") or metadata.get("customer_id"),
    )


def _charge_case(charge: dict[str, Any]) -> AfterSalesCase:
    """API versions without expanded refunds: one case per charge for its cumulative refunded amount."""
    metadata = charge.get("metadata") or {}
    return AfterSalesCase(
        case_id=f"charge:{charge['id']}",
        kind="refund",
        status="refunded",
        order_id=metadata.get("order_id"),
        amount=_money(int(charge["amount_refunded"]), charge["currency"]),
        customer_ref=charge.get("customer"),
    )
