"""Pure, deterministic merge of one observation into an entity's state.

Every field carries the clock of the observation that set it: (authority rank, source time,
event id). An incoming value replaces the current one only when its clock is greater (immutable
fields: earlier), so the final state is the same for any order and duplication of the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.models import ObservedEntity
from shared.state.policy import EntityPolicy


class FieldClock(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    rank: int
    at: str  # UTC, fixed-width ISO-8601 with microseconds: orders lexicographically
    event_id: str
    source: str

    def newer_key(self) -> tuple[int, str, str]:
        return (self.rank, self.at, self.event_id)

    def first_key(self) -> tuple[str, str]:
        return (self.at, self.event_id)


class EntityState(BaseModel):
    """The merged state. ``version`` counts value changes (one audit record each); ``revision``
    counts every write and is the optimistic-concurrency token."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tenant: str
    entity_type: str
    entity_id: str
    version: int = 0
    revision: int = 0
    fields: dict[str, Any] = {}
    clocks: dict[str, FieldClock] = {}

    def snapshot(self) -> dict[str, Any]:
        """The merged content: what must be identical for any order of the same events. (``version``
        and ``revision`` count writes, and the number of writes depends on arrival order.)"""
        return self.model_dump(mode="json", exclude={"version", "revision"})


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Discarded:
    field: str
    offered: Any
    kept: Any
    reason: Literal["older", "lower_authority", "immutable"]


@dataclass(frozen=True)
class MergeOutcome:
    state: EntityState
    changes: tuple[Change, ...]
    discarded: tuple[Discarded, ...]
    clocks_moved: bool

    @property
    def needs_write(self) -> bool:
        return bool(self.changes) or self.clocks_moved


def clock_time(event: ObservedEntity) -> str:
    return event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_MISSING = object()  # "no value yet", distinct from a stored None
# The rank of a hint: a value an observation of another entity implies (the buyer's name and phone on an
# order, for the customer). Below every source's own word, and among hints the first one seen stays:
# a guest-checkout placeholder or a B2B account named on thousands of orders is written by the first
# of them, not by each (no hot key), and any order of arrival still converges (the earliest hint wins).
HINT_RANK = -1
LOG_SUFFIX = "_log."  # state-machine observations: "<field>_log.<time>|<event id>"


def observation_fields(event: ObservedEntity, policy: EntityPolicy, clock: FieldClock) -> dict[str, Any]:
    """The fields an observation offers, as the merge sees them.

    Plain fields as they are; a state-machine field becomes an immutable log entry keyed by its
    clock; an accumulated entity (stock) becomes one immutable entry keyed by its own id.
    """
    values = event.entity.model_dump(mode="json", exclude_unset=True)
    for name in policy.per_source & set(values):
        values[f"{name}.{event.source}"] = values.pop(name)
    if policy.accumulate:
        entry_id = values.pop("adjustment_id")
        entry = {k: values.pop(k) for k in ("delta", "reason", "reference") if k in values}
        values[f"{policy.accumulate}.{entry_id}"] = entry
    machine = policy.state_machine
    if machine and machine.field in values:
        values[f"{machine.field}{LOG_SUFFIX}{clock.at}|{clock.event_id}"] = {
            "value": values.pop(machine.field),
            "source": clock.source,
        }
    return values


def _is_entry(name: str, policy: EntityPolicy) -> bool:
    return (policy.accumulate is not None and name.startswith(f"{policy.accumulate}.")) or (
        policy.state_machine is not None and name.startswith(f"{policy.state_machine.field}{LOG_SUFFIX}")
    )


def derive(fields: dict[str, Any], clocks: dict[str, FieldClock], policy: EntityPolicy) -> dict[str, Any]:
    """Values computed from the merged entries; a pure function of the set of entries."""
    derived: dict[str, Any] = {}
    if policy.accumulate:
        prefix = f"{policy.accumulate}."
        derived["quantity_delta"] = sum(v["delta"] for k, v in fields.items() if k.startswith(prefix))
    machine = policy.state_machine
    if machine:
        prefix = f"{machine.field}{LOG_SUFFIX}"
        current: str | None = None
        rejected = []
        for key in sorted(k for k in fields if k.startswith(prefix)):
            entry = fields[key]
            value, source = entry["value"], entry["source"]
            if machine.allows(current, value) or source in machine.authoritative_sources:
                current = value
            else:
                rejected.append(
                    {"at": key[len(prefix) :].split("|")[0], "from": current, "to": value, "source": source}
                )
        if current is not None:
            derived[machine.field] = current
        derived["rejected_transitions"] = rejected
    return derived


def merge(current: EntityState | None, event: ObservedEntity, policy: EntityPolicy, hint: bool = False) -> MergeOutcome:
    """``hint``: the observation is a hint (see ``HINT_RANK``); a hint that loses is not a decision worth
    recording, so it discards nothing."""
    state = current or EntityState(tenant=event.tenant, entity_type=event.entity_type, entity_id=event.entity_id)
    incoming_clock = FieldClock(
        rank=HINT_RANK if hint else policy.rank(event.source),
        at=clock_time(event),
        event_id=event.event_id,
        source=event.source,
    )
    fields = dict(state.fields)
    clocks = dict(state.clocks)
    changes: list[Change] = []
    discarded: list[Discarded] = []
    clocks_moved = False

    for name, value in sorted(observation_fields(event, policy, incoming_clock).items()):
        current_clock = clocks.get(name)
        if current_clock is None:
            wins, reason = True, None
        elif name in policy.immutable or _is_entry(name, policy) or (hint and current_clock.rank == HINT_RANK):
            wins, reason = incoming_clock.first_key() < current_clock.first_key(), "immutable"
        else:
            wins = incoming_clock.newer_key() > current_clock.newer_key()
            reason = "lower_authority" if incoming_clock.rank < current_clock.rank else "older"
        if wins:
            if name not in fields or fields[name] != value:
                changes.append(Change(name, fields.get(name), value))
            fields[name] = value
            clocks_moved |= current_clock != incoming_clock
            clocks[name] = incoming_clock
        elif fields.get(name) != value and reason is not None and not hint:
            discarded.append(Discarded(name, value, fields.get(name), reason))  # type: ignore[arg-type]

    if changes:
        derived_clock = max((clocks[n] for n in clocks if _is_entry(n, policy)), key=FieldClock.newer_key, default=None)
        for name, value in sorted(derive(fields, clocks, policy).items()):
            if fields.get(name, _MISSING) != value:
                changes.append(Change(name, fields.get(name), value))
                fields[name] = value
            if derived_clock is not None:
                clocks[name] = derived_clock.model_copy(update={"source": "derived"})

    new_state = state.model_copy(
        update={
            "fields": fields,
            "clocks": clocks,
            "version": state.version + (1 if changes else 0),
            "revision": state.revision + (1 if changes or clocks_moved else 0),
        }
    )
    return MergeOutcome(new_state, tuple(changes), tuple(discarded), clocks_moved)
