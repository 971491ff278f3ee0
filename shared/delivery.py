"""Delivery to one target: send the fields the target has not acknowledged yet, then record the ack.

Delivery is driven by the current state, not by the triggering event, so reordered or coalesced
``entity.changed`` events still send every change exactly as far as the target has not seen it;
a replay of an acknowledged version sends nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shared.errors import ConfigurationError, DeliveryFailed
from shared.models import EntityChanged, utcnow
from shared.state.merge import EntityState
from shared.targets import IDENTIFIERS, TargetConfig, pending_changes, value_hash


class DeliveryStore(Protocol):
    def load_for_delivery(
        self, tenant: str, entity_type: str, entity_id: str, target: str
    ) -> tuple[EntityState | None, dict[str, Any]]: ...

    def record_ack(self, state: EntityState, target: str, ack: dict[str, Any]) -> bool: ...


class HttpPort(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]: ...


class CredentialsPort(Protocol):
    def get_json(self, name: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["sent", "already_acknowledged", "nothing_new", "not_wanted"]
    version: int
    fields: tuple[str, ...] = ()
    payload_bytes: int = 0


def deliver_change(
    changed: EntityChanged,
    target: TargetConfig,
    store: DeliveryStore,
    http: HttpPort,
    credentials: dict[str, Any],
) -> DeliveryResult:
    if changed.entity_type not in target.entity_types:
        return DeliveryResult("not_wanted", changed.version)
    state, ack = store.load_for_delivery(changed.tenant, changed.entity_type, changed.entity_id, target.name)
    if state is None:
        raise DeliveryFailed(f"{changed.entity_type} {changed.entity_id} has no state yet")
    if ack.get("version", 0) >= state.version:
        return DeliveryResult("already_acknowledged", state.version)

    sources = {name: clock.source for name, clock in state.clocks.items()}
    to_send, hashes = pending_changes(target, state.fields, sources, ack.get("hashes", {}))
    new_ack = {"version": state.version, "hashes": hashes, "payload_hash": ack.get("payload_hash", "")}
    if not to_send:
        store.record_ack(state, target.name, {**new_ack, "acked_at": utcnow().isoformat()})
        return DeliveryResult("nothing_new", state.version)

    payload = {
        "tenant": state.tenant,
        "entity_type": state.entity_type,
        "entity_id": state.entity_id,
        "version": state.version,
        "identifiers": {k: state.fields.get(k) for k in IDENTIFIERS.get(state.entity_type, ()) if k in state.fields},
        "changes": to_send,
    }
    payload_hash = value_hash(payload["changes"])
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    status, text = http.post(
        str(target.url),
        body,
        {"Content-Type": "application/json", **_auth_headers(credentials)},
        target.timeout_seconds,
    )
    if not 200 <= status < 300:
        raise DeliveryFailed(f"target {target.name} answered HTTP {status}: {text[:200]}")
    new_ack["payload_hash"] = payload_hash
    store.record_ack(state, target.name, {**new_ack, "acked_at": utcnow().isoformat()})
    return DeliveryResult("sent", state.version, tuple(sorted(to_send)), len(body))


def _auth_headers(credentials: dict[str, Any]) -> dict[str, str]:
    header, value = credentials.get("header"), credentials.get("value")
    if not isinstance(header, str) or not isinstance(value, str) or not header or not value:
        raise ConfigurationError('target credentials must be {"header": "<name>", "value": "<secret>"}')
    return {header: value}
