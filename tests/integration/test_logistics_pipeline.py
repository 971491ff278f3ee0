"""Tracking pushes through the real handlers: acks as each provider expects, shipments merged."""

from __future__ import annotations

import json

from infra.sandbox.samples import SignedWebhook, kuaidi100_form, load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack


def test_kuaidi100_push_is_acked_with_its_own_body_once_and_merged(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    salt = sandbox_secrets["sources"]["kuaidi100"]["demo"][0]
    hook = signed("kuaidi100_push_signed", salt)
    answers = [stack.post(hook, source="kuaidi100") for _ in range(2)]
    assert [json.loads(a["body"]) for a in answers] == [{"result": True, "returnCode": "200", "message": "成功"}] * 2
    assert stack.depth("inbox") == 1
    stack.run_until_quiet()
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "shipment", "yuantong:YT7366029163549")
    assert state is not None and state.fields["status"] == "delivered"


def test_a_tampered_kuaidi100_param_is_401_and_enqueues_nothing(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    salt = sandbox_secrets["sources"]["kuaidi100"]["demo"][0]
    param = json.dumps(load_sample("kuaidi100_push_signed")["body"], ensure_ascii=False, separators=(",", ":"))
    body = kuaidi100_form(salt, param, tampered_param=param.replace('"state":"3"', '"state":"4"'))
    response = stack.post(SignedWebhook("t", "kuaidi100", {"Content-Type": "application/x-www-form-urlencoded"}, body))
    assert (response["statusCode"], json.loads(response["body"])["error"]) == (401, "signature_invalid")
    assert stack.depth("inbox") == 0


def test_aftership_update_becomes_shipment_state(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    hook = signed("aftership_tracking_update", sandbox_secrets["sources"]["aftership"]["demo"][0])
    assert stack.post(hook, source="aftership")["statusCode"] == 200
    stack.run_until_quiet()
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "shipment", "sf-express:SF1410029637153")
    assert state is not None
    assert (state.fields["status"], len(state.fields["checkpoints"])) == ("out_for_delivery", 3)
