"""Declarative field maps: an in-house system's own JSON -> canonical observations, from config.

Systems that cannot speak the canonical model (an old WMS, a POS) get a map in ``cdk.json``
(``field_maps.<source>``) instead of code. A map names the entity type, where the records are,
and for each canonical field where its value comes from::

    {"entity_type": "stock",
     "records": "movements",                       # optional: a list in the body; else the body is one record
     "entity_id": {"template": "{sku}@{location}"},
     "occurred_at": {"path": "$.moved_at", "utc_offset": "+08:00"},   # "$." : from the body, not the record
     "fields": {"adjustment_id": "id",              # a dotted path into the record
                "sku": "item.code",
                "delta": {"path": "qty"},
                "reason": {"path": "type", "map": {"RET": "return_restock", "SALE": "sale"}},
                "location": "$.warehouse"}}

A target field may be dotted (``total.amount``) to build a nested value. A path the record does not
have leaves the field out — it is never sent as null — and the canonical model then says whether
the observation is still valid; a value the ``map`` does not list is an error naming the value.
Maps are validated when the config is loaded (synth, sandbox start, function start).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.models import ENTITY_MODELS, EntityType

PATH = r"^(\$\.)?[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$"  # "$." starts at the body, not the record
_MISSING = object()


class MappingFailed(ValueError):
    """A record the map cannot turn into an observation; the message names the field."""


class Rule(BaseModel):
    """Where one value comes from: a path (optionally through a code map), a constant, or a template."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    path: Annotated[str, Field(pattern=PATH)] | None = None
    map: dict[str, Any] | None = None
    const: Any = None
    template: str | None = None
    # For naive local times (occurred_at). A fixed offset, not a zone name: Lambda's runtime carries
    # no time-zone database, and the systems this is for (mainland China) keep one offset all year.
    utc_offset: Annotated[str, Field(pattern=r"^[+-](0\d|1[0-4]):[0-5]\d$")] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Rule:
        kinds = [k for k in ("path", "const", "template") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a rule needs exactly one of path, const or template (got {kinds or 'none'})")
        if self.map is not None and self.path is None:
            raise ValueError("'map' applies to a 'path'")
        return self

    def value(self, record: Any, body: Any, mapped: dict[str, Any], name: str) -> Any:
        if self.const is not None:
            return self.const
        if self.template is not None:
            try:
                return self.template.format(**mapped)
            except KeyError as exc:
                raise MappingFailed(f"{name}: template needs field {exc.args[0]!r}, which this record lacks") from exc
        path = self.path or ""
        found = _lookup(body, path[2:]) if path.startswith("$.") else _lookup(record, path)
        if found is _MISSING or found is None:
            return _MISSING
        if self.map is not None:
            if str(found) not in self.map:
                raise MappingFailed(f"{name}: {self.path} value is not in the map")
            return self.map[str(found)]
        return found


def _rule(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class FieldMap(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    entity_type: EntityType
    records: Annotated[str, Field(pattern=PATH)] | None = None
    entity_id: Rule
    occurred_at: Rule
    fields: dict[str, Rule]

    @field_validator("entity_id", "occurred_at", mode="before")
    @classmethod
    def _rule_shorthand(cls, value: Any) -> Any:
        return _rule(value)

    @field_validator("fields", mode="before")
    @classmethod
    def _field_rules(cls, value: Any) -> Any:
        return {k: _rule(v) for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _targets_exist(self) -> FieldMap:
        model = ENTITY_MODELS[self.entity_type]
        unknown = sorted({name.split(".")[0] for name in self.fields} - set(model.model_fields))
        if unknown:
            raise ValueError(f"fields {unknown} are not fields of {self.entity_type} ({sorted(model.model_fields)})")
        return self

    def observations(self, body: Any) -> list[dict[str, Any]]:
        """Canonical observation dicts ``{entity_type, entity_id, occurred_at, entity}`` for the body."""
        records = _lookup(body, self.records.removeprefix("$.")) if self.records else [body]
        if records is _MISSING or not isinstance(records, list):
            raise MappingFailed(f"records: {self.records} is not a list in the body")
        return [self._one(record, body, index) for index, record in enumerate(records)]

    def _one(self, record: Any, body: Any, index: int) -> dict[str, Any]:
        mapped: dict[str, Any] = {}
        entity: dict[str, Any] = {}
        for name, rule in self.fields.items():
            value = rule.value(record, body, mapped, f"record {index} field {name}")
            if value is _MISSING:
                continue  # not in this record: left out, never sent as null
            mapped[name] = value
            _set(entity, name, value)
        entity_id = self.entity_id.value(record, body, mapped, f"record {index} entity_id")
        occurred = self.occurred_at.value(record, body, mapped, f"record {index} occurred_at")
        if entity_id is _MISSING or occurred is _MISSING:
            missing = "entity_id" if entity_id is _MISSING else "occurred_at"
            raise MappingFailed(f"record {index} {missing}: the record has no value at the mapped path")
        return {
            "entity_type": self.entity_type,
            "entity_id": str(entity_id),
            "occurred_at": _aware(occurred, self.occurred_at.utc_offset),
            "entity": entity,
        }


def _lookup(record: Any, path: str) -> Any:
    current = record
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"\d+", part) and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _set(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _aware(value: Any, utc_offset: str | None) -> Any:
    """A naive local time gets the map's offset; epoch seconds become UTC; aware times pass through."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, str) and utc_offset:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value  # the canonical model reports it
        if parsed.tzinfo is None:
            sign = -1 if utc_offset[0] == "-" else 1
            hours, minutes = int(utc_offset[1:3]), int(utc_offset[4:6])
            offset = timezone(sign * timedelta(hours=hours, minutes=minutes))
            return parsed.replace(tzinfo=offset).isoformat()
    return value


FieldMaps = dict[str, FieldMap]
