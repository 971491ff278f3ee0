"""What a source adapter is: verify on raw bytes, identify the delivery, acknowledge, normalise."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from shared.masking import describe
from shared.models import InboxMessage, ObservedEntity
from shared.sources import wire


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only view of request headers (HTTP header names are case-insensitive)."""

    def __init__(self, raw: Mapping[str, str] | None) -> None:
        self._items = {k.lower(): v for k, v in (raw or {}).items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def subset(self, names: Sequence[str]) -> dict[str, str]:
        return {n: self._items[n] for n in (x.lower() for x in names) if n in self._items}


@dataclass(frozen=True)
class Delivery:
    """How a verified request identifies itself: the platform's event id (dedupe key) and topic."""

    source_event_id: str
    topic: str


@dataclass(frozen=True)
class Ack:
    """The answer a platform expects for an accepted delivery."""

    status_code: int = 200
    body: Mapping[str, Any] = field(default_factory=lambda: {"status": "accepted"})


class Source(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def kept_headers(self) -> tuple[str, ...]: ...

    def ping(self, headers: Headers, body: bytes) -> Ack | None:
        """The answer to an unsigned health check the platform sends, or ``None`` for a real delivery."""

    def parse(self, headers: Headers, body: bytes) -> Any:
        """The payload of a verified body; raise ``MalformedPayload`` saying what is wrong."""

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        """Raise ``SignatureInvalid`` unless one of ``secrets`` signed exactly these bytes."""

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        """The delivery's dedupe id and topic; raise ``MalformedPayload`` if they are missing."""

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        """The acknowledgement body the platform expects."""

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        """Canonical observations in this delivery; raise ``NormalisationError`` when it has none."""


def parse_json(body: bytes) -> Any:
    """The verified body as JSON (UTF-8, RFC 8259; no guessing), bounded: see ``shared.sources.wire``."""
    return wire.loads(body)


@dataclass(frozen=True)
class Part:
    """One delivery inside a request: its identity and, for a batch, its own body (``None``: the whole body)."""

    delivery: Delivery
    body: str | None


@runtime_checkable
class BatchSource(Protocol):
    """A source that sends several deliveries in one request (Douyin shop)."""

    def split(self, headers: Headers, payload: Any) -> list[Part]:
        """Each delivery with its own dedupe id and body; raise ``MalformedPayload`` if there are none."""


class JsonSource:
    """Defaults for the usual case: no health-check pings, a JSON body."""

    def ping(self, headers: Headers, body: bytes) -> Ack | None:
        return None

    def parse(self, headers: Headers, body: bytes) -> Any:
        return parse_json(body)


# What a payload of the wrong shape raises inside a normaliser (ValidationError is a ValueError,
# InvalidOperation an ArithmeticError): caught and turned into a NormalisationError, i.e. quarantined.
PAYLOAD_ERRORS: tuple[type[Exception], ...] = (
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    AttributeError,
    ArithmeticError,
)


def describe_error(exc: Exception) -> str:
    """What was wrong with a payload: a field path and an error kind (``lines.0.quantity: Input should
    be a valid integer``, ``missing field 'currency'``, ``ValueError``), never the value (personal data)."""
    return describe(exc)[:300]


def observation(
    source: str, message: InboxMessage, entity_type: str, entity_id: str, entity: Any, occurred_at: Any
) -> ObservedEntity:
    """A canonical observation of one entity from one delivery, with its deterministic event id."""
    return ObservedEntity(
        event_id=event_id_for(message.dedupe_key, entity_type, entity_id),
        tenant=message.tenant,
        source=source,
        source_event_id=message.source_event_id,
        topic=message.topic,
        entity_type=entity_type,
        entity_id=entity_id,
        occurred_at=occurred_at,
        received_at=message.received_at,
        origin=message.origin,
        entity=entity,
    )


def event_id_for(dedupe_key: str, entity_type: str, entity_id: str) -> str:
    """Deterministic canonical event id: replays and duplicates of a delivery carry the same id."""
    return hashlib.sha256(f"{dedupe_key}|{entity_type}|{entity_id}".encode()).hexdigest()[:32]
