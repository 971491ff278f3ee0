"""Tracking providers: AfterShip (JSON, ``aftership-hmac-sha256``) and Kuaidi100 (form-encoded
``param`` + ``sign`` = uppercase MD5(param + salt), its own acknowledgement). Both become ``Shipment``
observations keyed ``<carrier>:<tracking number>``; statuses map through ``tracking.json``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any, ClassVar
from urllib.parse import parse_qs

from pydantic import RootModel

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid, UnusableValue
from shared.mappings import load_mapping
from shared.models import Checkpoint, InboxMessage, ObservedEntity, Shipment, TrackingStatus
from shared.sources import wire
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation

CHINA = timezone(timedelta(hours=8))  # Kuaidi100 times are mainland local time without an offset


class TrackingMaps(RootModel[dict[str, dict[str, TrackingStatus]]]):
    def status(self, source: str, code: str) -> TrackingStatus:
        try:
            return self.root[source][code]
        except KeyError:
            raise UnusableValue(f"{source} tracking status") from None


@cache
def tracking_maps() -> TrackingMaps:
    return load_mapping("tracking", TrackingMaps)


def _observation(source: str, message: InboxMessage, shipment: Shipment, occurred_at: Any) -> ObservedEntity:
    return observation(source, message, "shipment", shipment.shipment_id, shipment, occurred_at)


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
            return [_observation(self.name, message, shipment, occurred_at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"not a tracking update: {describe_error(exc)}") from exc


# --- Kuaidi100 ----------------------------------------------------------------------------------
KUAIDI100_ACK = {"result": True, "returnCode": "200", "message": "成功"}


def kuaidi100_sign(salt: str, param: str) -> str:
    return hashlib.md5((param + salt).encode()).hexdigest().upper()  # noqa: S324 - the provider's scheme


class Kuaidi100:
    name: ClassVar[str] = "kuaidi100"
    kept_headers: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def _form(body: bytes) -> dict[str, str]:
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise MalformedPayload("body is not UTF-8 form data") from exc
        return {k: v[0] for k, v in fields.items()}

    def ping(self, headers: Headers, body: bytes) -> Ack | None:
        return None

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        form = self._form(body)
        if not form.get("sign"):
            raise SignatureInvalid("missing sign field")
        if "param" not in form:
            raise SignatureInvalid("missing param field")
        matched = False
        for salt in secrets:
            matched |= hmac.compare_digest(
                kuaidi100_sign(salt, form["param"]).encode(), form["sign"].strip().upper().encode()
            )
        if not matched:
            raise SignatureInvalid("sign does not match param")

    def parse(self, headers: Headers, body: bytes) -> Any:
        return wire.loads(self._form(body)["param"], "param")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        last = payload.get("lastResult") if isinstance(payload, dict) else None
        if not isinstance(last, dict) or not last.get("com") or not last.get("nu"):
            raise MalformedPayload("a Kuaidi100 push needs lastResult with com and nu")
        newest = max((d.get("ftime") or d.get("time") or "" for d in last.get("data") or []), default="")
        # No event id: a push is identified by carrier, number and its newest checkpoint.
        return Delivery(
            source_event_id=f"{last['com']}:{last['nu']}:{newest}", topic=str(payload.get("status", "push"))
        )

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, KUAIDI100_ACK)

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        try:
            last = payload["lastResult"]
            maps = tracking_maps()
            state = "abort" if payload.get("status") == "abort" else str(last["state"])
            checkpoints = tuple(
                Checkpoint(
                    at=datetime.strptime(d.get("ftime") or d["time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA),
                    status=maps.status("kuaidi100", str(d.get("statusCode", state)))
                    if d.get("statusCode")
                    else maps.status("kuaidi100", state),
                    location=d.get("areaName"),
                    message=d.get("context"),
                )
                for d in last.get("data") or []
            )
            shipment = Shipment(
                shipment_id=f"{last['com']}:{last['nu']}",
                carrier=last["com"],
                tracking_number=last["nu"],
                status=maps.status("kuaidi100", state),
                checkpoints=checkpoints,
            )
            occurred_at = max((c.at for c in checkpoints), default=message.received_at)
            return [_observation(self.name, message, shipment, occurred_at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"not a tracking push: {describe_error(exc)}") from exc


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
            return [_observation(self.name, message, shipment, at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"not a tracking update: {describe_error(exc)}") from exc
