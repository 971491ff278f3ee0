"""In-memory fakes of the ports, for logic tests without AWS."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import moto.core.utils
import pytest

from infra.sandbox.lambda_runtime import sqs_record
from infra.sandbox.samples import SignedWebhook, signed
from infra.sandbox.wecom_robot import FakeRobotService
from shared.adapters.http import Response
from shared.adapters.idempotency import Claim
from shared.adapters.state_store import DynamoStateStore
from shared.errors import DuplicateConflict
from shared.models import EntityChanged, Money, ObservedEntity, Order
from shared.signing import standard_sign
from shared.state.audit import AuditRecord
from shared.state.merge import EntityState
from shared.state.policy import default_policy
from shared.state.sync import StaleState, apply_observation

if TYPE_CHECKING:
    from tests.integration.conftest import Stack


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
        self.fail_next: Exception | None = None  # the next send raises this (and sends nothing)

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        self.messages.append((body, attributes))
        return str(len(self.messages))


class FakeOnce:
    """Admission records in memory, with the same contract as ``AdmissionLedger``: a claim is owned
    when the key is new or its same-body record's lease ran out; another body is a conflict. ``now``
    is the clock (seconds), moved by a test to let a lease run out."""

    def __init__(self, lease_seconds: float = 3.0) -> None:
        self.results: dict[str, tuple[str, float, str]] = {}  # dedupe key -> (body hash, lease end, owner)
        self.lease_seconds = lease_seconds
        self.now = 0.0
        self.claims = 0

    def register_context(self, context: Any) -> None:
        pass

    def claim(self, dedupe_key: str, body_sha256: str) -> Claim:
        self.claims += 1
        old = self.results.get(dedupe_key)
        if old is not None and old[0] != body_sha256:
            raise DuplicateConflict(f"event {dedupe_key!r} was already received with a different body")
        if old is not None and old[1] >= self.now:
            return Claim(dedupe_key, owned=False, seen_before=True)
        owner = uuid.uuid4().hex
        self.results[dedupe_key] = (body_sha256, self.now + self.lease_seconds, owner)
        return Claim(dedupe_key, owned=True, seen_before=old is not None, owner=owner)

    def release(self, claim: Claim) -> None:
        if claim.owned and self.results.get(claim.dedupe_key, ("", 0.0, ""))[2] == claim.owner:
            del self.results[claim.dedupe_key]


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


# --- from tests/unit/test_merge_and_sync.py ---
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def order(**changes: Any) -> Order:
    base: dict[str, Any] = dict(
        order_id="1",
        order_number="#1",
        channel="shopify",
        status="open",
        payment_status="paid",
        fulfillment_status="unfulfilled",
        total=Money(amount=Decimal("10.00"), currency="CNY"),
        purchased_at=T0,
        note=None,
    )
    base.update(changes)
    return Order(**base)


def observed(event_id: str, minutes: int, source: str = "shopify", **changes: Any) -> ObservedEntity:
    return ObservedEntity(
        event_id=event_id,
        tenant="t",
        source=source,
        source_event_id=event_id,
        topic="orders/updated",
        entity_type="order",
        entity_id="shopify:1",
        occurred_at=T0 + timedelta(minutes=minutes),
        received_at=T0 + timedelta(hours=1),
        origin="webhook",
        entity=order(**changes),
    )


# --- from tests/unit/test_wecom.py ---
def cloudwatch_message(name: str, state: str = "ALARM", value: str = "0.9712") -> str:
    return json.dumps(
        {
            "AlarmName": name,
            "AlarmArn": f"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:{name}",
            "NewStateValue": state,
            "OldStateValue": "OK" if state == "ALARM" else "ALARM",
            "NewStateReason": f"Threshold Crossed: 1 out of the last 1 datapoints [{value} (23/11/26 08:00:00)] "
            "was less than the threshold (0.999) (minimum 1 datapoint for OK -> ALARM transition).",
            "StateChangeTime": "2026-11-23T08:00:12.345+0000",
            "Region": "EU (Ireland)",
            "Trigger": {"Threshold": 0.999, "ComparisonOperator": "LessThanThreshold", "Metrics": []},
        }
    )


class Port:
    def __init__(self, service: FakeRobotService) -> None:
        self.service = service

    def send(self, key: str, payload: dict[str, object]) -> int:
        return self.service.handle(key, payload)


# --- from tests/integration/test_inhouse_pipeline.py ---
ERP_SECRET = "whsec_ZXJwLXNhbmRib3gtc2lnbmluZy1rZXktMzItYnl0ZXMh"  # the sandbox's erp secret (secrets.local.json)


def erp_webhook(webhook_id: str, body: dict[str, object] | list[object]) -> SignedWebhook:
    raw = json.dumps(body).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_sign(ERP_SECRET, webhook_id, timestamp, raw),
    }
    return SignedWebhook(webhook_id, "erp", headers, raw)


# --- from tests/unit/test_backfill.py ---
FILE = Path(__file__).resolve().parents[1] / "events" / "backfill" / "shopify_orders_2025.jsonl"


def records() -> list[dict[str, object]]:
    return [json.loads(line) for line in FILE.read_text(encoding="utf-8").splitlines()]


# --- from tests/integration/test_action_once.py ---
CASE = "shopify:refund:929361463"


def copy_of_the_change(stack: Stack) -> dict[str, Any]:
    """One SQS record of the case's ``entity.changed`` (a new message id each time: another copy)."""
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "after_sales_case", CASE)
    assert state is not None and state.fields["status"] == "approved"
    changed = EntityChanged(
        tenant="demo",
        entity_type="after_sales_case",
        entity_id=CASE,
        version=state.version,
        event_id="e",
        origin_source="shopify",
        occurred_at=datetime(2026, 12, 2, 10, tzinfo=UTC),
        changed=dict(state.fields),
    )
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "entity.changed",
        "source": "aftersync",
        "account": "123456789012",
        "time": "2026-12-02T10:00:00Z",
        "region": stack.cfg.region,
        "resources": [],
        "detail": json.loads(changed.model_dump_json()),
    }
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": str(uuid.uuid4()), "Body": json.dumps(event)}
    return sqs_record(message, stack.resources.queue_arns["automation"], stack.cfg.region)


