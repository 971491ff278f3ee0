"""Historical backfill: a file of one source's own records (as its API or an export gives them, one
JSON object per line) fed through the same path as a webhook, with origin ``backfill``.

Three steps, each usable alone:

1. ``plan``: every record is parsed and normalised here, before anything is stored. A record that
   would not normalise is reported with its line number and the reason; the caller decides whether
   anything is sent at all (by default nothing is, so a file is taken whole or not at all).
2. ``admit``: archive + inbox, once per record. The dedupe key is the hash of the record's bytes, so
   running the same file again admits nothing, and a record that changed since is admitted anew.
3. ``verify``: the report. A record counts as applied when merging it into the entity's current
   state would change nothing: the state holds its values, or values that beat them under the
   conflict policy (a newer clock, a higher authority, an immutable first value), or a state machine's
   status it already logged at that time from that source (another delivery of the same change: a
   pulled refund the webhook brought). Anything else is pending: not processed yet, or lost, with the
   fields that are missing.

Backfilled records carry no platform signature; the trust boundary is the operator's permission to
write to the stack's inbox, archive and idempotency table, as for ``aftersync replay``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from shared.errors import NormalisationError
from shared.intake.field_map import FieldMap
from shared.intake.ingest import Accepted, StorePorts, inbox_message, store_once
from shared.intake.normalise import normalise_message
from shared.models import InboxMessage, ObservedEntity
from shared.sources.base import Delivery
from shared.state.merge import LOG_SUFFIX, EntityState, merge
from shared.state.policy import ConflictPolicy

ORIGIN: Final = "backfill"


@dataclass(frozen=True)
class Record:
    line: int
    message: InboxMessage
    observations: tuple[ObservedEntity, ...]


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    message: InboxMessage | None = None  # a JSON object that would not normalise, as it would be enqueued


@dataclass(frozen=True)
class Plan:
    records: tuple[Record, ...]
    rejected: tuple[Rejected, ...]

    @property
    def entities(self) -> set[tuple[str, str]]:
        return {(o.entity_type, o.entity_id) for r in self.records for o in r.observations}


@dataclass(frozen=True)
class Admitted:
    new: tuple[Accepted, ...]
    duplicates: tuple[Accepted, ...]


@dataclass(frozen=True)
class Check:
    line: int
    entity_type: str
    entity_id: str
    status: Literal["applied", "pending", "not_checked"]
    pending_fields: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)

    @property
    def complete(self) -> bool:
        return self.count("pending") == 0


class OperatorRun:
    """The stand-in for a Lambda context when an operator admits records from the CLI: an admission
    cut short (the laptop closed mid-run) leaves an in-progress mark that lapses after this long, so
    the next run can take the record instead of waiting out the idempotency TTL."""

    def __init__(self, seconds: int = 60) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return self.seconds * 1000


def lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every non-blank line (JSON Lines)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


class _NoArchive:
    def get(self, key: str) -> bytes:  # every planned message carries its body inline
        raise LookupError(key)


def plan(
    source: str,
    tenant: str,
    topic: str,
    records: Iterable[tuple[int, str]],
    received_at: datetime,
    field_maps: Mapping[str, FieldMap] | None = None,
    origin: Literal["backfill", "reconcile"] = ORIGIN,
) -> Plan:
    """Parse and normalise every record, storing nothing; the rejects say which line and why. The
    dedupe key is ``<origin>:<hash of the record's bytes>``."""
    planned: list[Record] = []
    rejected: list[Rejected] = []
    for line, text in records:
        try:
            payload = json.loads(text)
        except ValueError as exc:
            rejected.append(Rejected(line, f"not JSON: {exc}"))
            continue
        if not isinstance(payload, dict):
            rejected.append(Rejected(line, f"a record must be a JSON object, not {type(payload).__name__}"))
            continue
        body = text.encode("utf-8")
        delivery = Delivery(source_event_id=f"{origin}:{hashlib.sha256(body).hexdigest()[:32]}", topic=topic)
        message = inbox_message(
            source, tenant, delivery, received_at, {"Content-Type": "application/json"}, body, origin=origin
        )
        try:
            observations = normalise_message(message, _NoArchive(), field_maps)
        except NormalisationError as exc:
            rejected.append(Rejected(line, str(exc), message))
            continue
        planned.append(Record(line, message, tuple(observations)))
    return Plan(tuple(planned), tuple(rejected))


def admit(plan: Plan, ports: StorePorts, progress: Callable[[int], None] | None = None) -> Admitted:
    """Archive and enqueue every planned record once; one already admitted is a duplicate."""
    results = []
    for n, record in enumerate(plan.records, start=1):
        results.append(store_once(record.message, ports))
        if progress:
            progress(n)
    return Admitted(tuple(a for a in results if not a.duplicate), tuple(a for a in results if a.duplicate))


StateKey = tuple[str, str, str]  # (tenant, entity type, entity id)
LoadStates = Callable[[list[StateKey]], Mapping[StateKey, EntityState]]


def one_by_one(load: Callable[[str, str, str], EntityState | None]) -> LoadStates:
    """A batch loader from a loader of one state (for stores without batch reads)."""
    return lambda keys: {k: state for k in keys if (state := load(*k)) is not None}


def _logged_already(state: EntityState, field: str, entry: Any) -> bool:
    """A state machine's log entry (``<field>_log.<time>|<event id>``) whose status the state already
    logged at that time from that source, by another delivery: the same observation, pulled or backfilled
    where a webhook brought it (only the event id differs)."""
    if LOG_SUFFIX not in field:
        return False
    prefix = field.rsplit("|", 1)[0] + "|"
    return any(k.startswith(prefix) and v == entry for k, v in state.fields.items())


def verify(plan: Plan, load_states: LoadStates, policy: ConflictPolicy) -> Report:
    """Whether the state reflects each record (see the module's docstring), reading every entity's
    state in one batch. Customers are resolved to an Aftersync customer id by identity, not by their
    source id, so they are not checked here; the orders, cases and tickets that name them are."""
    observed = [o for r in plan.records for o in r.observations if o.entity_type != "customer"]
    keys: list[StateKey] = [(o.tenant, o.entity_type, o.entity_id) for o in observed]
    states = load_states(keys) if keys else {}
    checks = []
    for record in plan.records:
        for observation in record.observations:
            kind, entity_id = observation.entity_type, observation.entity_id
            if kind == "customer":
                checks.append(Check(record.line, kind, entity_id, "not_checked", note="resolved by identity"))
                continue
            state = states.get((observation.tenant, kind, entity_id))
            if state is None:
                checks.append(Check(record.line, kind, entity_id, "pending", note="no state yet"))
                continue
            outcome = merge(state, observation, policy.for_type(kind))
            fields = tuple(sorted({c.field for c in outcome.changes if not _logged_already(state, c.field, c.after)}))
            checks.append(Check(record.line, kind, entity_id, "pending" if fields else "applied", fields))
    return Report(tuple(checks))
