"""Expired audit and decision records as batch objects: the records of one stream batch grouped by
(entity shard, tenant, entity type) — one gzip JSON Lines object per group, not one per record.

All records of one entity share its shard (``entity_shard``), so the trail of an entity reads only
the objects under its shard, tenant and type (``audit_batch_prefix``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.constants import audit_batch_key, audit_batch_prefix


@dataclass(frozen=True)
class Expired:
    """One expired item, with the stream record it came in (``sequence``) and when it was removed."""

    sequence: str
    pk: str
    sk: str
    record: dict[str, Any]
    removed_at: datetime


@dataclass(frozen=True)
class AuditBatchObject:
    key: str
    lines: list[str]
    sequences: list[str]


def document(item: Expired) -> str:
    """One archived record, as the per-record objects held it (``pk``, ``sk``, ``record``)."""
    return json.dumps({"pk": item.pk, "sk": item.sk, "record": item.record}, sort_keys=True, ensure_ascii=False)


def audit_batch_objects(expired: Sequence[Expired]) -> list[AuditBatchObject]:
    """The objects for a batch's expired records: one per (shard, tenant, entity type), dated by its
    first record's removal; named by a hash of its records' sequence numbers, so a retried batch
    rewrites the same objects."""
    groups: dict[str, list[Expired]] = {}
    for item in expired:
        groups.setdefault(audit_batch_prefix(item.pk), []).append(item)
    objects = []
    for items in groups.values():
        sequences = [i.sequence for i in items]
        batch_id = hashlib.sha256("\n".join(sequences).encode()).hexdigest()[:32]
        key = audit_batch_key(items[0].pk, items[0].removed_at, batch_id)
        objects.append(AuditBatchObject(key, [document(i) for i in items], sequences))
    return objects
