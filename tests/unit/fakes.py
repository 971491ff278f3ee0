"""In-memory fakes of the ports, for logic tests without AWS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.adapters.http import Response
from shared.state.audit import AuditRecord
from shared.state.merge import EntityState
from shared.state.sync import StaleState


class FakeSecrets:
    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets
        self.reads: list[str] = []

    def get_json(self, name: str) -> dict[str, Any] | None:
        self.reads.append(name)
        return self.secrets.get(name)


class FakeArchive:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    def get(self, key: str) -> bytes:
        return self.objects[key]


class FakeQueue:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, str] | None]] = []

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        self.messages.append((body, attributes))
        return str(len(self.messages))


class FakeOnce:
    """Runs an action once per dedupe key, like the Powertools-backed adapter."""

    def __init__(self) -> None:
        self.results: dict[str, tuple[str, dict[str, Any]]] = {}

    def register_context(self, context: Any) -> None:
        pass

    def run(self, envelope: dict[str, Any], action: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        key = envelope["dedupe_key"]
        if key in self.results:
            return self.results[key][1], True
        self.results[key] = (envelope["body_sha256"], action())
        return self.results[key][1], False


class FakeStateStore:
    """State + audit in memory with the same optimistic-concurrency contract as DynamoDB."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str, str], tuple[EntityState, str]] = {}
        self.audit: dict[tuple[str, str, str], list[AuditRecord]] = {}
        self.acks: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.commits = 0
        self.decisions: dict[str, list[Any]] = {}
        self.conflicts_to_inject = 0

    def load(self, tenant: str, entity_type: str, entity_id: str) -> tuple[EntityState | None, str]:
        state, head = self.states.get((tenant, entity_type, entity_id), (None, ""))
        return state, head

    def commit(self, state: EntityState, expected_revision: int, audit: AuditRecord | None, head: str) -> None:
        key = (state.tenant, state.entity_type, state.entity_id)
        current = self.states.get(key)
        if self.conflicts_to_inject:
            self.conflicts_to_inject -= 1
            raise StaleState("injected")
        if (current[0].revision if current else 0) != expected_revision:
            raise StaleState("revision moved")
        self.states[key] = (state, head)
        if audit is not None:
            self.audit.setdefault(key, []).append(audit)
        self.commits += 1

    def record_decisions(self, event: Any, discarded: Any) -> None:
        self.decisions.setdefault(event.event_id, list(discarded))

    def load_for_delivery(
        self, tenant: str, entity_type: str, entity_id: str, target: str
    ) -> tuple[EntityState | None, dict[str, Any]]:
        state, _ = self.load(tenant, entity_type, entity_id)
        return state, self.acks.get((tenant, entity_type, entity_id, target), {"version": 0, "hashes": {}})

    def record_ack(self, state: EntityState, target: str, ack: dict[str, Any]) -> bool:
        key = (state.tenant, state.entity_type, state.entity_id, target)
        if self.acks.get(key, {}).get("version", 0) >= ack["version"]:
            return False
        self.acks[key] = ack
        return True


class FakeHttp:
    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, text: str | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.text = text
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        self.methods: list[str] = []

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float, method: str = "POST") -> Response:
        self.requests.append((url, body, headers))
        self.methods.append(method)
        text = self.text if self.text is not None else ("ok" if self.status < 300 else "unavailable")
        return Response(self.status, text, self.headers)
