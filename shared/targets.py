"""Downstream targets as declarative config (validated by pydantic) and the change-only payload."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from shared.models import EntityType

# Identifiers always sent with a change so the target can find its record.
IDENTIFIERS: dict[str, tuple[str, ...]] = {"order": ("order_id", "order_number", "channel")}


class TargetConfig(BaseModel):
    """One downstream system. ``fields`` empty means every field of the wanted entity types."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")]
    kind: Literal["http"] = "http"
    url: HttpUrl
    entity_types: tuple[EntityType, ...]
    fields: tuple[str, ...] = ()
    timeout_seconds: Annotated[float, Field(gt=0, le=25)] = 5.0


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def value_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:32]


def pending_changes(
    target: TargetConfig,
    fields: Mapping[str, Any],
    field_sources: Mapping[str, str],
    acked_hashes: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fields whose value differs from what the target last acknowledged.

    Returns ``(to_send, new_acked_hashes)``. A field whose current value came from the target
    itself is not sent back (no echo) but is recorded as known to the target.
    """
    wanted = target.fields or tuple(sorted(fields))
    to_send: dict[str, Any] = {}
    hashes = dict(acked_hashes)
    for name in wanted:
        if name not in fields:
            continue
        digest = value_hash(fields[name])
        if hashes.get(name) == digest:
            continue
        hashes[name] = digest
        if field_sources.get(name) != target.name:
            to_send[name] = fields[name]
    return to_send, hashes
