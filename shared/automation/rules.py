"""After-sales automation: rules kept as data (``shared/automation/rules.json``), run on entity changes.

A rule names the entity type, the values that trigger it (``when``), the fields it needs, the role it
calls (config maps roles to targets: ``automation.payment`` → a payment target…), an idempotency key
and the request body, built from the entity's fields by path. Each action runs once per key: a ledger
item is claimed before the call and marked done after, and the key also travels as the
``Idempotency-Key`` header, so a retry after a crash between call and mark is deduplicated by the
receiver. A rule may write its result back as an observation (the payment refunded the case).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.models import ENTITY_MODELS, ObservedEntity
from shared.sources.base import event_id_for
from shared.state.merge import EntityState

AUTOMATED_TYPES = frozenset({"after_sales_case", "ticket"})  # tickets: dispatch (shared/automation/dispatch.py)
_RULES = Path(__file__).with_name("rules.json")


class Mapped(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    from_: Annotated[str, Field(alias="from")]
    map: dict[str, str]


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]+$")]
    description: str
    entity_type: Literal["after_sales_case"]
    when: dict[str, tuple[str, ...]]
    requires: tuple[str, ...] = ()
    # customer: the SMS / e-mail targets; fulfilment: outbound shipment requests (a WMS or 3PL)
    role: Literal["payment", "wms", "oms", "fulfilment", "customer"]
    key: str
    request: dict[str, str | Mapped]
    write_back: dict[str, str] = {}

    @property
    def needs_order(self) -> bool:
        """Whether the rule reads the case's order (paths ``order.…``)."""
        paths = [*self.requires, *(v.from_ if isinstance(v, Mapped) else v for v in self.request.values())]
        return any(path.startswith(ORDER_PREFIX) for path in paths)


ORDER_PREFIX = "order."


@cache
def rules() -> tuple[Rule, ...]:
    return TypeAdapter(tuple[Rule, ...]).validate_python(json.loads(_RULES.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Action:
    rule: Rule
    key: str  # the idempotency key the receiver sees (e.g. the case id for a refund)
    body: dict[str, Any]
    # why it cannot run yet: the order it reads is not synced (retry), or lacks a required field
    blocked: str | None = None
    order_missing: bool = False

    @property
    def ledger_key(self) -> str:
        return f"{self.rule.name}:{self.key}"


def _path(fields: dict[str, Any], path: str) -> Any:
    """``a.b`` into nested values; ``items[restock]`` keeps the list items whose ``restock`` is true."""
    match = re.fullmatch(r"(\w+)\[(\w+)\]", path)
    if match:
        values = fields.get(match.group(1)) or []
        return [{k: v for k, v in item.items() if k != match.group(2)} for item in values if item.get(match.group(2))]
    current: Any = fields
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return current


def _compact(value: Any) -> Any:
    """Absent values are left out of a request, at every depth (never sent as null)."""
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def actions_for(
    entity_type: str,
    changed: set[str],
    fields: dict[str, Any],
    load_order: Callable[[], dict[str, Any] | None] = lambda: None,
) -> list[Action]:
    """The actions an entity change triggers: a rule fires when a field it watches changed and every
    watched field now has one of its values, and the case fields it requires are present. Paths
    ``order.…`` read the case's order (loaded once, only when a firing rule needs it); a required
    order field that is missing does not skip the rule but blocks its action, with the reason."""
    fired = []
    for rule in rules():
        if rule.entity_type != entity_type or not changed & set(rule.when):
            continue
        if any(str(fields.get(name)) not in values for name, values in rule.when.items()):
            continue
        if any(_path(fields, name) in (None, [], "") for name in rule.requires if not name.startswith(ORDER_PREFIX)):
            continue
        fired.append(rule)
    order = load_order() if any(rule.needs_order for rule in fired) else None
    scope = {**fields, "order": order or {}}
    found = []
    for rule in fired:
        key = rule.key.format(**{k: v for k, v in fields.items() if isinstance(v, str | int)})
        absent = [name for name in rule.requires if name.startswith(ORDER_PREFIX) and _path(scope, name) in (None, "")]
        if absent:
            why = (
                f"order {fields.get('order_id')!r} is not synced yet"
                if order is None
                else f"order {fields.get('order_id')!r} has no {', '.join(absent)}"
            )
            found.append(Action(rule, key, {}, blocked=why, order_missing=order is None))
            continue
        body: dict[str, Any] = {}
        for out, source in rule.request.items():
            if isinstance(source, Mapped):
                value = source.map.get(str(_path(scope, source.from_)))
            else:
                value = _path(scope, source)
            if value not in (None, []):
                body[out] = _compact(value)
        found.append(Action(rule, key, body))
    return found


def result_observation(action: Action, state: EntityState, source: str, now: datetime) -> ObservedEntity:
    """An action's result as an observation of the entity from the target that did it (the payment
    target saw the refund through: ``refunded``). Its event id comes from the action's ledger key, so
    a repeated write-back is the same event."""
    entity = ENTITY_MODELS[state.entity_type].model_validate(
        {"case_id": state.fields["case_id"], "kind": state.fields["kind"], **action.rule.write_back}
    )
    return ObservedEntity(
        event_id=event_id_for(f"{source}:{action.ledger_key}", state.entity_type, state.entity_id),
        tenant=state.tenant,
        source=source,
        source_event_id=action.ledger_key,
        topic=f"automation:{action.rule.name}",
        entity_type=state.entity_type,
        entity_id=state.entity_id,
        occurred_at=now,
        received_at=now,
        origin="automation",
        entity=entity,
    )
