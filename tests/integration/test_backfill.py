"""Backfill on the real handlers: history enters like a webhook (archived, deduped, origin backfill),
reaches state and targets once, never overrides what is newer, and the report says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from infra.sandbox.samples import load_sample, signed
from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from shared.intake.ingest import StorePorts
from shared.pulls.backfill import OperatorRun, admit, lines, plan, verify
from shared.state.policy import default_policy
from tests.fakes import FILE
from tests.integration.conftest import Stack

LIVE_ORDER = "shopify:820982911946154508"


def test_a_backfilled_history_is_applied_once_and_never_overrides_newer_state(
    stack: Stack, shopify_secret: str
) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.post(signed("shopify_orders_updated", shopify_secret))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    live_before, _ = store.load("demo", "order", LIVE_ORDER)
    assert live_before is not None
    crm_before = len(stack.target.accepted("crm"))

    # The history: four orders nobody has seen, and an old copy of the live order (before it was updated).
    old_copy = {**load_sample("shopify_orders_create")["body"], "updated_at": "2026-11-20T09:00:00+08:00"}
    text = FILE.read_text(encoding="utf-8") + json.dumps(old_copy) + "\n"
    planned = plan("shopify", "demo", "orders/updated", lines(text), datetime.now(UTC))
    assert (len(planned.records), planned.rejected) == (5, ())
    refs = stack.resources.refs
    ports = StorePorts(
        archive=S3Archive(refs.archive_bucket),
        inbox=SqsQueue(stack.resources.queue_urls["inbox"]),
        once=AdmissionLedger(refs.idempotency_table, 3600),
    )
    ports.once.register_context(OperatorRun())  # as the CLI does
    admitted = admit(planned, ports)
    assert (len(admitted.new), len(admitted.duplicates)) == (5, 0)
    assert stack.depth("inbox") == 5 and all(a.message.archive_key is None for a in admitted.new)  # inline

    assert verify(planned, store.load_states, default_policy()).count("pending") == 4
    stack.run_until_quiet()

    report = verify(planned, store.load_states, default_policy())
    assert (report.count("applied"), report.count("pending"), report.complete) == (5, 0, True)
    live_after, _ = store.load("demo", "order", LIVE_ORDER)
    assert live_after is not None
    assert (live_after.version, live_after.fields) == (live_before.version, live_before.fields)  # newer state kept
    history = [json.loads(line) for line in FILE.read_text(encoding="utf-8").splitlines()]
    for record in history:
        state, _ = store.load("demo", "order", f"shopify:{record['id']}")
        assert state is not None
        assert (state.version, state.fields["order_number"], state.clocks["status"].source) == (
            1,
            record["name"],
            "shopify",
        )
    cancelled, _ = store.load("demo", "order", "shopify:5500000000000022")
    assert cancelled is not None and (cancelled.fields["status"], cancelled.fields["payment_status"]) == (
        "cancelled",
        "refunded",
    )
    crm = [d["body"] for d in stack.target.accepted("crm")[crm_before:]]
    # the four new orders, once each; the old copy of the live order sends nothing
    assert sorted(d["entity_id"] for d in crm) == sorted(f"shopify:{r['id']}" for r in history)

    again = admit(plan("shopify", "demo", "orders/updated", lines(text), datetime.now(UTC)), ports)
    assert (len(again.new), len(again.duplicates)) == (0, 5)
    stack.run_until_quiet()
    assert len(stack.target.accepted("crm")) == crm_before + 4
