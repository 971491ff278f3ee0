"""17TRACK tracking pushes: header ``sign`` = hex SHA-256 of body + "/" + API key (unconfirmed); dedupe on
number, carrier and latest event time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import Checkpoint, InboxMessage, ObservedEntity, Shipment
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error
from shared.sources.tracking import shipment_observation, tracking_maps

# --- 17TRACK ------------------------------------------------------------------------------------
SEVENTEEN_SIGNATURE = "sign"


def seventeen_sign(key: str, body: bytes) -> str:
    """17TRACK's scheme: a plain SHA-256 of the body, "/" and the API key (hex)."""
    return hashlib.sha256(body + b"/" + key.encode()).hexdigest()


class SeventeenTrack(JsonSource):
    name: ClassVar[str] = "17track"
    kept_headers: ClassVar[tuple[str, ...]] = ()

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        given = headers.get(SEVENTEEN_SIGNATURE)
        if not given:
            raise SignatureInvalid(f"missing {SEVENTEEN_SIGNATURE} header")
        matched = False
        for key in secrets:
            matched |= hmac.compare_digest(seventeen_sign(key, body).encode(), given.strip().lower().encode())
        if not matched:
            raise SignatureInvalid(f"{SEVENTEEN_SIGNATURE} does not match the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or not data.get("number"):
            raise MalformedPayload("a 17TRACK push needs data.number")
        latest = ((data.get("track_info") or {}).get("latest_event") or {}).get("time_utc") or ""
        # No event id: number, carrier and the latest event's time identify a push.
        return Delivery(
            source_event_id=f"{data['number']}:{data.get('carrier')}:{latest}", topic=str(payload.get("event"))
        )

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"code": 0})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if message.topic != "TRACKING_UPDATED":
            raise NormalisationError(self.name, f"unsupported event {message.topic!r}")
        try:
            data, maps = payload["data"], tracking_maps()
            info = data["track_info"]
            carrier = str(data.get("carrier"))
            events = [e for p in (info.get("tracking") or {}).get("providers") or [] for e in p.get("events") or []]
            checkpoints = tuple(
                Checkpoint(
                    at=e["time_utc"],
                    status=maps.status("17track", e.get("stage") or info["latest_status"]["status"]),
                    location=e.get("location"),
                    message=e.get("description"),
                )
                for e in events
            )
            shipment = Shipment(
                shipment_id=f"17track-{carrier}:{data['number']}",
                carrier=carrier,
                tracking_number=data["number"],
                status=maps.status("17track", info["latest_status"]["status"]),
                checkpoints=checkpoints,
            )
            at = (info.get("latest_event") or {}).get("time_utc") or message.received_at
            return [shipment_observation(self.name, message, shipment, at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"not a tracking update: {describe_error(exc)}") from exc
