"""An ERP speaking Standard Webhooks: its authority decides conflicts; bad bodies are quarantined."""

from __future__ import annotations

import json

from infra.sandbox.samples import signed
from shared.adapters.state_store import DynamoStateStore
from tests.fakes import erp_webhook
from tests.integration.conftest import Stack


def test_an_older_erp_value_beats_a_newer_shopify_value(stack: Stack, shopify_secret: str) -> None:
    stack.post(signed("shopify_orders_updated", shopify_secret))  # Shopify at 10:30 says: open
    closed_by_erp = {
        "entity_type": "order",
        "entity_id": "shopify:820982911946154508",
        "occurred_at": "2026-11-20T02:20:00Z",
        "entity": {"order_id": "820982911946154508", "status": "closed"},
    }
    response = stack.post(erp_webhook("msg_erp_1", closed_by_erp))
    assert json.loads(response["body"]) == {"status": "accepted", "webhook_id": "msg_erp_1"}
    stack.run_until_quiet()
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "order", "shopify:820982911946154508")
    assert state is not None
    assert (state.fields["status"], state.clocks["status"].source) == ("closed", "erp")  # authority beats time
    assert state.fields["note"] == "Leave at the front desk"  # fields the ERP did not send are untouched


def test_an_observation_the_model_rejects_is_quarantined_with_the_field(stack: Stack) -> None:
    bad = {
        "entity_type": "order",
        "entity_id": "erp:1",
        "occurred_at": "2026-11-20T02:20:00Z",
        "entity": {"order_id": "1", "status": "shipped-ish"},
    }
    assert stack.post(erp_webhook("msg_erp_2", bad))["statusCode"] == 200
    stack.run_until_quiet()
    [parked] = stack.messages("quarantine")
    reason = json.loads(parked["Body"])["reason"]
    assert reason.startswith("observation 0: status: Input should be 'open', 'closed', 'cancelled' or 'deleted'")


def test_a_wms_batch_in_its_own_format_is_mapped_by_config_and_reaches_stock_state(
    stack: Stack,
    sandbox_secrets: dict,  # type: ignore[type-arg]
) -> None:
    hook = signed("wms_stock_movements", sandbox_secrets["sources"]["wms"]["demo"][0])
    answer = stack.post(hook)
    assert json.loads(answer["body"]) == {"status": "accepted", "webhook_id": "msg_2kWvR8rYwms0007"}
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    restocked, _ = store.load("demo", "stock", "FILTER-X1@SH-01")
    sold, _ = store.load("demo", "stock", "AIRPURIFIER-X1@SH-01")
    assert restocked is not None and sold is not None
    assert (restocked.fields["quantity_delta"], sold.fields["quantity_delta"]) == (1, -2)
    assert stack.depth("quarantine") == 0
