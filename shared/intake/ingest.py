"""Ingest: size cap -> verify on raw bytes -> identify -> admission record -> enqueue -> ack.

Two AWS calls before the ack: one conditional PutItem (the admission record: new, duplicate or
conflicting) and one SQS SendMessage carrying the raw envelope (archived later, in batches, off the
ack path). An envelope too large for a message goes to the archive first and travels by its key.
Nothing from a rejected request reaches the queue, the archive or the idempotency table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from shared.adapters.sqs import carriable_json
from shared.constants import INLINE_MESSAGE_MAX_BYTES, source_secret_name
from shared.errors import ConfigurationError, MalformedPayload, PayloadTooLarge, UnknownTenant
from shared.models import InboxMessage, Origin
from shared.sources import get_source
from shared.sources.base import Ack, BatchSource, Delivery, Headers, Part, parse_json

if TYPE_CHECKING:
    from shared.adapters.idempotency import Claim

MAX_IDENTITY_CHARS = 256  # platforms' event ids are ≤ 64 characters; a key must stay well under DynamoDB's


class SecretsPort(Protocol):
    def get_json(self, name: str) -> dict[str, Any] | None: ...


class ArchivePort(Protocol):
    def put(self, key: str, body: bytes) -> None: ...


class QueuePort(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


class OncePort(Protocol):
    """The admission record (``shared.adapters.idempotency.AdmissionLedger``)."""

    def register_context(self, context: Any) -> None: ...

    def claim(self, dedupe_key: str, body_sha256: str) -> Claim: ...

    def release(self, claim: Claim) -> None: ...


@dataclass(frozen=True)
class WebhookRequest:
    source: str
    tenant: str
    headers: Headers
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class IngestPolicy:
    enabled_sources: frozenset[str]
    max_body_bytes: int
    secrets_prefix: str


@dataclass(frozen=True)
class StorePorts:
    """Where an admitted delivery goes: the inbox (the archive for an envelope too large for it),
    decided by its admission record."""

    archive: ArchivePort
    inbox: QueuePort
    once: OncePort


@dataclass(frozen=True)
class IngestPorts(StorePorts):
    secrets: SecretsPort


@dataclass(frozen=True)
class Accepted:
    message: InboxMessage
    duplicate: bool


@dataclass(frozen=True)
class IngestOutcome:
    ack: Ack
    accepted: tuple[Accepted, ...]  # empty for a platform health check, which is answered and not kept

    @property
    def duplicate(self) -> bool:
        """Every delivery in the request had been accepted before."""
        return bool(self.accepted) and all(a.duplicate for a in self.accepted)


def accept_webhook(request: WebhookRequest, policy: IngestPolicy, ports: IngestPorts) -> IngestOutcome:
    if len(request.body) > policy.max_body_bytes:
        raise PayloadTooLarge(f"body is {len(request.body)} bytes; the limit is {policy.max_body_bytes}")
    source = get_source(request.source, policy.enabled_sources)
    if (ping := source.ping(request.headers, request.body)) is not None:
        return IngestOutcome(ack=ping, accepted=())  # a health check: nothing to keep
    secret_name = source_secret_name(policy.secrets_prefix, source.name, request.tenant)
    secrets = _signing_secrets(ports.secrets.get_json(secret_name), secret_name)
    if secrets is None:
        raise UnknownTenant(f"no {source.name} webhook is configured for tenant {request.tenant!r}")
    source.verify(request.headers, request.body, secrets, request.received_at)
    payload = source.parse(request.headers, request.body)
    # Most platforms send one delivery per request; Douyin batches several, each with its own id.
    # Every part is identified before anything is stored, so a malformed part stores nothing.
    parts = (
        source.split(request.headers, payload)
        if isinstance(source, BatchSource)
        else [Part(source.identify(request.headers, payload), None)]
    )
    for part in parts:
        _check_identity(part.delivery)
    accepted = tuple(_admit(source.name, source.kept_headers, request, part, ports) for part in parts)
    return IngestOutcome(ack=source.ack(parts[0].delivery, all(a.duplicate for a in accepted)), accepted=accepted)


class NotificationSource(Protocol):
    """A source that delivers through a queue it may write to (Amazon SP-API), not over HTTP."""

    @property
    def name(self) -> str: ...

    def identify(self, headers: Headers, payload: Any) -> Delivery: ...

    def tenant(self, payload: Any, tenants: Mapping[str, str]) -> str: ...


def accept_notification(
    source: NotificationSource, body: bytes, received_at: datetime, tenants: Mapping[str, str], ports: StorePorts
) -> Accepted:
    """Admit one queued notification into the same path as a webhook: dedupe, archive, inbox.

    The queue's access policy is what authenticates it; the tenant comes from the payload's account
    id through config. Raises ``WebhookRejected`` (malformed, unknown tenant, conflicting duplicate)."""
    payload = parse_json(body)
    delivery = _check_identity(source.identify(Headers({}), payload))
    tenant = source.tenant(payload, tenants)
    request = WebhookRequest(source.name, tenant, Headers({}), body, received_at)
    return _admit(source.name, (), request, Part(delivery, None), ports)


def _check_identity(delivery: Delivery) -> Delivery:
    """An event id and topic short enough to key on (the dedupe key, the archive, the queue)."""
    if not 0 < len(delivery.source_event_id) <= MAX_IDENTITY_CHARS:
        raise MalformedPayload(f"the event id must be 1 to {MAX_IDENTITY_CHARS} characters")
    if len(delivery.topic) > MAX_IDENTITY_CHARS:
        raise MalformedPayload(f"the topic must be at most {MAX_IDENTITY_CHARS} characters")
    return delivery


def _admit(
    source: str, kept_headers: tuple[str, ...], request: WebhookRequest, part: Part, ports: StorePorts
) -> Accepted:
    """Archive and enqueue one delivery exactly once (per dedupe key); a repeat is a duplicate."""
    body = request.body if part.body is None else part.body.encode("utf-8")
    message = inbox_message(
        source,
        request.tenant,
        part.delivery,
        request.received_at,
        request.headers.subset((*kept_headers, "Content-Type")),
        body,
    )
    return store_once(message, ports)


def inbox_message(
    source: str,
    tenant: str,
    delivery: Delivery,
    received_at: datetime,
    headers: dict[str, str],
    body: bytes,
    origin: Origin = "webhook",
) -> InboxMessage:
    """The raw envelope of one delivery (the body whole, inline)."""
    return InboxMessage(
        source=source,
        tenant=tenant,
        dedupe_key=f"{source}:{tenant}:{delivery.source_event_id}",
        source_event_id=delivery.source_event_id,
        topic=delivery.topic,
        received_at=received_at,
        origin=origin,
        headers=headers,
        body_sha256=hashlib.sha256(body).hexdigest(),
        body=body.decode("utf-8", errors="strict"),
    )


def store_once(message: InboxMessage, ports: StorePorts) -> Accepted:
    """Admit the envelope: write its admission record, then put it on the inbox (call 1 and call 2).

    A duplicate costs the record's one call and sends nothing, unless its admitting invocation's lease
    ran out: then nothing says that invocation sent it (it may have died between its two calls), and
    this one sends it again — the same envelope twice on the inbox, applied once downstream. An
    envelope too large for a message goes to the archive first and travels by its key (three calls).
    A failed send gives the record up, so the platform's retry admits the delivery at once."""
    claim = ports.once.claim(message.dedupe_key, message.body_sha256)  # DuplicateConflict: another body
    if not claim.owned:
        return Accepted(message, duplicate=True)
    try:
        sent = _enqueue(message, ports)
    except Exception:
        ports.once.release(claim)
        raise
    return Accepted(sent, duplicate=claim.seen_before)


