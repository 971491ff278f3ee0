"""Kuaidi100 (快递100) tracking pushes: form-encoded ``param`` (JSON) + ``sign`` = uppercase MD5(param + salt),
acknowledged with its own body; no event id (carrier, number and newest checkpoint identify a push)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import Checkpoint, InboxMessage, ObservedEntity, Shipment
from shared.sources import wire
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, describe_error
from shared.sources.tracking import CHINA, shipment_observation, tracking_maps

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
            return [shipment_observation(self.name, message, shipment, occurred_at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"not a tracking push: {describe_error(exc)}") from exc
