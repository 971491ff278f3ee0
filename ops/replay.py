"""Replay archived raw envelopes through normalise (origin ``replay``): after a fix, after a
quarantine, or to rebuild state. The canonical event ids are derived from the original dedupe keys,
so a replay of something already applied changes nothing.

Where envelopes are (see docs/operations.md "Replay"):

- batch objects, one per inbox batch, written by normalise: ``raw/batches/<shard>/YYYY/MM/DD/HH/
  <MMSS>-<MMSS>-<batch id>.jsonl.gz`` — every source and tenant together, so an hour's objects are
  listed in its 16 shards, those whose first..last minute and second miss the window are skipped by
  name, and the rest are read and filtered by source, tenant and time;
- per-event objects ``raw/<source>/<tenant>/YYYY/MM/DD/HH/…json`` from before batch objects (and a
  body too large for a queue message, which ingest still puts there first).

A message the queue delivered twice is in two batch objects, and a large one in both layouts: each
dedupe key is replayed once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from shared.constants import (
    ARCHIVE_SHARDS,
    BATCH_SUFFIX,
    INLINE_MESSAGE_MAX_BYTES,
    raw_batch_hour_prefix,
    raw_event_hour_prefix,
)
from shared.models import InboxMessage

READERS = 8  # objects read at once


class ArchiveLister(Protocol):
    def keys(self, prefix: str) -> list[str]: ...

    def get(self, key: str) -> bytes: ...

    def lines(self, key: str) -> list[str]: ...


class Inbox(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


@dataclass(frozen=True)
class ReplaySelection:
    source: str
    tenant: str
    since: datetime
    until: datetime
    entity_id: str | None = None  # only deliveries whose body mentions this id

    def selects(self, message: InboxMessage) -> bool:
        if (message.source, message.tenant) != (self.source, self.tenant):
            return False
        if not self.since <= message.received_at <= self.until:
            return False
        return not self.entity_id or self.entity_id.split(":", 1)[-1] in (message.body or "")


def hours(selection: ReplaySelection) -> Iterator[datetime]:
    """The hours (UTC, as archive keys are) the window touches."""
    hour = selection.since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= selection.until:
        yield hour
        hour += timedelta(hours=1)


def batch_in_window(key: str, hour: datetime, selection: ReplaySelection) -> bool:
    """Whether a batch object's first..last receipt (to the second, from its name) meets the window."""
    name = key.rsplit("/", 1)[-1]
    if not name.endswith(BATCH_SUFFIX) or len(name) < 9 or name[4] != "-":
        return False
    try:
        first = hour.replace(minute=int(name[0:2]), second=int(name[2:4]))
        last = hour.replace(minute=int(name[5:7]), second=int(name[7:9]))
    except ValueError:
        return False
    return first <= selection.until and last + timedelta(seconds=1) > selection.since


def envelopes(selection: ReplaySelection, archive: ArchiveLister, hour: datetime) -> list[InboxMessage]:
    """The selected envelopes received in ``hour``, from both layouts, in order of receipt."""
    batch_keys = [
        key
        for shard in ARCHIVE_SHARDS
        for key in sorted(archive.keys(raw_batch_hour_prefix(shard, hour)))
        if batch_in_window(key, hour, selection)
    ]
    event_keys = sorted(archive.keys(raw_event_hour_prefix(selection.source, selection.tenant, hour)))
    with ThreadPoolExecutor(READERS) as pool:
        documents = [line for lines in pool.map(archive.lines, batch_keys) for line in lines]
        documents += [body.decode("utf-8") for body in pool.map(archive.get, event_keys)]
    found = []
    for document in documents:
        try:
            message = InboxMessage.model_validate_json(document)
        except ValidationError:
            continue  # not an envelope: nothing to replay
        if selection.selects(message):
            found.append(message)
    return sorted(found, key=lambda m: (m.received_at, m.dedupe_key))


def replay(
    selection: ReplaySelection,
    archive: ArchiveLister,
    inbox: Inbox,
    progress: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Re-enqueue the selected envelopes, each dedupe key once; returns the dedupe keys replayed, in
    order of receipt. ``progress`` hears (replayed so far, hour being read) as the work goes on."""
    replayed: list[str] = []
    seen: set[str] = set()
    for hour in hours(selection):
        for message in envelopes(selection, archive, hour):
            if message.dedupe_key in seen:
                continue
            seen.add(message.dedupe_key)
            again = message.model_copy(update={"origin": "replay"})
            if len((again.body or "").encode()) > INLINE_MESSAGE_MAX_BYTES and again.archive_key:
                again = again.model_copy(update={"body": None})  # too large for a message: by its archive key
            inbox.send(
                again.model_dump_json(),
                {"source": message.source, "tenant": message.tenant, "origin": "replay"},
            )
            replayed.append(message.dedupe_key)
            if progress:
                progress(len(replayed), f"{hour:%Y-%m-%d %H}:00")
    return replayed
