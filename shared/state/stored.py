"""The state item's document as stored: compact, and every older layout still readable.

DynamoDB bills a write by the item's size (1 KB units, doubled inside a transaction), and the
merge keeps a clock per field: stored as it is in memory, the clock (rank, time, event id, source)
is repeated for every field one observation set, so clocks were two thirds of an order's item.
Stored now (layout 2):

- fields are grouped under the clock that set them, so each distinct clock is written once
  (one observation sets most fields of an order: an order is two or three groups);
- the document is compact JSON compressed with zlib, kept as a Binary attribute ``docz``.

Layout 1 (``doc``: the pydantic dump as a String) is still read, so items written before this
change load as they are; their next change rewrites them in layout 2.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from shared.delivery.targets import canonical_json
from shared.state.merge import EntityState, FieldClock

LAYOUT = 2
COMPRESSION_LEVEL = 9  # documents are small: the best ratio costs well under a millisecond


def pack(state: EntityState) -> bytes:
    """The compressed layout-2 document (version and revision travel as item attributes)."""
    groups: dict[tuple[int, str, str, str], dict[str, Any]] = {}
    for name, clock in state.clocks.items():
        if name in state.fields:
            groups.setdefault((clock.rank, clock.at, clock.event_id, clock.source), {})[name] = state.fields[name]
    unclocked = {name: value for name, value in state.fields.items() if name not in state.clocks}
    clock_only = {name: list(_key(c)) for name, c in state.clocks.items() if name not in state.fields}
    doc: dict[str, Any] = {
        "l": LAYOUT,
        "k": [state.tenant, state.entity_type, state.entity_id],
        "g": [[*key, values] for key, values in sorted(groups.items())],
    }
    if unclocked:
        doc["u"] = unclocked
    if clock_only:
        doc["o"] = clock_only
    return zlib.compress(canonical_json(doc).encode("utf-8"), COMPRESSION_LEVEL)


def unpack(data: bytes, version: int, revision: int) -> EntityState:
    doc = json.loads(zlib.decompress(data))
    if doc.get("l") != LAYOUT:
        raise ValueError(f"unknown state layout {doc.get('l')!r}")
    tenant, entity_type, entity_id = doc["k"]
    fields: dict[str, Any] = dict(doc.get("u", {}))
    clocks: dict[str, FieldClock] = {}
    for rank, at, event_id, source, values in doc["g"]:
        clock = FieldClock(rank=rank, at=at, event_id=event_id, source=source)
        for name, value in values.items():
            fields[name] = value
            clocks[name] = clock
    for name, (rank, at, event_id, source) in doc.get("o", {}).items():
        clocks[name] = FieldClock(rank=rank, at=at, event_id=event_id, source=source)
    return EntityState(
        tenant=tenant,
        entity_type=entity_type,
        entity_id=entity_id,
        version=version,
        revision=revision,
        fields=fields,
        clocks=clocks,
    )


def state_from_item(item: dict[str, Any]) -> EntityState:
    """The state in a STATE item of either layout (a DynamoDB low-level item)."""
    if "docz" in item:
        return unpack(bytes(item["docz"]["B"]), int(item["version"]["N"]), int(item["revision"]["N"]))
    return EntityState.model_validate_json(item["doc"]["S"])  # layout 1, written before the compact layout


def _key(clock: FieldClock) -> tuple[int, str, str, str]:
    return (clock.rank, clock.at, clock.event_id, clock.source)
