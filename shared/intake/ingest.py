"""Ingest: size cap -> verify on raw bytes -> identify -> dedupe -> archive + enqueue -> ack.

Nothing else happens here, so the platform gets its answer well inside its timeout, and nothing
from a rejected request reaches the archive, the queue or the idempotency table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.constants import INLINE_BODY_MAX_BYTES, source_secret_name
from shared.errors import ConfigurationError, MalformedPayload, PayloadTooLarge, UnknownTenant
from shared.models import InboxMessage, Origin
from shared.sources import get_source
from shared.sources.base import Ack, BatchSource, Delivery, Headers, Part, parse_json

MAX_IDENTITY_CHARS = 256  # platforms' event ids are ≤ 64 characters; a key must stay well under DynamoDB's


class SecretsPort(Protocol):
    def get_json(self, name: str) -> dict[str, Any] | None: ...


class ArchivePort(Protocol):
    def put(self, key: str, body: bytes) -> None: ...


class QueuePort(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


class OncePort(Protocol):
    def register_context(self, context: Any) -> None: ...

    def run(self, envelope: dict[str, Any], action: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]: ...


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
    """Where an admitted delivery goes: the archive and the inbox, once per dedupe key."""

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
    """The raw envelope of one delivery, as archived and enqueued (the body whole, inline)."""
    dedupe_key = f"{source}:{tenant}:{delivery.source_event_id}"
    return InboxMessage(
        source=source,
        tenant=tenant,
        dedupe_key=dedupe_key,
        source_event_id=delivery.source_event_id,
        topic=delivery.topic,
        received_at=received_at,
        origin=origin,
        headers=headers,
        body_sha256=hashlib.sha256(body).hexdigest(),
        archive_key=archive_key(source, tenant, received_at, dedupe_key),
        body=body.decode("utf-8", errors="strict"),
    )


def store_once(message: InboxMessage, ports: StorePorts) -> Accepted:
    """Archive the envelope and put it on the inbox, once per dedupe key (a body too large for a
    queue message travels by its archive key)."""
    body = (message.body or "").encode("utf-8")

    def store() -> dict[str, Any]:
        ports.archive.put(message.archive_key, message.model_dump_json().encode())
        inline = message if len(body) <= INLINE_BODY_MAX_BYTES else message.model_copy(update={"body": None})
        attributes = {"source": message.source, "tenant": message.tenant}
        if message.origin != "webhook":
            attributes["origin"] = message.origin
        ports.inbox.send(inline.model_dump_json(), attributes)
        return {"archive_key": message.archive_key}

    _, duplicate = ports.once.run({"dedupe_key": message.dedupe_key, "body_sha256": message.body_sha256}, store)
    return Accepted(message, duplicate)


def archive_key(source: str, tenant: str, received_at: datetime, dedupe_key: str) -> str:
    """``raw/{source}/{tenant}/YYYY/MM/DD/HH/<time>-<key hash>.json``: listable by source, tenant, hour."""
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:16]
    return f"raw/{source}/{tenant}/{received_at:%Y/%m/%d/%H}/{received_at:%Y%m%dT%H%M%S%fZ}-{digest}.json"


def _signing_secrets(secret: dict[str, Any] | None, name: str) -> list[str] | None:
    """``{"secrets": [newest, older…]}``: several are accepted while a secret is being rotated."""
    if secret is None:
        return None
    values = secret.get("secrets")
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigurationError(f'secret {name!r} must be {{"secrets": ["newest", ...]}}')
    return values
