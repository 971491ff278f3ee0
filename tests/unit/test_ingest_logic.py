"""Ingest logic with in-memory ports: what is rejected writes nothing anywhere."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime

import pytest

from infra.sandbox.samples import signed
from shared.constants import INLINE_MESSAGE_MAX_BYTES
from shared.errors import (
    ConfigurationError,
    DuplicateConflict,
    MalformedPayload,
    PayloadTooLarge,
    SignatureInvalid,
    UnknownSource,
    UnknownTenant,
)
from shared.intake.ingest import IngestPolicy, IngestPorts, WebhookRequest, accept_webhook
from shared.models import InboxMessage
from shared.sources.base import Headers
from shared.sources.shopify import sign
from tests.fakes import FakeArchive, FakeOnce, FakeQueue, FakeSecrets

NOW = datetime(2026, 11, 20, 2, 0, 6, tzinfo=UTC)
SECRET = "shpss_unit"
POLICY = IngestPolicy(enabled_sources=frozenset({"shopify"}), max_body_bytes=4096 * 64, secrets_prefix="aftersync/test")


@pytest.fixture
def ports() -> IngestPorts:
    return IngestPorts(
        secrets=FakeSecrets({"aftersync/test/sources/shopify/demo": {"secrets": [SECRET]}}),
        archive=FakeArchive(),
        inbox=FakeQueue(),
        once=FakeOnce(),
    )


def request(body: bytes, headers: dict[str, str], source: str = "shopify", tenant: str = "demo") -> WebhookRequest:
    return WebhookRequest(source=source, tenant=tenant, headers=Headers(headers), body=body, received_at=NOW)


def nothing_written(ports: IngestPorts) -> bool:
    return not ports.archive.objects and not ports.inbox.messages and not ports.once.results  # type: ignore[attr-defined]


def test_an_accepted_webhook_is_enqueued_once_with_its_body_inline_and_not_archived(ports: IngestPorts) -> None:
    hook = signed("shopify_orders_create", SECRET)
    outcome = accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    assert (outcome.ack.status_code, dict(outcome.ack.body)) == (
        200,
        {"status": "accepted", "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5"},
    )
    [(body, attributes)] = ports.inbox.messages  # type: ignore[attr-defined]
    message = InboxMessage.model_validate_json(body)
    assert message.dedupe_key == "shopify:demo:98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert message.body == hook.body.decode()
    assert attributes == {"source": "shopify", "tenant": "demo"}
    assert "x-shopify-hmac-sha256" not in message.headers  # the signature is not carried along
    assert message.archive_key is None
    assert ports.archive.objects == {}  # type: ignore[attr-defined]  # normalise archives the inbox in batches


def test_a_duplicate_is_acknowledged_as_such_and_not_enqueued_again(ports: IngestPorts) -> None:
    hook = signed("shopify_orders_create", SECRET)
    outcomes = [accept_webhook(request(hook.body, hook.headers), POLICY, ports) for _ in range(5)]
    assert [o.duplicate for o in outcomes] == [False, True, True, True, True]
    assert [o.ack.body["status"] for o in outcomes] == ["accepted"] + ["duplicate"] * 4
    assert len(ports.inbox.messages) == 1  # type: ignore[attr-defined]


def test_size_is_checked_before_anything_else(ports: IngestPorts) -> None:
    body = b"{" + b" " * POLICY.max_body_bytes + b"}"
    with pytest.raises(PayloadTooLarge, match=f"body is {len(body)} bytes; the limit is {POLICY.max_body_bytes}"):
        accept_webhook(request(body, {}), POLICY, ports)
    assert ports.secrets.reads == []  # type: ignore[attr-defined]
    assert nothing_written(ports)


def test_unknown_source_and_tenant_are_404s_that_write_nothing(ports: IngestPorts) -> None:
    hook = signed("shopify_orders_create", SECRET)
    with pytest.raises(UnknownSource, match="no webhook source named 'shopee'"):
        accept_webhook(request(hook.body, hook.headers, source="shopee"), POLICY, ports)
    with pytest.raises(UnknownTenant, match="no shopify webhook is configured for tenant 'other'"):
        accept_webhook(request(hook.body, hook.headers, tenant="other"), POLICY, ports)
    assert nothing_written(ports)


def test_a_tampered_body_is_401_and_writes_nothing(ports: IngestPorts) -> None:
    hook = signed("shopify_orders_create", SECRET)
    with pytest.raises(SignatureInvalid):
        accept_webhook(request(hook.body.replace(b"598.00", b"5.98"), hook.headers), POLICY, ports)
    assert nothing_written(ports)


def test_malformed_json_after_a_valid_signature_is_400(ports: IngestPorts) -> None:
    body = b'{"id": 1,'
    headers = {
        "X-Shopify-Hmac-Sha256": sign(SECRET, body),
        "X-Shopify-Event-Id": "e",
        "X-Shopify-Topic": "orders/create",
    }
    with pytest.raises(
        MalformedPayload, match="body is not valid JSON: Expecting property name enclosed in double quotes"
    ):
        accept_webhook(request(body, headers), POLICY, ports)
    body = b"\xff\xfe{}"
    headers["X-Shopify-Hmac-Sha256"] = sign(SECRET, body)
    with pytest.raises(MalformedPayload, match="body is not UTF-8"):
        accept_webhook(request(body, headers), POLICY, ports)
    assert nothing_written(ports)


def test_a_malformed_secret_is_a_configuration_error_not_a_pass(ports: IngestPorts) -> None:
    ports.secrets.secrets["aftersync/test/sources/shopify/demo"] = {"secrets": []}  # type: ignore[attr-defined]
    hook = signed("shopify_orders_create", SECRET)
    with pytest.raises(ConfigurationError, match=re.escape('must be {"secrets": ["newest", ...]}')):
        accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    assert nothing_written(ports)


def test_a_duplicate_after_the_lease_is_enqueued_again_and_answered_as_a_duplicate(ports: IngestPorts) -> None:
    # The admitting invocation's lease ran out: nothing says it sent (it may have died between its
    # two calls), so the copy sends it again; downstream applies it once.
    hook = signed("shopify_orders_create", SECRET)
    accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    ports.once.now += 3.001  # type: ignore[attr-defined]
    again = accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    assert (again.duplicate, again.ack.body["status"]) == (True, "duplicate")
    assert len(ports.inbox.messages) == 2  # type: ignore[attr-defined]
    assert len({InboxMessage.model_validate_json(b).dedupe_key for b, _ in ports.inbox.messages}) == 1  # type: ignore[attr-defined]


def test_the_same_event_id_with_another_body_is_a_conflict_that_sends_nothing(ports: IngestPorts) -> None:
    hook = signed("shopify_orders_create", SECRET)
    accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    other = signed("shopify_orders_create", SECRET, body=hook.body.replace(b'"note":null', b'"note":"x"'))
    for _ in range(2):  # within the lease and after it
        with pytest.raises(DuplicateConflict, match="was already received with a different body"):
            accept_webhook(request(other.body, other.headers), POLICY, ports)
        ports.once.now += 10  # type: ignore[attr-defined]
    assert len(ports.inbox.messages) == 1  # type: ignore[attr-defined]


def test_a_failed_send_gives_the_record_up_so_the_retry_is_admitted_at_once(ports: IngestPorts) -> None:
    hook = signed("shopify_orders_create", SECRET)
    ports.inbox.fail_next = RuntimeError("SQS unavailable")  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="SQS unavailable"):
        accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    assert ports.once.results == {}  # type: ignore[attr-defined]
    retry = accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    assert (retry.duplicate, retry.ack.body["status"]) == (False, "accepted")
    assert len(ports.inbox.messages) == 1  # type: ignore[attr-defined]


def test_an_envelope_too_large_for_a_message_travels_by_archive_key(ports: IngestPorts) -> None:
    payload = json.loads(signed("shopify_orders_create", SECRET).body)
    payload["note"] = "x" * INLINE_MESSAGE_MAX_BYTES
    body = json.dumps(payload).encode()
    hook = signed("shopify_orders_create", SECRET, body=body)
    policy = IngestPolicy(POLICY.enabled_sources, 2 * 1024 * 1024, POLICY.secrets_prefix)
    accept_webhook(request(hook.body, hook.headers), policy, ports)
    [(queued, _)] = ports.inbox.messages  # type: ignore[attr-defined]
    message = InboxMessage.model_validate_json(queued)
    assert message.body is None
    assert message.archive_key is not None
    digest = hashlib.sha256(message.dedupe_key.encode()).hexdigest()
    assert (
        message.archive_key == f"raw/{digest[:2]}/shopify/demo/2026/11/20/02/20261120T020006000000Z-{digest[:16]}.json"
    )
    archived = InboxMessage.model_validate_json(ports.archive.objects[message.archive_key])  # type: ignore[attr-defined]
    assert archived.body == body.decode()
    assert archived.model_copy(update={"body": None, "archive_key": message.archive_key}) == message


def test_the_limit_counts_the_envelope_as_sent_escapes_included(ports: IngestPorts) -> None:
    # 600 KB of trailing newlines: a body well under 1 MiB whose envelope ("\\n" each) is over it.
    body = signed("shopify_orders_create", SECRET).body + b"\n" * 600_000
    hook = signed("shopify_orders_create", SECRET, body=body)
    policy = IngestPolicy(POLICY.enabled_sources, 2 * 1024 * 1024, POLICY.secrets_prefix)
    accept_webhook(request(hook.body, hook.headers), policy, ports)
    [(queued, _)] = ports.inbox.messages  # type: ignore[attr-defined]
    assert len(body) < INLINE_MESSAGE_MAX_BYTES < len(inline_size_of(body))
    message = InboxMessage.model_validate_json(queued)
    assert (message.body, list(ports.archive.objects)) == (None, [message.archive_key])  # type: ignore[attr-defined]


def inline_size_of(body: bytes) -> bytes:
    return json.dumps({"body": body.decode()}).encode()