def _enqueue(message: InboxMessage, ports: StorePorts) -> InboxMessage:
    attributes = {"source": message.source, "tenant": message.tenant}
    if message.origin != "webhook":
        attributes["origin"] = message.origin
    document = carriable_json(message.model_dump_json())
    if len(document.encode("utf-8")) > INLINE_MESSAGE_MAX_BYTES:
        key = archive_key(message.source, message.tenant, message.received_at, message.dedupe_key)
        ports.archive.put(key, document.encode("utf-8"))
        message = message.model_copy(update={"body": None, "archive_key": key})
        document = message.model_dump_json()
    ports.inbox.send(document, attributes)
    return message


def archive_key(source: str, tenant: str, received_at: datetime, dedupe_key: str) -> str:
    """``raw/<h>/{source}/{tenant}/YYYY/MM/DD/HH/<time>-<key hash>.json`` for an envelope that travels by
    reference: two hex digits of the key's hash before everything else spread the PUTs over 256 S3
    prefixes (3,500 PUT/s each), however the traffic falls by source, tenant or time."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()
    return (
        f"raw/{digest[:2]}/{source}/{tenant}/{received_at:%Y/%m/%d/%H}/"
        f"{received_at:%Y%m%dT%H%M%S%fZ}-{digest[:16]}.json"
    )


def _signing_secrets(secret: dict[str, Any] | None, name: str) -> list[str] | None:
    """``{"secrets": [newest, older…]}``: several are accepted while a secret is being rotated."""
    if secret is None:
        return None
    values = secret.get("secrets")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(f'secret {name!r} must be {{"secrets": ["newest", ...]}}')
    return values
