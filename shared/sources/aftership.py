"""AfterShip tracking: JSON signed with ``aftership-hmac-sha256`` (base64 HMAC-SHA256 of the body), dedupe
on ``event_id``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import Checkpoint, InboxMessage, ObservedEntity, Shipment
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error
from shared.sources.tracking import shipment_observation, tracking_maps

# --- AfterShip ----------------------------------------------------------------------------------
AFTERSHIP_SIGNATURE = "aftership-hmac-sha256"


def aftership_sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class AfterShip(JsonSource):
    name: ClassVar[str] = "aftership"
    kept_headers: ClassVar[tuple[str, ...]] = ()

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        given = headers.get(AFTERSHIP_SIGNATURE)
        if not given:
            raise SignatureInvalid(f"missing {AFTERSHIP_SIGNATURE} header")
        matched = False
        for secret in secrets:
            matched |= hmac.compare_digest(aftership_sign(secret, body).encode(), given.strip().encode())
        if not matched:
            raise SignatureInvalid(f"{AFTERSHIP_SIGNATURE} does not match the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        if not isinstance(payload, dict) or not payload.get("event_id") or not isinstance(payload.get("msg"), dict):
            raise MalformedPayload("an AfterShip webhook needs 'event_id' and a 'msg' object")
        return Delivery(source_event_id=str(payload["event_id"]), topic=str(payload.get("event", "tracking_update")))

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"meta": {"code": 200}})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        try:
            msg = payload["msg"]
            maps = tracking_maps()
            carrier, number = msg["slug"], msg["tracking_number"]
            checkpoints = tuple(
                Checkpoint(
                    at=c["checkpoint_time"],
                    status=maps.status("aftership", c["tag"]),
                    location=c.get("location"),
                    message=c.get("message"),
                )
                for c in msg.get("checkpoints") or []
            )
            shipment = Shipment(
                shipment_id=f"{carrier}:{number}",
                carrier=carrier,
                tracking_number=number,
                status=maps.status("aftership", msg["tag"]),
                order_id=msg.get("order_id"),
                checkpoints=checkpoints,
            )
            occurred_at = msg.get("updated_at") or max((c.at for c in checkpoints), default=message.received_at)
            return [shipment_observation(self.name, message, shipment, occurred_at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"not a tracking update: {describe_error(exc)}") from exc
