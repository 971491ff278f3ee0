"""Conflict policy per entity type, kept as data in ``policy.json`` and validated on load.

Per field: 1) the more authoritative source wins; 2) else the newer source timestamp; 3) immutable
fields keep the value observed first. Equal clocks fall back to the larger event id so that every
order of arrival converges to the same state. Two kinds of field are not last-writer-wins:

- ``state_machine``: the field's observations are kept in a log and its value is derived by
  replaying the log (in source-time order) through the allowed transitions; an invalid transition
  is recorded, not applied, unless its source is authoritative for it.
- ``accumulate``: each observation is an immutable entry (e.g. stock adjustments), summed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, ConfigDict, RootModel, model_validator

from shared.models import ENTITY_MODELS, EntityType


class StateMachine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    field: str
    initial: frozenset[str]
    transitions: dict[str, frozenset[str]]
    authoritative_sources: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _closed(self) -> StateMachine:
        states = set(self.transitions)
        targets = set().union(*self.transitions.values()) | self.initial
        if not targets <= states:
            raise ValueError(f"state_machine: transitions to undeclared states {sorted(targets - states)}")
        return self

    def allows(self, before: str | None, after: str) -> bool:
        if before is None:
            return after in self.initial
        return after == before or after in self.transitions.get(before, frozenset())


class EntityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    authority: dict[str, int]
    default_rank: int = 0
    immutable: frozenset[str] = frozenset()
    state_machine: StateMachine | None = None
    accumulate: str | None = None
    per_source: frozenset[str] = frozenset()  # kept once per source: "<field>.<source>"

    def rank(self, source: str) -> int:
        return self.authority.get(source, self.default_rank)


class ConflictPolicy(RootModel[dict[EntityType, EntityPolicy]]):
    @model_validator(mode="after")
    def _every_type_and_field_known(self) -> ConflictPolicy:
        missing = set(get_args(EntityType)) - set(self.root)
        if missing:
            raise ValueError(f"no policy for entity types {sorted(missing)}")
        for entity_type, policy in self.root.items():
            fields = set(ENTITY_MODELS[entity_type].model_fields)
            unknown = set(policy.immutable) - fields
            if policy.state_machine and policy.state_machine.field not in fields:
                unknown.add(policy.state_machine.field)
            if unknown:
                raise ValueError(f"{entity_type}: policy names fields the model does not have: {sorted(unknown)}")
        return self

    def for_type(self, entity_type: str) -> EntityPolicy:
        if entity_type not in self.root:
            raise KeyError(f"no conflict policy for entity type {entity_type!r}")
        return self.root[entity_type]


def load_policy(path: Path) -> ConflictPolicy:
    return ConflictPolicy.model_validate(json.loads(path.read_text("utf-8")))


@cache
def default_policy() -> ConflictPolicy:
    return load_policy(Path(__file__).parent / "policy.json")
