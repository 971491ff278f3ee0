"""What Youzan (有赞) and Douyin shop (抖店) share.

Both sign ``MD5(app id + raw body + app secret)`` (hex), so a tenant's secret entry is the pair
``"<client id / app key>:<secret>"``; several pairs are accepted while a secret is being rotated.
Both expect ``{"code": 0, "msg": "success"}`` and push again until they get it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, SignatureInvalid
from shared.models import (
    CaseKind,
    FulfillmentStatus,
    OrderStatus,
    PaymentStatus,
    RefundScenario,
)
from shared.sources.base import (
    PAYLOAD_ERRORS,
)
from shared.sources.tracking import CHINA

SHOP_ACK = {"code": 0, "msg": "success"}


# What a message inside a verified push can raise: its embedded JSON (Youzan msg, Douyin data) is
# parsed in the normaliser, so a malformed one is quarantined like any other unusable field.
MESSAGE_ERRORS: tuple[type[Exception], ...] = (*PAYLOAD_ERRORS, MalformedPayload)


class OrderCodes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: OrderStatus
    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None


class CaseType(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: CaseKind
    scenario: RefundScenario | None = None


def app_secret_pairs(secrets: Sequence[str]) -> list[tuple[str, str]]:
    pairs = [tuple(s.split(":", 1)) for s in secrets if ":" in s]
    if not pairs:
        raise SignatureInvalid("no '<app id>:<secret>' pair is configured for this source")
    return pairs  # type: ignore[return-value]


def md5_sign(app_id: str, secret: str, body: bytes) -> str:
    return hashlib.md5(app_id.encode() + body + secret.encode()).hexdigest()  # noqa: S324 - the platforms' scheme


def hmac_sign(app_id: str, secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), app_id.encode() + body + secret.encode(), hashlib.sha256).hexdigest()


def verify_pair_signature(header: str, given: str | None, secrets: Sequence[str], body: bytes, make: Any) -> None:
    if not given:
        raise SignatureInvalid(f"missing {header} header")
    presented = given.strip().lower().encode()
    matched = False
    for app_id, secret in app_secret_pairs(secrets):  # every pair is tried: timing does not tell which one signed
        matched |= hmac.compare_digest(make(app_id, secret, body).encode(), presented)
    if not matched:
        raise SignatureInvalid(f"{header} does not match the body")


def epoch_time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def china_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
