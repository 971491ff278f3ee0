"""Replay archived raw envelopes through normalise (origin ``replay``): after a fix, after a
quarantine, or to rebuild state. The canonical event ids are derived from the original dedupe keys,
so a replay of something already applied changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from shared.models import InboxMessage


class ArchiveLister(Protocol):
    def keys(self, prefix: str) -> list[str]: ...

    def get(self, key: str) -> bytes: ...


class Inbox(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


@dataclass(frozen=True)
class ReplaySelection:
    source: str
    tenant: str
    since: datetime
    until: datetime
    entity_id: str | None = None  # only deliveries whose body mentions this id


def hour_prefixes(selection: ReplaySelection) -> Iterator[str]:
    """Archive keys are ``raw/{source}/{tenant}/YYYY/MM/DD/HH/…``: list only the hours in range."""
    hour = selection.since.replace(minute=0, second=0, microsecond=0)
    while hour <= selection.until:
        yield f"raw/{selection.source}/{selection.tenant}/{hour:%Y/%m/%d/%H}/"
        hour += timedelta(hours=1)


def replay(
    selection: ReplaySelection,
    archive: ArchiveLister,
    inbox: Inbox,
    progress: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Re-enqueue the selected envelopes; returns the dedupe keys replayed, in archive order.
    ``progress`` hears (replayed so far, hour prefix being read) as the work goes on."""
    replayed = []
    for prefix in hour_prefixes(selection):
        for key in sorted(archive.keys(prefix)):
            message = InboxMessage.model_validate_json(archive.get(key))
            if not selection.since <= message.received_at <= selection.until:
                continue
            if selection.entity_id and selection.entity_id.split(":", 1)[-1] not in (message.body or ""):
                continue
            inbox.send(
                message.model_copy(update={"origin": "replay"}).model_dump_json(),
                {"source": message.source, "tenant": message.tenant, "origin": "replay"},
            )
            replayed.append(message.dedupe_key)
            if progress:
                progress(len(replayed), prefix)
    return replayed
