"""Audit records: one per value change, hash-chained per entity so an edit or a gap is detectable."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.delivery.targets import canonical_json
from shared.models import ObservedEntity
from shared.state.merge import Change, Discarded

GENESIS = "0" * 64


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tenant: str
    entity_type: str
    entity_id: str
    version: int
    event_id: str
    source: str
    source_event_id: str
    origin: str
    occurred_at: str
    changes: list[dict[str, Any]]
    discarded: list[dict[str, Any]]
    prev_hash: str
    hash: str = ""

    def computed_hash(self) -> str:
        body = self.model_dump(exclude={"hash"})
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def audit_record(
    event: ObservedEntity,
    version: int,
    changes: Sequence[Change],
    discarded: Sequence[Discarded],
    prev_hash: str,
) -> AuditRecord:
    record = AuditRecord(
        tenant=event.tenant,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        version=version,
        event_id=event.event_id,
        source=event.source,
        source_event_id=event.source_event_id,
        origin=event.origin,
        occurred_at=event.occurred_at.isoformat(),
        # "before" only when there was a value: a new entity's first record lists each field once.
        changes=[
            {"field": c.field, "after": c.after}
            if c.before is None
            else {"field": c.field, "before": c.before, "after": c.after}
            for c in changes
        ],
        discarded=[{"field": d.field, "offered": d.offered, "kept": d.kept, "reason": d.reason} for d in discarded],
        prev_hash=prev_hash,
    )
    return record.model_copy(update={"hash": record.computed_hash()})


def verify_chain(records: Sequence[AuditRecord], head: str | None = None) -> list[str]:
    """Problems found in an entity's trail (ordered by version); empty when intact.

    ``head`` is the hash the entity's state says its latest record has: with it, a deleted or
    replaced latest record is caught too.
    """
    problems = []
    prev = GENESIS
    for expected_version, record in enumerate(records, start=1):
        if record.version != expected_version:
            problems.append(f"version {expected_version} is missing (found {record.version})")
        if record.prev_hash != prev:
            problems.append(f"version {record.version}: previous-hash link broken")
        if record.computed_hash() != record.hash:
            problems.append(f"version {record.version}: content does not match its hash")
        prev = record.hash
    if head is not None and prev != (head or GENESIS):
        problems.append("the latest record does not match the state's audit head (deleted or replaced)")
    return problems
