"""Ingest: size cap -> verify on raw bytes -> identify -> dedupe -> archive + enqueue -> ack.

Nothing else happens here, so the platform gets its answer well inside its timeout, and nothing
from a rejected request reaches the archive, the queue or the idempotency table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.constants import INLINE_BODY_MAX_BYTES, source_secret_name
from shared.errors import ConfigurationError, PayloadTooLarge, UnknownTenant
from shared.models import InboxMessage
from shared.sources import get_source
from shared.sources.base import Ack, Headers


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
class IngestPorts:
    secrets: SecretsPort
    archive: ArchivePort
    inbox: QueuePort
    once: OncePort


@dataclass(frozen=True)
class IngestOutcome:
    ack: Ack
    message: InboxMessage | None  # None for a platform health check, which is answered and not kept
    duplicate: bool


def accept_webhook(request: WebhookRequest, policy: IngestPolicy, ports: IngestPorts) -> IngestOutcome:
    if len(request.body) > policy.max_body_bytes:
        raise PayloadTooLarge(f"body is {len(request.body)} bytes; the limit is {policy.max_body_bytes}")
    source = get_source(request.source, policy.enabled_sources)
    if (ping := source.ping(request.headers, request.body)) is not None:
        return IngestOutcome(ack=ping, message=None, duplicate=False)  # a health check: nothing to keep
    secret_name = source_secret_name(policy.secrets_prefix, source.name, request.tenant)
    secrets = _signing_secrets(ports.secrets.get_json(secret_name), secret_name)
    if secrets is None:
        raise UnknownTenant(f"no {source.name} webhook is configured for tenant {request.tenant!r}")
    source.verify(request.headers, request.body, secrets, request.received_at)
    payload = source.parse(request.headers, request.body)
    delivery = source.identify(request.headers, payload)

    dedupe_key = f"{source.name}:{request.tenant}:{delivery.source_event_id}"
    body_text = request.body.decode("utf-8", errors="strict")
    message = InboxMessage(
        source=source.name,
        tenant=request.tenant,
        dedupe_key=dedupe_key,
        source_event_id=delivery.source_event_id,
        topic=delivery.topic,
        received_at=request.received_at,
        headers=request.headers.subset((*source.kept_headers, "Content-Type")),
        body_sha256=hashlib.sha256(request.body).hexdigest(),
        archive_key=archive_key(source.name, request.tenant, request.received_at, dedupe_key),
        body=body_text,
    )

    def store() -> dict[str, Any]:
        ports.archive.put(message.archive_key, message.model_dump_json().encode())
        inline = message if len(request.body) <= INLINE_BODY_MAX_BYTES else message.model_copy(update={"body": None})
        ports.inbox.send(inline.model_dump_json(), {"source": source.name, "tenant": request.tenant})
        return {"archive_key": message.archive_key}

    _, duplicate = ports.once.run({"dedupe_key": dedupe_key, "body_sha256": message.body_sha256}, store)
    return IngestOutcome(ack=source.ack(delivery, duplicate), message=message, duplicate=duplicate)


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
