"""Ingest logic with in-memory ports: what is rejected writes nothing anywhere."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from infra.sandbox.samples import signed
from shared.errors import (
    ConfigurationError,
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


def test_an_accepted_webhook_is_archived_and_enqueued_once(ports: IngestPorts) -> None:
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
    assert list(ports.archive.objects) == [message.archive_key]  # type: ignore[attr-defined]
    assert message.archive_key.startswith("raw/shopify/demo/2026/11/20/02/20261120T020006000000Z-")


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


def test_large_bodies_travel_by_archive_key(ports: IngestPorts) -> None:
    payload = json.loads(signed("shopify_orders_create", SECRET).body)
    payload["note"] = "x" * (200 * 1024)
    body = json.dumps(payload).encode()
    hook = signed("shopify_orders_create", SECRET, body=body)
    accept_webhook(request(hook.body, hook.headers), POLICY, ports)
    [(queued, _)] = ports.inbox.messages  # type: ignore[attr-defined]
    message = InboxMessage.model_validate_json(queued)
    assert message.body is None
    archived = InboxMessage.model_validate_json(ports.archive.objects[message.archive_key])  # type: ignore[attr-defined]
    assert archived.body == body.decode()
