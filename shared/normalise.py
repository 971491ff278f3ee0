"""Normalise: raw envelope from the inbox -> canonical observations (0..n per delivery)."""

from __future__ import annotations

from typing import Protocol

from shared.errors import MalformedPayload, NormalisationError
from shared.models import InboxMessage, ObservedEntity
from shared.sources import NORMALISERS
from shared.sources.base import Headers


class ArchiveReader(Protocol):
    def get(self, key: str) -> bytes: ...


def normalise_message(message: InboxMessage, archive: ArchiveReader) -> list[ObservedEntity]:
    source = NORMALISERS.get(message.source)
    if source is None:
        raise NormalisationError(message.source, "no adapter for this source")
    body = message.body
    if body is None:  # too large to travel inline: read the archived envelope
        body = InboxMessage.model_validate_json(archive.get(message.archive_key)).body
    try:
        payload = source.parse(Headers(message.headers), (body or "").encode("utf-8"))
    except MalformedPayload as exc:
        raise NormalisationError(message.source, str(exc)) from exc
    events = source.normalise(message, payload)
    if not events:
        raise NormalisationError(message.source, f"{message.topic} produced no canonical event")
    return events
