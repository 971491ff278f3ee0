"""Conflict policy per entity type, kept as data in ``policy.json`` and validated on load.

Per field: 1) the more authoritative source wins; 2) else the newer source timestamp; 3) immutable
fields keep the value observed first. Equal clocks fall back to the larger event id so that every
order of arrival converges to the same state.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, RootModel

from shared.models import EntityType


class EntityPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    authority: dict[str, int]
    default_rank: int = 0
    immutable: frozenset[str] = frozenset()

    def rank(self, source: str) -> int:
        return self.authority.get(source, self.default_rank)


class ConflictPolicy(RootModel[dict[EntityType, EntityPolicy]]):
    def for_type(self, entity_type: EntityType) -> EntityPolicy:
        return self.root[entity_type]


@cache
def default_policy() -> ConflictPolicy:
    return ConflictPolicy.model_validate(json.loads((Path(__file__).parent / "policy.json").read_text("utf-8")))
