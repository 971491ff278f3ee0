"""Taobao / Tmall pulled through the fake TOP gateway by the real reconcile handler: a trade and a refund
reach the state once; the next run finds them known and writes nothing; an invalid session reaches the
DLQ with the reason and without the session."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

CST = timezone(timedelta(hours=8))
TRADES, REFUNDS = "taobao.trades.sold.increment.get", "taobao.refunds.receive.get"


def cst(minutes_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def run_reconcile(stack: Stack) -> dict[str, Any]:
    run = stack.reconcile("taobao")
    run.pop("newest", None)
    return run


def test_a_trade_and_a_refund_reach_the_state_once_and_the_next_run_writes_nothing(stack: Stack) -> None:
    trade = {
        "tid": 3012345678901,
        "type": "tmall_i18n",
        "status": "WAIT_SELLER_SEND_GOODS",
        "payment": "268.00",
        "created": cst(50),
        "modified": cst(40),
        "buyer_open_uid": "AAGx-buyer",
    }
    refund = {
        "refund_id": 1560987,
        "tid": 3012345678901,
        "oid": 3012345678902,
        "status": "WAIT_SELLER_AGREE",
        "refund_fee": "68.00",
        "total_fee": "268.00",
        "has_good_return": False,
        "reason": "尺码不合适",
        "modified": cst(20),
    }
    stack.top.put(TRADES, trade)
    stack.top.put(REFUNDS, refund)
    crm_before = len(stack.target.accepted("crm"))

    first = run_reconcile(stack)
    assert first == {"pulled": 2, "known": 0, "missed": 2, "already_admitted": 0, "unusable": 0, "pages": 1}
    store = DynamoStateStore(stack.resources.refs.state_table)
    order, _ = store.load("demo", "order", "taobao:3012345678901")
    case, _ = store.load("demo", "after_sales_case", "taobao:1560987")
    assert order is not None and case is not None
    assert {k: order.fields[k] for k in ("channel", "status", "payment_status", "fulfillment_status")} == {
        "channel": "tmall",
        "status": "open",
        "payment_status": "paid",
        "fulfillment_status": "unfulfilled",
    }
    assert (case.fields["kind"], case.fields["status"], case.fields["order_id"]) == (
        "refund",
        "requested",
        "3012345678901",
    )
    assert [r["body"]["entity_id"] for r in stack.target.accepted("crm")[crm_before:]] == ["taobao:3012345678901"]
    versions = (order.version, case.version)

    # the next run starts ten minutes before the watermark: it sees the refund again and knows it
    second = run_reconcile(stack)
    assert {k: second[k] for k in ("pulled", "known", "missed")} == {"pulled": 1, "known": 1, "missed": 0}
    order, _ = store.load("demo", "order", "taobao:3012345678901")
    case, _ = store.load("demo", "after_sales_case", "taobao:1560987")
    assert (order.version, case.version) == versions  # type: ignore[union-attr]
    assert len(stack.target.accepted("crm")) == crm_before + 1


def test_an_invalid_session_reaches_the_dlq_with_the_reason_and_without_the_session(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    stack.top.error = 27
    run_reconcile(stack)
    [dead] = stack.messages("reconcile-dlq")
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("PullFailed: taobao taobao.trades.sold.increment.get: not authorised (code 27: Invalid")
    credentials = sandbox_secrets["pull"]["taobao"]["demo"]
    assert credentials["session"] not in json.dumps(dead) and credentials["app_secret"] not in json.dumps(dead)
