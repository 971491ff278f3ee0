"""Stripe, Zendesk, AfterShip, Amazon SP-API, Douyin shop and Youzan pulled through their fake list APIs by the
real reconcile handler: per platform, the record whose webhook came costs no write, the one whose
webhook never came reaches the state once, and a second run admits nothing; a refused key reaches the
DLQ with the reason and without the key."""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from infra.sandbox.samples import load_sample, signed
from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.watermarks import ReconcileWatermarks
from shared.intake.ingest import StorePorts
from shared.pulls import reconcile
from shared.pulls.reconcile import ReconcileJob
from shared.pulls.stripe_events import StripeEvents
from shared.state.policy import default_policy
from tests.integration.conftest import Stack


def ago(minutes: int) -> datetime:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0)


def stripe_records() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the webhook's body, the event as the list gives it, the event of a refund no webhook brought)"""
    came = copy.deepcopy(load_sample("stripe_refund_updated")["body"])
    came["created"] = int(ago(40).timestamp())
    missed = copy.deepcopy(came)
    missed.update(id="evt_pulled_only", created=int(ago(20).timestamp()))
    missed["data"]["object"].update(id="re_pulled_only", amount=1200)
    return came, came, missed


def zendesk_records() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    came = copy.deepcopy(load_sample("zendesk_ticket_status_changed")["body"])
    came["time"] = came["detail"]["updated_at"] = ago(40).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = came["detail"]
    listed = {
        "id": int(detail["id"]),
        "status": detail["status"].lower(),
        "priority": detail["priority"].lower(),
        "assignee_id": int(detail["assignee_id"]),
        "requester_id": int(detail["requester_id"]),
        "subject": detail["subject"],
        "tags": detail["tags"],
        "type": "problem",
        "created_at": detail["created_at"],
        "updated_at": detail["updated_at"],
    }
    missed = {**listed, "id": 6001, "status": "pending", "updated_at": ago(20).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return came, listed, missed


def aftership_records() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    came = copy.deepcopy(load_sample("aftership_tracking_update")["body"])
    came["msg"].update(updated_at=ago(40).isoformat(), created_at=ago(600).isoformat())
    missed = copy.deepcopy(came["msg"])
    missed.update(id="trk-pulled-only", tracking_number="SF0000000001", tag="Delivered", updated_at=ago(20).isoformat())
    return came, came["msg"], missed


def douyin_records() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    push = copy.deepcopy(load_sample("douyin_batch")["body"][0])  # the order paid
    data = json.loads(push["data"])
    data.update(create_time=int(ago(60).timestamp()), pay_time=int(ago(40).timestamp()))
    push["data"] = json.dumps(data)
    listed = {**{k: v for k, v in data.items() if k != "p_id"}, "order_id": str(data["p_id"])}
    listed["update_time"] = data["pay_time"]
    missed = {**listed, "order_id": "6920000009999999999", "order_status": 3, "update_time": int(ago(20).timestamp())}
    return [push], listed, missed


def youzan_records() -> tuple[Any, dict[str, Any], dict[str, Any]]:
    push = copy.deepcopy(load_sample("youzan_trade_order_state")["body"])  # a trade paid
    push["version"] = int(ago(40).timestamp())
    china = timezone(timedelta(hours=8))
    changed = ago(40).astimezone(china).strftime("%Y-%m-%d %H:%M:%S")
    msg = json.loads(unquote_plus(push["msg"]))
    info = {"tid": msg["tid"], "status": msg["status"], "update_time": changed, "created": changed}
    listed = {"order_info": info, "pay_info": {"payment": msg["payment"]}}
    missed_info = {**info, "tid": "E20261121999999999999999", "status": "WAIT_BUYER_CONFIRM_GOODS"}
    missed_info["update_time"] = ago(20).astimezone(china).strftime("%Y-%m-%d %H:%M:%S")
    return push, {"full_order_info": listed}, {"full_order_info": {**listed, "order_info": missed_info}}


@dataclass(frozen=True)
class Case:
    source: str
    sample: str
    records: Callable[[], tuple[Any, dict[str, Any], dict[str, Any]]]
    came: tuple[str, str]  # (entity type, id) of the webhook's record
    missed: tuple[str, str]
    missed_fields: dict[str, Any]  # what the state holds of the missed record


CASES = [
    Case(
        "stripe",
        "stripe_refund_updated",
        stripe_records,
        ("after_sales_case", "stripe:" + load_sample("stripe_refund_updated")["body"]["data"]["object"]["id"]),
        ("after_sales_case", "stripe:re_pulled_only"),
        {"kind": "refund", "status": "refunded"},
    ),
    Case(
        "zendesk",
        "zendesk_ticket_status_changed",
        zendesk_records,
        ("ticket", "zendesk:5158"),
        ("ticket", "zendesk:6001"),
        {"status": "pending", "priority": "high"},
    ),
    Case(
        "aftership",
        "aftership_tracking_update",
        aftership_records,
        ("shipment", "sf-express:SF1410029637153"),
        ("shipment", "sf-express:SF0000000001"),
        {"status": "delivered", "carrier": "sf-express"},
    ),
    Case(
        "douyin",
        "douyin_batch",
        douyin_records,
        ("order", "douyin:6920000001234567890"),
        ("order", "douyin:6920000009999999999"),
        {"channel": "douyin", "fulfillment_status": "fulfilled"},
    ),
    Case(
        "youzan",
        "youzan_trade_order_state",
        youzan_records,
        ("order", "youzan:E20261121103015012300001"),
        ("order", "youzan:E20261121999999999999999"),
        {"channel": "youzan", "fulfillment_status": "fulfilled"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.source for c in CASES])
def test_a_record_no_webhook_brought_is_pulled_in_once_and_one_that_came_costs_no_write(
    stack: Stack, sandbox_secrets: dict[str, Any], case: Case
) -> None:
    came, listed, missed = case.records()
    secret = sandbox_secrets["sources"][case.source]["demo"][0]
    body = json.dumps(came, separators=(",", ":"), ensure_ascii=False).encode()
    assert stack.post(signed(case.sample, secret, body=body))["statusCode"] == 200
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    before, _ = store.load("demo", *case.came)
    assert before is not None
    stack.lists[case.source].put(listed, missed)

    first = stack.reconcile(case.source)
    first.pop("newest", None)
    assert first == {"pulled": 2, "known": 1, "missed": 1, "already_admitted": 0, "unusable": 0, "pages": 1}
    state, _ = store.load("demo", *case.missed)
    assert state is not None
    assert {k: state.fields[k] for k in case.missed_fields} == case.missed_fields
    after, _ = store.load("demo", *case.came)
    assert after is not None and after.version == before.version  # known: no write

    second = stack.reconcile(case.source)  # the overlap lists the missed record again: known now
    assert {k: second[k] for k in ("pulled", "known", "missed", "already_admitted")} == {
        "pulled": 1,
        "known": 1,
        "missed": 0,
        "already_admitted": 0,
    }
    again, _ = store.load("demo", *case.missed)
    assert again is not None and again.version == state.version


REFUSED = {
    source: rf"PullFailed: {source}( getOrders)? answered HTTP 401 \(a \d+-byte body, not kept\): "
    for source in ("stripe", "zendesk", "aftership", "amazon")
}
# Doudian and Youzan answer refusals with HTTP 200 and a code: the app's secret rotated, so the signature
# fails (Doudian) or the token is refused (Youzan)
REFUSED["douyin"] = r"PullFailed: douyin token.create: not authorised \(code 40004: .*authorise the app again"
REFUSED["youzan"] = r"PullFailed: youzan auth/token: error \(code 4001: "


@pytest.mark.parametrize("source", sorted(REFUSED))
def test_a_refused_key_reaches_the_dlq_with_the_reason_and_without_the_key(
    stack: Stack, sandbox_secrets: dict[str, Any], source: str
) -> None:
    fake = stack.lists[source]
    if source == "douyin":
        fake.app_secret = "rotated-in-the-console"  # type: ignore[attr-defined]
    elif source == "youzan":
        fake.grant["client_secret"] = "rotated-in-the-console"  # type: ignore[attr-defined]
    else:
        fake.refuse = lambda path, headers: (401, {"error": "revoked"}, {"Content-Type": "application/json"})  # type: ignore[method-assign]
    stack.reconcile(source)
    [dead] = stack.messages("reconcile-dlq")
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert re.match(REFUSED[source], reason), reason
    for secret in sandbox_secrets["pull"][source]["demo"].values():
        assert secret not in json.dumps(dead)


def test_an_amazon_order_no_notification_brought_is_pulled_in_once_and_one_that_came_costs_no_write(
    stack: Stack,
) -> None:
    # the notification came through the SP-API queue forty minutes ago
    notification = copy.deepcopy(load_sample("amazon_order_change")["body"])
    change = notification["Payload"]["OrderChangeNotification"]
    changed = ago(40).strftime("%Y-%m-%dT%H:%M:%SZ")
    notification["EventTime"] = change["OrderChangeTrigger"]["TimeOfOrderChange"] = changed
    boto3.client("sqs").send_message(
        QueueUrl=stack.resources.queue_urls["amazon"], MessageBody=json.dumps(notification)
    )
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    before, _ = store.load("demo", "order", f"amazon:{change['AmazonOrderId']}")
    assert before is not None
    listed = {
        "AmazonOrderId": change["AmazonOrderId"],
        "OrderStatus": change["Summary"]["OrderStatus"],
        "PurchaseDate": change["Summary"]["PurchaseDate"],
        "LastUpdateDate": changed,
        "MarketplaceId": change["Summary"]["MarketplaceId"],
    }
    missed = {
        **listed,
        "AmazonOrderId": "114-0000000-0000777",
        "OrderStatus": "Shipped",
        "LastUpdateDate": ago(20).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    stack.lists["amazon"].put(listed, missed)

    first = stack.reconcile("amazon")
    first.pop("newest", None)
    assert first == {"pulled": 2, "known": 1, "missed": 1, "already_admitted": 0, "unusable": 0, "pages": 1}
    state, _ = store.load("demo", "order", "amazon:114-0000000-0000777")
    assert state is not None
    assert (state.fields["channel"], state.fields["fulfillment_status"]) == ("amazon", "fulfilled")
    after, _ = store.load("demo", "order", f"amazon:{change['AmazonOrderId']}")
    assert after is not None and after.version == before.version


def test_two_concurrent_runs_of_one_pull_admit_the_missed_record_once(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    # the schedule's message and an operator's `aftersync reconcile` at the same moment (or SQS giving one
    # message to two invocations): both list the missed refund, one admits it, the other finds it admitted
    _, _, missed = stripe_records()
    stack.lists["stripe"].put(missed)
    refs = stack.resources.refs
    job = ReconcileJob.model_validate({"source": "stripe", "tenant": "demo"})
    key = sandbox_secrets["pull"]["stripe"]["demo"]["api_key"]
    store = DynamoStateStore(refs.state_table)
    copies = 2
    start = threading.Barrier(copies)
    results: list[dict[str, int]] = []

    def pull() -> None:
        ports = StorePorts(
            archive=S3Archive(refs.archive_bucket),
            inbox=SqsQueue(stack.resources.queue_urls["inbox"]),
            once=AdmissionLedger(refs.idempotency_table, 3600),
        )
        pager = StripeEvents(job, {"api_key": key}, stack.lists["stripe"])
        start.wait()
        now = datetime.now(UTC)
        marks = ReconcileWatermarks(refs.state_table)
        results.append(reconcile.run(job, pager, marks, store.load_states, default_policy(), ports, now).as_dict())

    threads = [threading.Thread(target=pull) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted((r["pulled"], r["missed"], r["already_admitted"]) for r in results) == [(1, 0, 1), (1, 1, 0)]
    assert stack.depth("inbox") == 1
    stack.run_until_quiet()
    state, _ = store.load("demo", "after_sales_case", "stripe:re_pulled_only")
    assert state is not None and state.version == 1
