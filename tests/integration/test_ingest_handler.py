"""The ingest Lambda handler on moto: answers, and what each answer leaves behind."""

from __future__ import annotations

import json

import pytest

import shared.adapters.idempotency as ledger_clock
from infra.sandbox.samples import SignedWebhook, signed
from shared.sources.shopify import sign
from tests.integration.conftest import Stack


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeats land within the admission record's lease however slowly the machine runs them."""
    at = ledger_clock.time.time()
    monkeypatch.setattr(ledger_clock, "now", lambda: at)


def body_of(response: dict[str, object]) -> dict[str, object]:
    return json.loads(str(response["body"]))  # type: ignore[no-any-return]


def test_an_accepted_webhook_is_queued_and_recorded(stack: Stack, shopify_secret: str) -> None:
    response = stack.post(signed("shopify_orders_create", shopify_secret))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "accepted", "event_id": "98880550-7158-44d4-b7cd-2c97c8a091b5"}
    [message] = stack.messages("inbox")
    assert json.loads(message["Body"])["dedupe_key"] == "shopify:demo:98880550-7158-44d4-b7cd-2c97c8a091b5"
    assert message["MessageAttributes"]["source"]["StringValue"] == "shopify"
    assert json.loads(message["Body"])["archive_key"] is None  # inline: normalise archives it, in a batch
    assert stack.archived_keys() == []
    assert stack.idempotency_items() == 1


def test_the_same_webhook_five_times_is_queued_once(stack: Stack, shopify_secret: str) -> None:
    hook = signed("shopify_orders_create", shopify_secret)
    answers = [body_of(stack.post(hook))["status"] for _ in range(5)]
    assert answers == ["accepted", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert stack.depth("inbox") == 1


def test_the_same_event_id_with_another_body_is_409(stack: Stack, shopify_secret: str) -> None:
    hook = signed("shopify_orders_create", shopify_secret)
    stack.post(hook)
    other = signed("shopify_orders_create", shopify_secret, body=hook.body.replace(b'"note":null', b'"note":"x"'))
    response = stack.post(other)
    assert response["statusCode"] == 409
    assert body_of(response) == {
        "error": "duplicate_conflict",
        "message": "event 'shopify:demo:98880550-7158-44d4-b7cd-2c97c8a091b5' was already received "
        "with a different body",
    }
    assert stack.depth("inbox") == 1


def _tampered(secret: str) -> SignedWebhook:
    hook = signed("shopify_orders_create", secret)
    return SignedWebhook(hook.name, hook.source, hook.headers, hook.body.replace(b"598.00", b"5.98"))


def _unsigned(secret: str) -> SignedWebhook:
    hook = signed("shopify_orders_create", secret)
    return SignedWebhook(hook.name, hook.source, {k: v for k, v in hook.headers.items() if "Hmac" not in k}, hook.body)


def _too_large(secret: str) -> SignedWebhook:
    return signed("shopify_orders_create", secret, body=b'{"pad":"' + b"x" * (256 * 1024) + b'"}')


def _malformed(secret: str) -> SignedWebhook:
    return signed("shopify_orders_create", secret, body=b'{"id": 1')


@pytest.mark.parametrize(
    ("make", "tenant", "source", "status", "error"),
    [
        (_tampered, "demo", None, 401, "signature_invalid"),
        (_unsigned, "demo", None, 401, "signature_invalid"),
        (_too_large, "demo", None, 413, "payload_too_large"),
        (_malformed, "demo", None, 400, "malformed_payload"),
        (_tampered, "demo", "shopee", 404, "unknown_source"),
        (_tampered, "nobody", None, 404, "unknown_tenant"),
    ],
)
def test_rejected_requests_leave_nothing_in_any_queue_table_or_bucket(
    stack: Stack,
    shopify_secret: str,
    make,
    tenant: str,
    source: str | None,
    status: int,
    error: str,  # type: ignore[no-untyped-def]
) -> None:
    response = stack.post(make(shopify_secret), tenant=tenant, source=source)
    assert response["statusCode"] == status
    assert body_of(response)["error"] == error
    assert body_of(response)["message"]
    assert stack.depth("inbox") == 0
    assert stack.archived_keys() == []
    assert stack.idempotency_items() == 0


def test_a_secret_rotation_accepts_the_previous_secret(stack: Stack, sandbox_secrets: dict[str, object]) -> None:
    previous = sandbox_secrets["sources"]["shopify"]["demo"][1]  # type: ignore[index]
    assert stack.post(signed("shopify_orders_create", previous))["statusCode"] == 200


def test_the_signature_is_checked_over_the_raw_bytes_not_reserialised_json(stack: Stack, shopify_secret: str) -> None:
    # Same JSON value, different bytes (spacing): the platform signed these exact bytes.
    body = b'{ "id" : 1 }'
    hook = signed("shopify_orders_create", shopify_secret, body=body)
    assert hook.headers["X-Shopify-Hmac-Sha256"] == sign(shopify_secret, body)
    assert stack.post(hook)["statusCode"] == 200
