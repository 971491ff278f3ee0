"""Ingest answers after two AWS calls (the admission record, the inbox send), through the real handler on
moto, counted per operation with botocore ``before-call`` events; and a crash between or after the
two calls neither loses the delivery nor applies it twice."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

import shared.adapters.idempotency as ledger_clock
from functions.ingest import handler as ingest
from infra.sandbox.samples import signed
from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import entity_pk
from shared.constants import ADMISSION_LEASE_SECONDS, INLINE_MESSAGE_MAX_BYTES, Env
from shared.intake.ingest import IngestPolicy, IngestPorts, WebhookRequest, accept_webhook
from shared.models import InboxMessage
from shared.sources.base import Headers
from tests.fakes import FakeSecrets
from tests.integration.conftest import Stack

ORDER_PK = entity_pk("demo", "order", "shopify:820982911946154508")


class Killed(BaseException):
    """The process dies here (as a Lambda timeout, OOM or host failure would): nothing catches it."""


class CallCounter:
    """AWS calls by ``service:Operation`` (as bench/run.py counts them)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}:{operation}"] += 1

    def take(self) -> dict[str, int]:
        taken, self.calls = dict(self.calls), Counter()
        return taken


@pytest.fixture
def calls(stack: Stack) -> Iterator[CallCounter]:
    """Counts the calls of the ingest handler's clients, made afresh after the hook is in place; the
    signing secret is read once beforehand (it is cached for minutes, not read per request)."""
    ingest.settings.cache_clear()
    ingest.ports.cache_clear()
    counter = CallCounter()
    events = boto3._get_default_session().events
    events.register("before-call", counter)
    ingest.ports().secrets.get_json(f"{stack.cfg.secrets_prefix}/sources/shopify/demo")
    counter.take()
    yield counter
    events.unregister("before-call", counter)
    ingest.settings.cache_clear()
    ingest.ports.cache_clear()


def answer(response: dict[str, Any]) -> tuple[int, str]:
    body = json.loads(str(response["body"]))
    return int(response["statusCode"]), str(body.get("status") or body.get("error"))


def audit_records(stack: Stack) -> list[str]:
    items = boto3.client("dynamodb").query(
        TableName=stack.resources.refs.state_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :audit)",
        ExpressionAttributeValues={":pk": {"S": ORDER_PK}, ":audit": {"S": "AUDIT#"}},
    )["Items"]
    return [i["sk"]["S"] for i in items]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger's clock stands still unless a test moves it: what is within a lease does not depend
    on how fast the machine runs the test."""
    at = ledger_clock.time.time()
    monkeypatch.setattr(ledger_clock, "now", lambda: at)


def after_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """The platform retries after its own backoff, later than the admission record's lease."""
    at = ledger_clock.now() + ADMISSION_LEASE_SECONDS + 1
    monkeypatch.setattr(ledger_clock, "now", lambda: at)


def test_a_new_webhook_costs_one_put_and_one_send_and_nothing_else(
    stack: Stack, shopify_secret: str, calls: CallCounter
) -> None:
    assert answer(stack.post(signed("shopify_orders_create", shopify_secret))) == (200, "accepted")
    assert calls.take() == {"dynamodb:PutItem": 1, "sqs:SendMessage": 1}
    assert stack.archived_keys() == []  # the raw archive is written off the ack path, in batches


def test_a_duplicate_costs_one_call_and_gets_the_duplicate_ack(
    stack: Stack, shopify_secret: str, calls: CallCounter
) -> None:
    hook = signed("shopify_orders_create", shopify_secret)
    stack.post(hook)
    calls.take()
    assert answer(stack.post(hook)) == (200, "duplicate")
    assert calls.take() == {"dynamodb:PutItem": 1}
    assert stack.depth("inbox") == 1


def test_another_body_with_the_same_event_id_is_409_after_one_call_and_enqueues_nothing(
    stack: Stack, shopify_secret: str, calls: CallCounter
) -> None:
    hook = signed("shopify_orders_create", shopify_secret)
    stack.post(hook)
    calls.take()
    other = signed("shopify_orders_create", shopify_secret, body=hook.body.replace(b'"note":null', b'"note":"x"'))
    assert answer(stack.post(other)) == (409, "duplicate_conflict")
    assert calls.take() == {"dynamodb:PutItem": 1}
    assert stack.depth("inbox") == 1


def test_a_failed_send_gives_the_record_up_and_the_platforms_retry_is_enqueued_at_once(
    stack: Stack, shopify_secret: str, calls: CallCounter
) -> None:
    hook = signed("shopify_orders_create", shopify_secret)
    sqs_events = ingest.ports().inbox.client.meta.events  # type: ignore[attr-defined]

    def unavailable(**_: Any) -> None:
        raise ConnectionError("SQS unreachable")

    sqs_events.register("before-send.sqs.SendMessage", unavailable)
    try:
        with pytest.raises(ConnectionError):
            stack.post(hook)  # no answer: API Gateway gives the platform a 5xx
    finally:
        sqs_events.unregister("before-send.sqs.SendMessage", unavailable)
    assert calls.take() == {"dynamodb:PutItem": 1, "sqs:SendMessage": 1, "dynamodb:DeleteItem": 1}
    assert answer(stack.post(hook)) == (200, "accepted")  # the retry, however soon
    assert calls.take() == {"dynamodb:PutItem": 1, "sqs:SendMessage": 1}
    stack.run_until_quiet()
    assert audit_records(stack) == ["AUDIT#000000000001"]


