"""WooCommerce pulled through the fake store's REST API by the real reconcile handler: an order whose
webhook never came (with its refund) reaches the state once, the one that came by webhook costs no write,
and the next run admits nothing."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.sandbox.samples import load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

REFUNDED = load_sample("woocommerce_order_refunded")


def at(minutes_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S")


def run_reconcile(stack: Stack) -> dict[str, Any]:
    run = stack.reconcile("woocommerce")
    run.pop("newest", None)
    return run


def test_an_order_no_webhook_brought_is_pulled_in_once_and_one_that_came_costs_no_write(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    # the refunded order came by webhook forty minutes ago
    secret = sandbox_secrets["sources"]["woocommerce"]["demo"][0]
    webhook = {**copy.deepcopy(REFUNDED["body"]), "date_modified_gmt": at(40)}
    body = json.dumps(webhook, separators=(",", ":")).encode()
    assert stack.post(signed("woocommerce_order_refunded", secret, body=body))["statusCode"] == 200
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    came, _ = store.load("demo", "order", f"woocommerce:{webhook['id']}")
    assert came is not None
    # the store lists it (unchanged) and another order, refunded too, whose webhook never came
    missed = copy.deepcopy(webhook)
    missed.update(id=9001, number="9001", date_modified_gmt=at(20))
    missed["refunds"] = [{**missed["refunds"][0], "id": 9101}]
    stack.woo.put(webhook, missed)

    first = run_reconcile(stack)
    assert first == {"pulled": 2, "known": 1, "missed": 1, "already_admitted": 0, "unusable": 0, "pages": 1}
    order, _ = store.load("demo", "order", "woocommerce:9001")
    case, _ = store.load("demo", "after_sales_case", "woocommerce:9101")
    assert order is not None and (order.fields["order_number"], order.fields["status"]) == ("9001", "closed")
    assert case is not None and (case.fields["order_id"], case.fields["status"]) == ("9001", "refunded")
    after, _ = store.load("demo", "order", f"woocommerce:{webhook['id']}")
    assert after is not None and after.version == came.version  # known: no write

    second = run_reconcile(stack)  # ten minutes before the watermark: the missed order again, known
    assert {k: second[k] for k in ("pulled", "known", "missed")} == {"pulled": 1, "known": 1, "missed": 0}
    again, _ = store.load("demo", "order", "woocommerce:9001")
    assert again is not None and again.version == order.version


def test_a_revoked_key_reaches_the_dlq_with_the_reason_and_without_the_key(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    stack.woo.authorization = "Basic cmV2b2tlZA=="  # the store revoked the key
    run_reconcile(stack)
    [dead] = stack.messages("reconcile-dlq")
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("PullFailed: woocommerce answered HTTP 401 (a ")
    assert sandbox_secrets["pull"]["woocommerce"]["demo"]["consumer_secret"] not in json.dumps(dead)
