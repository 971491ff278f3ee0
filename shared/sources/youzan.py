"""Youzan (有赞): one message per request, ``msg`` is URL-encoded JSON; ``test: true`` messages are
health checks (acked, not kept); dedupe on ``msg_id``, else (type, id, version) — ``version`` is the
message's epoch-seconds clock, so a higher version wins the merge. Signing: ``shared.sources.china_shops``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError
from shared.models import (
    AfterSalesCase,
    CaseKind,
    CaseStatus,
    InboxMessage,
    Money,
    ObservedEntity,
    Order,
    Shipment,
)
from shared.sources import wire
from shared.sources.base import (
    Ack,
    Delivery,
    Headers,
    JsonSource,
    describe_error,
    observation,
)
from shared.sources.china_shops import (
    MESSAGE_ERRORS,
    SHOP_ACK,
    OrderCodes,
    china_time,
    epoch_time,
    md5_sign,
    verify_pair_signature,
)
from shared.sources.mappings import load_mapping

# --- Youzan -------------------------------------------------------------------------------------
YOUZAN_SIGNATURE = "Event-Sign"


YOUZAN_TEST = re.compile(rb'"test"\s*:\s*true\b')


YOUZAN_TEST_MAX_BYTES = 2048
# A trade as youzan.trades.sold.get lists it and a refund as youzan.trade.refund.search does (pulled by
# reconciliation, shared/pulls/youzan_cloud.py): ``{"order_info": {"tid", "status", "update_time", …},
# "pay_info": {"payment"}}``; ``{"refund_id", "tid", "status", "return_goods", "refund_fee", "modified"}``
API_TRADE = "api:trade"
API_REFUND = "api:refund"


class YouzanMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    trade_status: dict[str, OrderCodes]
    refund_status: dict[str, CaseStatus]
    refund_type: dict[str, CaseKind]


@cache
def youzan_maps() -> YouzanMaps:
    return load_mapping("youzan", YouzanMaps)


class Youzan(JsonSource):
    name: ClassVar[str] = "youzan"
    kept_headers: ClassVar[tuple[str, ...]] = ("Event-Type", "Client-Id")

    def ping(self, headers: Headers, body: bytes) -> Ack | None:
        # Youzan checks a push URL with small unsigned messages marked "test": true and wants the usual
        # answer. They are recognised by a bounded byte pattern, not by parsing: nothing is parsed before
        # the signature is checked, and a ping only answers (it keeps nothing).
        if len(body) <= YOUZAN_TEST_MAX_BYTES and YOUZAN_TEST.search(body):
            return Ack(200, SHOP_ACK)
        return None

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        verify_pair_signature(YOUZAN_SIGNATURE, headers.get(YOUZAN_SIGNATURE), secrets, body, md5_sign)

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) or not payload["type"]:
            raise MalformedPayload("a Youzan message needs a 'type'")
        if payload.get("msg_id"):
            return Delivery(source_event_id=str(payload["msg_id"]), topic=payload["type"])
        if payload.get("id") is None or payload.get("version") is None:
            raise MalformedPayload("a Youzan message needs 'msg_id', or 'id' and 'version'")
        return Delivery(
            source_event_id=f"{payload['type']}:{payload['id']}:{payload['version']}", topic=payload["type"]
        )

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, SHOP_ACK)

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if message.topic == API_TRADE:
            return [self._listed(message, payload)]
        if message.topic == API_REFUND:
            return [self._listed_refund(message, payload)]
        try:
            msg = wire.loads(unquote_plus(payload["msg"]), "msg")
            at = epoch_time(payload["version"]) if payload.get("version") else china_time(msg["update_time"])
            maps = youzan_maps()
            if message.topic == "TRADE_ORDER_STATE":
                codes = maps.trade_status[payload.get("status") or msg["status"]]
                order = Order(
                    order_id=str(msg["tid"]),
                    channel="youzan",
                    **codes.model_dump(exclude_none=True),
                    **(
                        {"total": Money(amount=Decimal(str(msg["payment"])), currency="CNY")}
                        if "payment" in msg
                        else {}
                    ),
                )
                return [observation(self.name, message, "order", f"youzan:{order.order_id}", order, at)]
            if message.topic == "TRADE_ORDER_REFUND":
                case = AfterSalesCase(
                    case_id=str(msg["refund_id"]),
                    kind=maps.refund_type[msg.get("refund_type") or "REFUND_ONLY"],
                    status=maps.refund_status[payload.get("status") or msg["status"]],
                    order_id=f"{msg['tid']}",
                    amount=Money(amount=Decimal(str(msg["refunded_fee"])), currency="CNY"),
                    reason=msg.get("refund_reason") or None,
                )
                return [observation(self.name, message, "after_sales_case", f"youzan:{case.case_id}", case, at)]
            if message.topic == "TRADE_ORDER_EXPRESS":
                carrier = str(msg["company_code"]).strip().lower()
                shipment = Shipment(
                    shipment_id=f"{carrier}:{msg['express_no']}",
                    carrier=carrier,
                    tracking_number=str(msg["express_no"]),
                    status="info_received",
                    order_id=str(msg["tid"]),
                )
                return [observation(self.name, message, "shipment", shipment.shipment_id, shipment, at)]
        except MESSAGE_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} message is not usable: {describe_error(exc)}"
            ) from exc
        raise NormalisationError(self.name, f"unsupported message type {message.topic!r}")

    def _listed(self, message: InboxMessage, trade: Any) -> ObservedEntity:
        """A listed trade: the order a TRADE_ORDER_STATE push of the same status would give."""
        try:
            info, pay = trade["order_info"], trade.get("pay_info") or {}
            order = Order(
                order_id=str(info["tid"]),
                channel="youzan",
                **youzan_maps().trade_status[info["status"]].model_dump(exclude_none=True),
                **({"total": Money(amount=Decimal(str(pay["payment"])), currency="CNY")} if "payment" in pay else {}),
            )
            at = china_time(info["update_time"])
            return observation(self.name, message, "order", f"youzan:{order.order_id}", order, at)
        except MESSAGE_ERRORS as exc:
            raise NormalisationError(self.name, f"a listed trade is not usable: {describe_error(exc)}") from exc

    def _listed_refund(self, message: InboxMessage, refund: Any) -> ObservedEntity:
        """A listed refund: the case its TRADE_ORDER_REFUND push would give (a return when goods come back)."""
        try:
            case = AfterSalesCase(
                case_id=str(refund["refund_id"]),
                kind="return" if refund.get("return_goods") else "refund",
                status=youzan_maps().refund_status[refund["status"]],
                order_id=str(refund["tid"]),
                amount=Money(amount=Decimal(str(refund["refund_fee"])), currency="CNY"),
            )
            at = china_time(refund["modified"])
            return observation(self.name, message, "after_sales_case", f"youzan:{case.case_id}", case, at)
        except MESSAGE_ERRORS as exc:
            raise NormalisationError(self.name, f"a listed refund is not usable: {describe_error(exc)}") from exc
