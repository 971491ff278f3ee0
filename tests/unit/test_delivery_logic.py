"""Change-only delivery from the current state against what the target acknowledged."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.delivery import deliver_change
from shared.errors import DeliveryFailed
from shared.models import EntityChanged
from shared.state.policy import default_policy
from shared.sync import apply_observation
from shared.targets import TargetConfig, pending_changes
from tests.unit.fakes import FakeHttp, FakeStateStore
from tests.unit.test_merge_and_sync import observed

CRM = TargetConfig(name="crm", url="https://crm.example.com/in", entity_types=("order",))
CREDENTIALS = {"header": "X-Api-Key", "value": "k"}


def changed(version: int) -> EntityChanged:
    return EntityChanged(
        tenant="t",
        entity_type="order",
        entity_id="shopify:1",
        version=version,
        event_id="e",
        origin_source="shopify",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        changed={},
    )


def test_first_delivery_sends_everything_then_only_what_changed() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    first = deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    assert (first.outcome, first.version) == ("sent", 1)
    assert "status" in json.loads(http.requests[0][1])["changes"]
    apply_observation(observed("b", 5, note="ring twice"), store, default_policy())
    second = deliver_change(changed(2), CRM, store, http, CREDENTIALS)
    url, body, headers = http.requests[1]
    payload = json.loads(body)
    assert (second.outcome, second.fields) == ("sent", ("note",))
    assert payload == {
        "tenant": "t",
        "entity_type": "order",
        "entity_id": "shopify:1",
        "version": 2,
        "identifiers": {"order_id": "1", "order_number": "#1", "channel": "shopify"},
        "changes": {"note": "ring twice"},
    }
    assert (url, headers["X-Api-Key"]) == ("https://crm.example.com/in", "k")


def test_a_replayed_trigger_sends_nothing() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    again = deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    assert again.outcome == "already_acknowledged"
    assert len(http.requests) == 1


def test_triggers_arriving_out_of_order_still_deliver_every_change_once() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    apply_observation(observed("b", 5, note="x"), store, default_policy())
    assert deliver_change(changed(2), CRM, store, http, CREDENTIALS).outcome == "sent"
    assert deliver_change(changed(1), CRM, store, http, CREDENTIALS).outcome == "already_acknowledged"
    assert json.loads(http.requests[0][1])["changes"]["note"] == "x"


def test_a_failing_target_raises_and_records_no_ack() -> None:
    store, http = FakeStateStore(), FakeHttp(status=503)
    apply_observation(observed("a", 0), store, default_policy())
    with pytest.raises(DeliveryFailed, match="target crm answered HTTP 503: unavailable"):
        deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    assert store.acks == {}


def test_a_value_that_came_from_the_target_is_not_echoed_back() -> None:
    to_send, hashes = pending_changes(
        CRM, {"note": "from crm", "status": "open"}, {"note": "crm", "status": "shopify"}, {}
    )
    assert to_send == {"status": "open"}
    assert set(hashes) == {"note", "status"}


def test_field_selection_limits_what_is_sent() -> None:
    only_status = CRM.model_copy(update={"fields": ("status",)})
    to_send, _ = pending_changes(only_status, {"note": "n", "status": "open"}, {}, {})
    assert to_send == {"status": "open"}
