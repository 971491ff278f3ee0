"""Zendesk tickets: ``X-Zendesk-Webhook-Signature`` = base64 HMAC-SHA256 of timestamp + body, with our own
window on the timestamp; statuses and priorities through ``mappings/zendesk.json``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.models import (
    InboxMessage,
    ObservedEntity,
    Ticket,
    TicketStatus,
)
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation
from shared.sources.hmac_headers import b64_hmac, matches_any
from shared.sources.mappings import load_mapping

# --- Zendesk ------------------------------------------------------------------------------------
ZENDESK_SIGNATURE = "X-Zendesk-Webhook-Signature"


ZENDESK_TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
# A ticket as the REST API and the incremental export give it (pulled, never a webhook's topic): the same
# fields as a ticket event's ``detail``, with lower-case status and priority and numeric ids
EXPORT_TOPIC = "api:ticket"


ZENDESK_WINDOW_SECONDS = 300  # Zendesk does not enforce one; a replayed old request is refused here


class ZendeskMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    status: dict[str, TicketStatus]
    priority: dict[str, str]


@cache
def zendesk_maps() -> ZendeskMaps:
    return load_mapping("zendesk", ZendeskMaps)


def zendesk_sign(secret: str, timestamp: str, body: bytes) -> str:
    return b64_hmac(secret, timestamp.encode() + body)


class Zendesk(JsonSource):
    name: ClassVar[str] = "zendesk"
    kept_headers: ClassVar[tuple[str, ...]] = ("x-zendesk-webhook-invocation-id",)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        given, timestamp = headers.get(ZENDESK_SIGNATURE), headers.get(ZENDESK_TIMESTAMP)
        if not given:
            raise SignatureInvalid(f"missing {ZENDESK_SIGNATURE} header")
        if not timestamp:
            raise SignatureInvalid(f"missing {ZENDESK_TIMESTAMP} header")
        try:
            signed_at = datetime.fromisoformat(timestamp.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SignatureInvalid(f"{ZENDESK_TIMESTAMP} is not an ISO-8601 time") from exc
        if signed_at.tzinfo is None or abs((now - signed_at).total_seconds()) > ZENDESK_WINDOW_SECONDS:
            raise SignatureInvalid(f"{ZENDESK_TIMESTAMP} is outside the {ZENDESK_WINDOW_SECONDS} s window")
        if not matches_any(given, secrets, lambda s: zendesk_sign(s, timestamp.strip(), body)):
            raise SignatureInvalid(f"{ZENDESK_SIGNATURE} does not match the body")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        event_id = (payload.get("id") if isinstance(payload, dict) else None) or headers.get(
            "x-zendesk-webhook-invocation-id"
        )
        if not event_id or not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            raise MalformedPayload("a Zendesk event needs 'id' and 'type'")
        return Delivery(source_event_id=str(event_id), topic=payload["type"])

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"status": "duplicate" if duplicate else "accepted"})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        pulled = message.topic == EXPORT_TOPIC
        if not pulled and not message.topic.startswith("zen:event-type:ticket."):
            raise NormalisationError(self.name, f"unsupported event type {message.topic!r}")
        try:
            detail, maps = (payload if pulled else payload["detail"]), zendesk_maps()
            ticket = Ticket(
                ticket_id=str(detail["id"]),
                status=maps.status[str(detail["status"]).upper()],
                priority=maps.priority.get(str(detail.get("priority") or "").upper()),
                assignee=str(detail["assignee_id"]) if detail.get("assignee_id") else None,
                subject=detail.get("subject"),
                requester_ref=str(detail["requester_id"]) if detail.get("requester_id") else None,
                tags=tuple(sorted(detail.get("tags") or [])),
            )
            at = detail["updated_at"] if pulled else detail.get("updated_at") or payload["time"]
            return [observation(self.name, message, "ticket", f"zendesk:{ticket.ticket_id}", ticket, at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(
                self.name, f"{message.topic} payload is not a ticket: {describe_error(exc)}"
            ) from exc
