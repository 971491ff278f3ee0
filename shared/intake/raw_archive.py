"""The raw archive, written by normalise off the webhook's ack path: the envelopes of each inbox batch
as one gzip JSON Lines object (one per hour of receipt, so almost always one), before the batch is
acknowledged. Replay reads them back (``ops/replay.py``) and dedupes by dedupe key: a message the
queue delivers twice is archived twice, in two batches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from shared.constants import raw_batch_key
from shared.models import InboxMessage


class BatchArchive(Protocol):
    def put_lines(self, key: str, lines: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class Received:
    """One message of the batch as the queue delivered it."""

    message_id: str
    body: str


@dataclass(frozen=True)
class RawBatchObject:
    key: str
    lines: list[str]
    dedupe_keys: list[str]


def batch_id(message_ids: Sequence[str]) -> str:
    """The same messages give the same id (a retried batch rewrites its object), others another."""
    return hashlib.sha256("\n".join(sorted(message_ids)).encode()).hexdigest()[:32]


def one_line(body: str) -> str:
    """The envelope as received; a JSON document spread over lines (never what ingest sends) is put
    on one, unchanged in meaning."""
    if "\n" not in body and "\r" not in body:
        return body
    return json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":"))


def raw_batch_objects(received: Sequence[Received]) -> list[RawBatchObject]:
    """The objects archiving a batch: its envelopes grouped by the hour they were received (the hour
    in the key is the hour a replay lists), in the order the queue delivered them. A body that is not
    an inbox envelope is not archived: normalise quarantines it whole, and replay could not use it."""
    by_hour: dict[datetime, list[tuple[Received, InboxMessage]]] = {}
    for item in received:
        try:
            message = InboxMessage.model_validate_json(item.body)
        except ValidationError:
            continue
        hour = message.received_at.replace(minute=0, second=0, microsecond=0)
        by_hour.setdefault(hour, []).append((item, message))
    objects = []
    for hour, items in sorted(by_hour.items()):
        times = [m.received_at for _, m in items]
        key = raw_batch_key(batch_id([r.message_id for r, _ in items]), hour, min(times), max(times))
        objects.append(RawBatchObject(key, [one_line(r.body) for r, _ in items], [m.dedupe_key for _, m in items]))
    return objects


def archive_raw_batch(received: Sequence[Received], archive: BatchArchive) -> list[RawBatchObject]:
    """Write the batch's objects; an error propagates (the caller fails the whole batch: nothing is
    acknowledged unarchived)."""
    objects = raw_batch_objects(received)
    for item in objects:
        archive.put_lines(item.key, item.lines)
    return objects
