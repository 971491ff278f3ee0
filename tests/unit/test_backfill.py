"""Backfill: every record checked before anything is sent, admitted once, and verified against the state."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.intake.ingest import StorePorts
from shared.models import InboxMessage
from shared.pulls.backfill import admit, lines, one_by_one, plan, verify
from shared.state.policy import default_policy
from shared.state.sync import apply_observation
from tests.fakes import FILE, FakeArchive, FakeOnce, FakeQueue, FakeStateStore, records

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
POLICY = default_policy()


def text_of(*payloads: object) -> str:
    return "\n".join(json.dumps(p) if not isinstance(p, str) else p for p in payloads) + "\n"


def test_every_record_of_the_sample_file_normalises_to_its_order() -> None:
    result = plan("shopify", "demo", "orders/updated", lines(FILE.read_text(encoding="utf-8")), NOW)
    assert result.rejected == ()
    assert [r.line for r in result.records] == [1, 2, 3, 4]
    orders = sorted(e for e in result.entities if e[0] == "order")
    assert orders == [("order", f"shopify:{r['id']}") for r in sorted(records(), key=lambda r: str(r["id"]))]
    assert {r.message.origin for r in result.records} == {"backfill"}
    assert {o.origin for r in result.records for o in r.observations} == {"backfill"}


def test_rejected_records_are_named_by_line_with_the_reason() -> None:
    good, cancelled = records()[0], records()[3]
    text = text_of(good, "", "{not json", "[1, 2]", {**cancelled, "id": "not-a-number", "line_items": "x"})
    result = plan("shopify", "demo", "orders/updated", lines(text), NOW)
    assert [r.line for r in result.records] == [1]
    assert [(r.line, r.reason.split(":")[0]) for r in result.rejected] == [
        (3, "not JSON"),
        (4, "a record must be a JSON object, not list"),
        (5, "shopify"),
    ]
    assert "orders/updated payload is not usable" in result.rejected[2].reason


def test_a_topic_the_source_does_not_know_rejects_every_record() -> None:
    result = plan("shopify", "demo", "orders/exploded", lines(text_of(records()[0])), NOW)
    assert result.records == ()
    assert [r.reason for r in result.rejected] == ["shopify: unsupported topic 'orders/exploded'"]


def test_the_dedupe_key_is_the_records_content_so_a_second_run_admits_nothing_new() -> None:
    first = plan("shopify", "demo", "orders/updated", lines(FILE.read_text(encoding="utf-8")), NOW)
    again = plan("shopify", "demo", "orders/updated", lines(FILE.read_text(encoding="utf-8")), NOW.replace(hour=9))
    assert [r.message.dedupe_key for r in first.records] == [r.message.dedupe_key for r in again.records]
    assert all(r.message.dedupe_key.startswith("shopify:demo:backfill:") for r in first.records)
    changed = plan("shopify", "demo", "orders/updated", lines(text_of({**records()[0], "note": "x"})), NOW)
    assert changed.records[0].message.dedupe_key != first.records[0].message.dedupe_key

    archive, queue, once = FakeArchive(), FakeQueue(), FakeOnce()
    ports = StorePorts(archive=archive, inbox=queue, once=once)
    admitted = admit(first, ports)
    assert (len(admitted.new), len(admitted.duplicates)) == (4, 0)
    assert (len(admit(again, ports).new), len(admit(again, ports).duplicates)) == (0, 4)
    sent = [InboxMessage.model_validate_json(body) for body, _ in queue.messages]
    assert [m.dedupe_key for m in sent] == [r.message.dedupe_key for r in first.records]
    assert {m.origin for m in sent} == {"backfill"}
    assert [attributes for _, attributes in queue.messages] == [
        {"source": "shopify", "tenant": "demo", "origin": "backfill"}
    ] * 4
    assert archive.objects == {}  # inline envelopes are archived by normalise, in batches


def test_verify_says_applied_only_when_the_state_holds_the_record_or_what_beats_it() -> None:
    result = plan("shopify", "demo", "orders/updated", lines(FILE.read_text(encoding="utf-8")), NOW)
    store = FakeStateStore()

    load = one_by_one(lambda tenant, entity_type, entity_id: store.load(tenant, entity_type, entity_id)[0])

    report = verify(result, load, POLICY)
    assert (report.count("applied"), report.count("pending"), report.count("not_checked")) == (0, 4, 0)
    assert {c.note for c in report.checks if c.status == "pending"} == {"no state yet"}

    first = result.records[0]
    order = next(o for o in first.observations if o.entity_type == "order")
    apply_observation(order, store, POLICY)
    newer = order.model_copy(
        update={
            "event_id": "later",
            "occurred_at": order.occurred_at.replace(year=2026),
            "entity": order.entity.model_copy(update={"note": "gift wrap", "fulfillment_status": "partial"}),
        }
    )
    apply_observation(newer, store, POLICY)  # the shop changed it since: the record is still accounted for
    report = verify(result, load, POLICY)
    assert [(c.line, c.status) for c in report.checks if c.entity_type == "order"] == [
        (1, "applied"),
        (2, "pending"),
        (3, "pending"),
        (4, "pending"),
    ]

    second = next(o for o in result.records[1].observations if o.entity_type == "order")
    partial = second.model_copy(update={"entity": second.entity.model_copy(update={"note": "other"})})
    apply_observation(
        partial.model_copy(update={"event_id": "x", "occurred_at": NOW.replace(year=2024)}), store, POLICY
    )
    [check] = [c for c in verify(result, load, POLICY).checks if c.line == 2 and c.entity_type == "order"]
    assert (check.status, check.pending_fields) == ("pending", ("note",))
    assert not verify(result, load, POLICY).complete


def test_a_case_status_a_webhook_already_logged_is_applied_but_another_status_or_time_is_pending() -> None:
    refunded = json.loads(load_sample_text("woocommerce_order_refunded"))
    result = plan("woocommerce", "demo", "order.updated", [(1, json.dumps(refunded))], NOW)
    store = FakeStateStore()
    load = one_by_one(lambda tenant, entity_type, entity_id: store.load(tenant, entity_type, entity_id)[0])
    # the same order came by webhook: the same observations under another delivery's event ids
    for observation in result.records[0].observations:
        apply_observation(observation.model_copy(update={"event_id": f"webhook-{observation.event_id}"}), store, POLICY)
    assert {(c.entity_type, c.status) for c in verify(result, load, POLICY).checks} == {
        ("order", "applied"),
        ("after_sales_case", "applied"),  # its status log entry: same time, same status, same source
    }
    # the same status observed at a later time (the order changed again) is a new log entry: pending
    later = {**refunded, "date_modified_gmt": "2026-11-22T08:00:00", "status": "cancelled"}
    planned = plan("woocommerce", "demo", "order.updated", [(1, json.dumps(later))], NOW)
    pending = {c.entity_type: c.pending_fields for c in verify(planned, load, POLICY).checks if c.status == "pending"}
    [entry] = pending["after_sales_case"]
    assert entry.startswith("status_log.2026-11-22T08:00:00")
    assert "status" in pending["order"]


def load_sample_text(name: str) -> str:
    from infra.sandbox.samples import load_sample

    return json.dumps(load_sample(name)["body"])
