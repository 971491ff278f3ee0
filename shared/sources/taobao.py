"""Taobao / Tmall (淘宝 / 天猫): a pulled source, never pushed.

Taobao's message service (TMC) is a long-lived connection a serverless endpoint cannot hold, so the
hub pulls the trades and refunds a shop changed through the Taobao Open Platform (TOP) API
(``shared/pulls/taobao_top.py``, run by the reconcile function on a schedule) and admits each record
like a webhook, with its topic saying what it is:

- ``taobao.trade``: a trade of ``taobao.trades.sold.increment.get`` → an order ``taobao:<tid>``;
- ``taobao.refund``: a refund of ``taobao.refunds.receive.get`` → an after-sales case
  ``taobao:<refund_id>`` on the order ``<tid>``: a return where goods come back
  (``has_good_return``), else a refund.

Status codes are data (``mappings/taobao.json``); an unknown one quarantines the record with its name.
Times are ``yyyy-MM-dd HH:mm:ss`` in China Standard Time; ``modified`` orders the merge. Amounts are
yuan strings (CNY). Tmall shops use the same API and codes; a Tmall trade's ``type`` starts ``tmall``
and its channel says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import AfterSalesCase, CaseStatus, InboxMessage, Money, ObservedEntity, Order
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation
from shared.sources.china_shops import OrderCodes, china_time
from shared.sources.mappings import load_mapping

TRADE_TOPIC = "taobao.trade"
REFUND_TOPIC = "taobao.refund"


class TaobaoMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    trade_status: dict[str, OrderCodes]
    refund_status: dict[str, CaseStatus]


@cache
def taobao_maps() -> TaobaoMaps:
    return load_mapping("taobao", TaobaoMaps)


def _yuan(value: Any) -> Money:
    return Money(amount=Decimal(str(value)), currency="CNY")


class Taobao(JsonSource):
    name: ClassVar[str] = "taobao"
    kept_headers: ClassVar[tuple[str, ...]] = ()

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        raise SignatureInvalid("Taobao/Tmall is pulled through the TOP API, never pushed to a webhook")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        raise MalformedPayload("Taobao/Tmall records arrive by pull (reconcile), not as deliveries")

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        try:
            maps = taobao_maps()
            at = china_time(str(payload["modified"]))
            if message.topic == TRADE_TOPIC:
                tid = str(payload["tid"])
                order = Order(
                    order_id=tid,
                    channel="tmall" if str(payload.get("type") or "").startswith("tmall") else "taobao",
                    **maps.trade_status[payload["status"]].model_dump(exclude_none=True),
                    **({"total": _yuan(payload["payment"])} if payload.get("payment") is not None else {}),
                    **({"purchased_at": china_time(payload["created"])} if payload.get("created") else {}),
                    **({"customer_source_id": str(payload["buyer_open_uid"])} if payload.get("buyer_open_uid") else {}),
                )
                return [observation(self.name, message, "order", f"taobao:{tid}", order, at)]
            if message.topic == REFUND_TOPIC:
                case = AfterSalesCase(
                    case_id=str(payload["refund_id"]),
                    kind="return" if payload.get("has_good_return") in (True, "true") else "refund",
                    status=maps.refund_status[payload["status"]],
                    order_id=str(payload["tid"]),
                    amount=_yuan(payload["refund_fee"]),
                    reason=payload.get("reason") or None,
                )
                return [observation(self.name, message, "after_sales_case", f"taobao:{case.case_id}", case, at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"{message.topic} record is not usable: {describe_error(exc)}") from exc
        raise NormalisationError(self.name, f"unsupported record type {message.topic!r}")
