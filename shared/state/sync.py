"""Sync: merge an observation into the entity's state with optimistic concurrency.

State and its audit record are committed together (one transaction in one item collection), so
neither lands without the other; the audit insert is the outbox from which ``entity.changed`` is
published. A concurrent writer makes the commit fail; the merge is then redone on fresh state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.models import ObservedEntity
from shared.state.audit import GENESIS, AuditRecord, audit_record
from shared.state.merge import Discarded, EntityState, merge
from shared.state.policy import ConflictPolicy


class StaleState(Exception):
    """The state changed since it was read (conditional write failed)."""


class StatePort(Protocol):
    def load(self, tenant: str, entity_type: str, entity_id: str) -> tuple[EntityState | None, str]: ...

    def commit(self, state: EntityState, expected_revision: int, audit: AuditRecord | None, head: str) -> None: ...

    def record_decisions(self, event: ObservedEntity, discarded: Sequence[Discarded]) -> None: ...


@dataclass(frozen=True)
class SyncResult:
    outcome: Literal["changed", "clock_only", "unchanged"]
    version: int
    changed_fields: tuple[str, ...]
    discarded_fields: tuple[str, ...]
    attempts: int


def apply_observation(
    event: ObservedEntity, store: StatePort, policy: ConflictPolicy, max_attempts: int = 10, hint: bool = False
) -> SyncResult:
    """``hint``: the observation only implies these values (see ``shared.state.merge.HINT_RANK``)."""
    entity_policy = policy.for_type(event.entity_type)
    for attempt in range(1, max_attempts + 1):
        current, head = store.load(event.tenant, event.entity_type, event.entity_id)
        outcome = merge(current, event, entity_policy, hint=hint)
        result = SyncResult(
            outcome="changed" if outcome.changes else "clock_only" if outcome.clocks_moved else "unchanged",
            version=outcome.state.version,
            changed_fields=tuple(c.field for c in outcome.changes),
            discarded_fields=tuple(d.field for d in outcome.discarded),
            attempts=attempt,
        )
        if not outcome.changes and outcome.discarded:
            # Nothing changed, so no audit record carries these decisions: record them on their own.
            store.record_decisions(event, outcome.discarded)
        if not outcome.needs_write:
            return result
        audit = (
            audit_record(event, outcome.state.version, outcome.changes, outcome.discarded, head or GENESIS)
            if outcome.changes
            else None
        )
        try:
            store.commit(outcome.state, current.revision if current else 0, audit, audit.hash if audit else head)
            return result
        except StaleState:
            time.sleep(random.uniform(0, 0.005 * attempt))  # noqa: S311 - jitter, not crypto
    raise StaleState(f"{event.entity_type} {event.entity_id}: still contended after {max_attempts} attempts")
