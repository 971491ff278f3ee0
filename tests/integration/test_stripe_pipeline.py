"""A Stripe refund through the real handlers: accepted, duplicate ignored, tampered refused, case merged."""

from __future__ import annotations

import json

from infra.sandbox.samples import SignedWebhook, signed
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

CASE = "stripe:re_3QJx2cLkdIwHu7ix0kzQ1Nqf"


def test_a_refund_moves_from_approved_to_refunded_and_duplicates_change_nothing(
    stack: Stack, sandbox_secrets: dict
) -> None:  # type: ignore[type-arg]
    secret = sandbox_secrets["sources"]["stripe"]["demo"][0]
    created = signed("stripe_refund_created", secret)
    answers = [stack.post(created, source="stripe") for _ in range(3)]
    assert [json.loads(a["body"]) for a in answers] == [{"received": True}] * 3  # Stripe's ack, duplicates too
    assert stack.depth("inbox") == 1
    stack.post(signed("stripe_refund_updated", secret), source="stripe")
    stack.run_until_quiet()
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "after_sales_case", CASE)
    assert state is not None
    assert (state.fields["status"], state.fields["rejected_transitions"], state.version) == ("refunded", [], 2)


def test_a_tampered_stripe_body_is_401(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    hook = signed("stripe_refund_created", sandbox_secrets["sources"]["stripe"]["demo"][0])
    tampered = SignedWebhook(hook.name, hook.source, hook.headers, hook.body.replace(b"9900", b"99000"))
    response = stack.post(tampered, source="stripe")
    assert response["statusCode"] == 401
    assert stack.depth("inbox") == 0
