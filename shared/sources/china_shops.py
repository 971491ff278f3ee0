"""Youzan (有赞) and Douyin shop (抖店): MD5-signed pushes from the two big domestic shop platforms.

Both sign ``MD5(app id + raw body + app secret)`` (hex), so a tenant's secret entry is the pair
``"<client id / app key>:<secret>"``; several pairs are accepted while a secret is being rotated.
Both expect ``{"code": 0, "msg": "success"}`` and push again until they get it.

Youzan: one message per request, ``msg`` is URL-encoded JSON; ``test: true`` messages are health
checks (acked, not kept); dedupe on ``msg_id``, else (type, id, version) — ``version`` is the
message's epoch-seconds clock, so a higher version wins the merge.

Douyin shop: a JSON array of ``{tag, msg_id, data}`` per request; each message is its own delivery
with its own dedupe key (``msg_id``) and body, split at ingest. ``data`` is a JSON string.
The tag and status codes in ``mappings/douyin.json`` follow the Doudian push documentation as far as
it is public; they are unconfirmed against a live shop (see PLATFORMS.md), and so is the
``sign-method: hmac-sha256`` variant (HMAC-SHA256 keyed by the secret over the same string).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.mappings import load_mapping
from shared.models import (
    AfterSalesCase,
    CaseKind,
    CaseStatus,
    FulfillmentStatus,
    InboxMessage,
    Money,
    ObservedEntity,
    Order,
    OrderStatus,
    PaymentStatus,
    RefundScenario,
    Shipment,
)
from shared.sources import wire
from shared.sources.base import (
    PAYLOAD_ERRORS,
    Ack,
    Delivery,
    Headers,
    JsonSource,
    Part,
    describe_error,
    observation,
    parse_json,
)
from shared.sources.logistics import CHINA

SHOP_ACK = {"code": 0, "msg": "success"}
# What a message inside a verified push can raise: its embedded JSON (Youzan msg, Douyin data) is
# parsed in the normaliser, so a malformed one is quarantined like any other unusable field.
_MESSAGE_ERRORS: tuple[type[Exception], ...] = (*PAYLOAD_ERRORS, MalformedPayload)


class OrderCodes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: OrderStatus
    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None


class CaseType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: CaseKind
    scenario: RefundScenario | None = None


def _pairs(secrets: Sequence[str]) -> list[tuple[str, str]]:
    pairs = [tuple(s.split(":", 1)) for s in secrets if ":" in s]
    if not pairs:
        raise SignatureInvalid("no '<app id>:<secret>' pair is configured for this source")
    return pairs  # type: ignore[return-value]


def md5_sign(app_id: str, secret: str, body: bytes) -> str:
    return hashlib.md5(app_id.encode() + body + secret.encode()).hexdigest()  # noqa: S324 - the platforms' scheme


def hmac_sign(app_id: str, secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), app_id.encode() + body + secret.encode(), hashlib.sha256).hexdigest()


def _verify(header: str, given: str | None, secrets: Sequence[str], body: bytes, make: Any) -> None:
    if not given:
        raise SignatureInvalid(f"missing {header} header")
    presented = given.strip().lower().encode()
    matched = False
    for app_id, secret in _pairs(secrets):  # every pair is tried: timing does not tell which one signed
        matched |= hmac.compare_digest(make(app_id, secret, body).encode(), presented)
    if not matched:
        raise SignatureInvalid(f"{header} does not match the body")


def _epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _china_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)


# --- Youzan -------------------------------------------------------------------------------------
YOUZAN_SIGNATURE = "Event-Sign"
YOUZAN_TEST = re.compile(rb'"test"\s*:\s*true\b')
YOUZAN_TEST_MAX_BYTES = 2048


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
        _verify(YOUZAN_SIGNATURE, headers.get(YOUZAN_SIGNATURE), secrets, body, md5_sign)

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
        try:
            msg = wire.loads(unquote_plus(payload["msg"]), "msg")
            at = _epoch(payload["version"]) if payload.get("version") else _china_time(msg["update_time"])
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
        except _MESSAGE_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} message is not usable: {describe_error(exc)}"
            ) from exc
        raise NormalisationError(self.name, f"unsupported message type {message.topic!r}")


# --- Douyin shop --------------------------------------------------------------------------------
DOUYIN_SIGNATURE = "event-sign"
DOUYIN_SIGN_METHOD = "sign-method"
DOUYIN_SIGNERS = {"md5": md5_sign, "hmac-sha256": hmac_sign}


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
        _verify(DOUYIN_SIGNATURE, headers.get(DOUYIN_SIGNATURE), secrets, body, DOUYIN_SIGNERS[method])

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
        try:
            tag = str(payload["tag"])
            data = payload["data"]
            data = parse_json(data.encode()) if isinstance(data, str) else data
            if tag in maps.order_tags:
                return [self._order(message, data, maps)]
            if tag in maps.aftersale_tags:
                return [self._case(message, data, maps.aftersale_tags[tag], maps)]
        except _MESSAGE_ERRORS as exc:
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
            values["purchased_at"] = _epoch(data["create_time"])
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
            return _epoch(data[name])
    return message.received_at