@pytest.mark.parametrize("moment", ["before-send", "after-call"])
def test_a_process_killed_between_or_after_its_two_calls_loses_nothing_and_applies_once(
    stack: Stack, shopify_secret: str, calls: CallCounter, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    # before-send: the record is written, the message never sent; after-call: sent, never answered.
    # Either way the platform got no 2xx and retries after its backoff.
    hook = signed("shopify_orders_create", shopify_secret)
    sqs_events = ingest.ports().inbox.client.meta.events  # type: ignore[attr-defined]

    def die(**_: Any) -> None:
        raise Killed

    sqs_events.register(f"{moment}.sqs.SendMessage", die)
    try:
        with pytest.raises(Killed):
            stack.post(hook)
    finally:
        sqs_events.unregister(f"{moment}.sqs.SendMessage", die)
    assert calls.take() == {"dynamodb:PutItem": 1, "sqs:SendMessage": 1}  # no clean-up ran
    assert stack.depth("inbox") == (0 if moment == "before-send" else 1)

    after_the_lease(monkeypatch)
    calls.take()
    assert answer(stack.post(hook)) == (200, "duplicate")  # the body was received before...
    assert calls.take() == {"dynamodb:PutItem": 1, "sqs:SendMessage": 1}  # ...and is enqueued again
    assert stack.depth("inbox") == (1 if moment == "before-send" else 2)
    stack.run_until_quiet()
    # one change applied for the order's creation, whether it reached the inbox once or twice
    assert audit_records(stack) == ["AUDIT#000000000001"]


def test_concurrent_copies_of_a_webhook_are_admitted_exactly_once(stack: Stack, shopify_secret: str) -> None:
    refs = stack.resources.refs
    ports = IngestPorts(
        secrets=FakeSecrets({f"{stack.cfg.secrets_prefix}/sources/shopify/demo": {"secrets": [shopify_secret]}}),
        archive=S3Archive(refs.archive_bucket),
        inbox=SqsQueue(stack.resources.queue_urls["inbox"]),
        once=AdmissionLedger(refs.idempotency_table, 3600),
    )
    policy = IngestPolicy(frozenset({"shopify"}), 256 * 1024, stack.cfg.secrets_prefix)
    hook = signed("shopify_orders_create", shopify_secret)
    copies = 20
    start = threading.Barrier(copies)
    results: list[tuple[bool, str]] = []

    def deliver() -> None:
        start.wait()
        request = WebhookRequest("shopify", "demo", Headers(hook.headers), hook.body, datetime.now(UTC))
        outcome = accept_webhook(request, policy, ports)
        results.append((outcome.duplicate, str(outcome.ack.body["status"])))

    threads = [threading.Thread(target=deliver) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(False, "accepted")] + [(True, "duplicate")] * (copies - 1)
    assert stack.depth("inbox") == 1
    stack.run_until_quiet()
    assert audit_records(stack) == ["AUDIT#000000000001"]


def test_an_envelope_too_large_for_a_message_goes_to_s3_first_and_is_normalised_from_there(
    stack: Stack, shopify_secret: str, calls: CallCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(Env.MAX_BODY_BYTES, str(2 * 1024 * 1024))  # an operator allowing bodies over 1 MiB
    ingest.settings.cache_clear()
    payload = json.loads(signed("shopify_orders_create", shopify_secret).body)
    payload["x_unmapped"] = "x" * INLINE_MESSAGE_MAX_BYTES  # a field the hub does not keep (a state item is ≤ 400 KB)
    hook = signed("shopify_orders_create", shopify_secret, body=json.dumps(payload).encode())
    assert answer(stack.post(hook)) == (200, "accepted")
    assert calls.take() == {"dynamodb:PutItem": 1, "s3:PutObject": 1, "sqs:SendMessage": 1}
    [key] = stack.archived_keys()
    digest = hashlib.sha256(b"shopify:demo:98880550-7158-44d4-b7cd-2c97c8a091b5").hexdigest()
    assert key.startswith(f"raw/{digest[:2]}/shopify/demo/")  # a hash before the time
    assert InboxMessage.model_validate_json(S3Archive(stack.resources.refs.archive_bucket).get(key)).body == (
        hook.body.decode()
    )
    stack.run_until_quiet()
    assert audit_records(stack) == ["AUDIT#000000000001"]
    state = boto3.client("dynamodb").get_item(
        TableName=stack.resources.refs.state_table, Key={"pk": {"S": ORDER_PK}, "sk": {"S": "STATE"}}
    )
    assert "Item" in state
    assert stack.depth("inbox") == 0 and stack.depth("quarantine") == 0