# --- from tests/unit/test_delivery_logic.py ---
class Clock:
    """A clock the test moves: the deliver handler's ``time.time`` and ``utcnow``, and moto's own
    clock (message delays, visibility), so a wait of minutes takes no real time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: float) -> None:
        import functions.deliver.handler as deliver

        self.now = start
        monkeypatch.setattr(time, "time", lambda: self.now)
        monkeypatch.setattr(
            moto.core.utils, "utcnow", lambda: datetime.fromtimestamp(self.now, UTC).replace(tzinfo=None)
        )
        monkeypatch.setattr(deliver, "utcnow", lambda: datetime.fromtimestamp(self.now, UTC))

    @staticmethod
    def next_minute_plus(seconds: int) -> float:
        """A start after the real now (messages sent before the clock was set stay in the past), at
        ``seconds`` into its minute (a per-minute limit does not roll over under the test)."""
        return (int(time.time()) // 60 + 1) * 60 + seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- from tests/unit/test_delivery_ids.py ---
def changed(entity_id: str, version: int) -> EntityChanged:
    return EntityChanged(
        tenant="t",
        entity_type="order",
        entity_id=entity_id,
        version=version,
        event_id="e",
        origin_source="shopify",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        changed={},
    )


def observe(store: FakeStateStore, entity_id: str, minutes: int, **fields: Any) -> None:
    event = observed(f"{entity_id}-{minutes}", minutes, **fields)
    apply_observation(event.model_copy(update={"entity_id": entity_id}), store, default_policy())


def stage_approved_refund(stack: Stack, shopify_secret: str) -> None:
    """An approved refund on an order with a phone and an e-mail, in the state, before any rule has run
    (the automation queue is left unconsumed)."""
    for name in ("shopify_orders_create", "shopify_refunds_create_pending"):
        assert stack.post(signed(name, shopify_secret))["statusCode"] == 200
        stack.run_until_quiet(skip=frozenset({"automate"}))
