"""Douyin shop (抖店): a JSON array of ``{tag, msg_id, data}`` per request; each message is its own
delivery with its own dedupe key (``msg_id``) and body, split at ingest. ``data`` is a JSON string.
The tag and status codes in ``mappings/douyin.json`` follow the Doudian push documentation as far as
it is public; they are unconfirmed against a live shop (see PLATFORMS.md), and so is the
``sign-method: hmac-sha256`` variant (HMAC-SHA256 keyed by the secret over the same string).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import (
    AfterSalesCase,
    CaseStatus,
    InboxMessage,
    Money,
    ObservedEntity,
    Order,
)
from shared.sources.base import (
    Ack,
    Delivery,
    Headers,
    JsonSource,
    Part,
    describe_error,
    observation,
    parse_json,
)
from shared.sources.china_shops import (
    MESSAGE_ERRORS,
    SHOP_ACK,
    CaseType,
    OrderCodes,
    epoch_time,
    hmac_sign,
    md5_sign,
    verify_pair_signature,
)
from shared.sources.mappings import load_mapping

# --- Douyin shop --------------------------------------------------------------------------------
DOUYIN_SIGNATURE = "event-sign"


DOUYIN_SIGN_METHOD = "sign-method"


DOUYIN_SIGNERS = {"md5": md5_sign, "hmac-sha256": hmac_sign}
# An order as order.searchList lists it (pulled by reconciliation, shared/pulls/douyin_orders.py): the
# push's order fields, with ``order_id`` for ``p_id``
API_ORDER = "api:order"


class DouyinMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    order_tags: frozenset[str]
    aftersale_tags: dict[str, CaseStatus]
    order_status: dict[str, OrderCodes]
    aftersale_type: dict[str, CaseType]


@cache
def douyin_maps() -> DouyinMaps:
    return load_mapping("douyin", DouyinMaps)


class Douyin(JsonSource):
    name: ClassVar[str] = "douyin"
    kept_headers: ClassVar[tuple[str, ...]] = ("app-id", DOUYIN_SIGN_METHOD)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        method = (headers.get(DOUYIN_SIGN_METHOD) or "md5").strip().lower()
        if method not in DOUYIN_SIGNERS:
            raise SignatureInvalid(f"{DOUYIN_SIGN_METHOD} {method[:20]!r} is not one of {sorted(DOUYIN_SIGNERS)}")
        verify_pair_signature(DOUYIN_SIGNATURE, headers.get(DOUYIN_SIGNATURE), secrets, body, DOUYIN_SIGNERS[method])

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        return self.split(headers, payload)[0].delivery

    def split(self, headers: Headers, payload: Any) -> list[Part]:
        if not isinstance(payload, list) or not payload:
            raise MalformedPayload("a Douyin push is a non-empty JSON array of {tag, msg_id, data}")
        parts = []
        for index, item in enumerate(payload):
            if not isinstance(item, dict) or not item.get("msg_id") or item.get("tag") in (None, ""):
                raise MalformedPayload(f"message {index} needs 'tag' and 'msg_id'")
            body = json.dumps(item, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            parts.append(Part(Delivery(source_event_id=str(item["msg_id"]), topic=f"tag:{item['tag']}"), body))
        return parts

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, SHOP_ACK)

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        maps = douyin_maps()
        if message.topic == API_ORDER:
            try:
                return [self._order(message, {**payload, "p_id": payload["order_id"]}, maps)]
            except MESSAGE_ERRORS as exc:
                raise NormalisationError(self.name, f"a listed order is not usable: {describe_error(exc)}") from exc
        try:
            tag = str(payload["tag"])
            data = payload["data"]
            data = parse_json(data.encode()) if isinstance(data, str) else data
            if tag in maps.order_tags:
                return [self._order(message, data, maps)]
            if tag in maps.aftersale_tags:
                return [self._case(message, data, maps.aftersale_tags[tag], maps)]
        except MESSAGE_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} message is not usable: {describe_error(exc)}"
            ) from exc
        raise NormalisationError(self.name, f"unsupported message tag {tag!r}")

    def _order(self, message: InboxMessage, data: dict[str, Any], maps: DouyinMaps) -> ObservedEntity:
        codes = maps.order_status[str(data["order_status"])]
        values: dict[str, Any] = {
            "order_id": str(data["p_id"]),
            "channel": "douyin",
            **codes.model_dump(exclude_none=True),
        }
        if data.get("pay_amount") is not None:  # fen
            values["total"] = Money(amount=Decimal(int(data["pay_amount"])) / 100, currency="CNY")
        if data.get("create_time"):
            values["purchased_at"] = epoch_time(data["create_time"])
        order = Order(**values)
        at = _first_time(data, ("update_time", "complete_time", "cancel_time", "pay_time", "create_time"), message)
        return observation(self.name, message, "order", f"douyin:{order.order_id}", order, at)

    def _case(
        self, message: InboxMessage, data: dict[str, Any], status: CaseStatus, maps: DouyinMaps
    ) -> ObservedEntity:
        kind = maps.aftersale_type[str(data["aftersale_type"])]
        case = AfterSalesCase(
            case_id=str(data["aftersale_id"]),
            kind=kind.kind,
            scenario=kind.scenario,
            status=status,
            order_id=str(data["p_id"]),
            amount=Money(amount=Decimal(int(data["refund_amount"])) / 100, currency="CNY")
            if data.get("refund_amount") is not None
            else None,
        )
        at = _first_time(data, ("update_time", "apply_time"), message)
        return observation(self.name, message, "after_sales_case", f"douyin:{case.case_id}", case, at)


def _first_time(data: dict[str, Any], names: tuple[str, ...], message: InboxMessage) -> datetime:
    for name in names:
        if data.get(name):
            return epoch_time(data[name])
    return message.received_at
