"""In-house systems (ERP, OMS, WMS, CRM, call centre, POS) speaking Standard Webhooks.

``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` (several, space
separated), the key being the base64 part of a ``whsec_…`` secret; ``webhook-timestamp`` within
±5 minutes; ``webhook-id`` is the dedupe key. The body is already a canonical observation:
``{"entity_type", "entity_id", "occurred_at", "entity": {...}}`` (or a list of them), validated by
the canonical models — these systems integrate with Aftersync's model, not the other way round.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import InboxMessage, ObservedEntity
from shared.signing import standard_sign
from shared.sources import wire
from shared.sources.base import Ack, Delivery, Headers, JsonSource, describe_error, event_id_for

TOLERANCE_SECONDS = 300


class StandardWebhooksSource(JsonSource):
    kept_headers: ClassVar[tuple[str, ...]] = ("webhook-id", "webhook-timestamp")

    def __init__(self, name: str) -> None:
        self.name = name

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        webhook_id, timestamp, signatures = (
            headers.get("webhook-id"),
            headers.get("webhook-timestamp"),
            headers.get("webhook-signature"),
        )
        for header, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signatures),
        ):
            if not value:
                raise SignatureInvalid(f"missing {header} header")
        assert webhook_id and timestamp and signatures
        if abs(now.timestamp() - wire.epoch_seconds(timestamp, "webhook-timestamp")) > TOLERANCE_SECONDS:
            raise SignatureInvalid(f"webhook-timestamp is outside the ±{TOLERANCE_SECONDS} s tolerance")
        given = [s.strip().encode() for s in signatures.split() if s.startswith("v1,")]
        matched = False
        for secret in secrets:
            expected = standard_sign(secret, webhook_id, timestamp.strip(), body).encode()
            for candidate in given:
                matched |= hmac.compare_digest(expected, candidate)
        if not matched:
            raise SignatureInvalid("no v1 signature in webhook-signature matches the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        if not isinstance(payload, dict | list):
            raise MalformedPayload("the body must be an observation object or a list of them")
        return Delivery(source_event_id=headers.get("webhook-id", "").strip(), topic="observation")

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"status": "duplicate" if duplicate else "accepted", "webhook_id": delivery.source_event_id})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        items = payload if isinstance(payload, list) else [payload]
        events = []
        for index, item in enumerate(items):
            try:
                events.append(
                    ObservedEntity.model_validate(
                        {
                            **item,
                            "event_id": event_id_for(
                                f"{message.dedupe_key}#{index}", item["entity_type"], item["entity_id"]
                            ),
                            "tenant": message.tenant,
                            "source": self.name,
                            "source_event_id": message.source_event_id,
                            "topic": message.topic,
                            "received_at": message.received_at,
                            "origin": message.origin,
                        }
                    )
                )
            except (KeyError, TypeError, AttributeError, ValidationError) as exc:
                # a field path and an error kind, never the item's values (personal data)
                raise NormalisationError(self.name, f"observation {index}: {describe_error(exc)}") from exc
        return events


INHOUSE_SYSTEMS = ("erp", "oms", "wms", "crm", "callcenter", "pos")
