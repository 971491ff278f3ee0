"""Normalise: raw envelope from the inbox -> canonical observations (0..n per delivery)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shared.errors import MalformedPayload, NormalisationError
from shared.intake.field_map import FieldMap, MappingFailed
from shared.models import InboxMessage, ObservedEntity
from shared.sources import NORMALISERS
from shared.sources.base import Headers


class ArchiveReader(Protocol):
    def get(self, key: str) -> bytes: ...


def normalise_message(
    message: InboxMessage,
    archive: ArchiveReader,
    field_maps: Mapping[str, FieldMap] | None = None,
    watch: Callable[[InboxMessage, Any], None] | None = None,
) -> list[ObservedEntity]:
    """The canonical observations in a delivery. A source with a field map in config (an in-house
    system with its own format) has its body mapped to canonical observations first. ``watch`` sees
    every payload that parsed, as the source sent it, before it is mapped or normalised (schema drift:
    a renamed field is seen even when the delivery is then quarantined for it)."""
    source = NORMALISERS.get(message.source)
    if source is None:
        raise NormalisationError(message.source, "no adapter for this source")
    body = message.body
    if body is None:  # too large to travel inline: read the archived envelope
        if message.archive_key is None:
            raise NormalisationError(message.source, "an envelope with neither a body nor an archive key")
        body = InboxMessage.model_validate_json(archive.get(message.archive_key)).body
    try:
        payload = source.parse(Headers(message.headers), (body or "").encode("utf-8"))
    except MalformedPayload as exc:
        raise NormalisationError(message.source, str(exc)) from exc
    if watch is not None:
        watch(message, payload)
    field_map = (field_maps or {}).get(message.source)
    if field_map is not None:
        try:
            payload = field_map.observations(payload)
        except MappingFailed as exc:
            raise NormalisationError(message.source, f"field map: {exc}") from exc
    events = source.normalise(message, payload)
    if not events:
        raise NormalisationError(message.source, f"{message.topic} produced no canonical event")
    return events
