"""Youzan and Douyin shop: MD5 signatures over raw bytes, health checks, batches, canonical output."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from infra.sandbox.samples import load_sample, signed
from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid
from shared.intake.ingest import IngestPolicy, IngestPorts, WebhookRequest, accept_webhook
from shared.intake.normalise import normalise_message
from shared.models import InboxMessage
from shared.sources.base import Headers
from shared.sources.china_shops import hmac_sign, md5_sign
from shared.sources.douyin import Douyin
from shared.sources.youzan import Youzan
from tests.fakes import FakeArchive, FakeOnce, FakeQueue, FakeSecrets

NOW = datetime.now(UTC)
YOUZAN_PAIR = "yz_sandbox_client_id:yz_sandbox_client_secret"
DOUYIN_PAIR = "7301234567890123456:dy_sandbox_app_secret"
POLICY = IngestPolicy(enabled_sources=frozenset({"youzan", "douyin"}), max_body_bytes=64 * 1024, secrets_prefix="p")


def ports() -> IngestPorts:
    return IngestPorts(
        secrets=FakeSecrets(
            {"p/sources/youzan/demo": {"secrets": [YOUZAN_PAIR]}, "p/sources/douyin/demo": {"secrets": [DOUYIN_PAIR]}}
        ),
        archive=FakeArchive(),
        inbox=FakeQueue(),
        once=FakeOnce(),
    )


def post(source: str, headers: dict[str, str], body: bytes, p: IngestPorts):  # type: ignore[no-untyped-def]
    return accept_webhook(WebhookRequest(source, "demo", Headers(headers), body, NOW), POLICY, p)


def test_youzan_signature_matches_the_published_test_vector() -> None:
    assert hashlib.md5(b'cid{"x":1}csecret').hexdigest() == "725c930a751836894e40e13d2be31273"  # noqa: S324
    assert md5_sign("cid", "csecret", b'{"x":1}') == "725c930a751836894e40e13d2be31273"
    Youzan().verify(Headers({"Event-Sign": "725c930a751836894e40e13d2be31273"}), b'{"x":1}', ["cid:csecret"], NOW)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing Event-Sign header"),
        ({"Event-Sign": ""}, "missing Event-Sign header"),
        ({"Event-Sign": "725c930a751836894e40e13d2be31274"}, "Event-Sign does not match the body"),
    ],
)
def test_youzan_refuses_a_missing_or_wrong_signature(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        Youzan().verify(Headers(headers), b'{"x":1}', ["cid:csecret"], NOW)


def test_a_secret_that_is_not_an_app_id_pair_never_verifies() -> None:
    with pytest.raises(SignatureInvalid, match="'<app id>:<secret>' pair"):
        Youzan().verify(Headers({"Event-Sign": md5_sign("", "csecret", b"{}")}), b"{}", ["csecret"], NOW)


def test_youzan_trade_message_is_accepted_once_acked_as_youzan_expects_and_normalised() -> None:
    p = ports()
    hook = signed("youzan_trade_order_state", YOUZAN_PAIR)
    first, again = post("youzan", hook.headers, hook.body, p), post("youzan", hook.headers, hook.body, p)
    assert (first.ack.status_code, first.ack.body, first.duplicate) == (200, {"code": 0, "msg": "success"}, False)
    assert (again.ack.body, again.duplicate) == ({"code": 0, "msg": "success"}, True)
    assert len(p.inbox.messages) == 1  # type: ignore[attr-defined]
    message = first.accepted[0].message
    assert message.dedupe_key == "youzan:demo:7e1c2b8a-55f0-4c1e-a3a8-0c7d1b2e3f01"
    [event] = normalise_message(message, p.archive)  # type: ignore[arg-type]
    assert (event.entity_type, event.entity_id, event.occurred_at) == (
        "order",
        "youzan:E20261121103015012300001",
        datetime.fromtimestamp(1795055462, UTC),
    )
    assert event.entity.model_dump(exclude_unset=True) == {
        "order_id": "E20261121103015012300001",
        "channel": "youzan",
        "status": "open",
        "payment_status": "paid",
        "fulfillment_status": "unfulfilled",
        "total": {"amount": Decimal("299.00"), "currency": "CNY"},
    }


def test_a_tampered_youzan_message_is_401_and_keeps_nothing() -> None:
    p = ports()
    hook = signed("youzan_trade_order_state", YOUZAN_PAIR)
    with pytest.raises(SignatureInvalid):
        post("youzan", hook.headers, hook.body.replace(b"299.00", b"2.99"), p)
    assert (p.inbox.messages, p.archive.objects) == ([], {})  # type: ignore[attr-defined]


def test_youzan_refund_and_express_messages_normalise_to_case_and_shipment() -> None:
    p = ports()
    refund = post("youzan", *_hook("youzan_trade_order_refund"), p).accepted[0].message
    express = post("youzan", *_hook("youzan_trade_order_express"), p).accepted[0].message
    [case] = normalise_message(refund, p.archive)  # type: ignore[arg-type]
    assert case.entity_id == "youzan:201126112114300001"
    assert case.entity.model_dump(exclude_unset=True) == {
        "case_id": "201126112114300001",
        "kind": "refund",
        "status": "requested",
        "order_id": "E20261121103015012300001",
        "amount": {"amount": Decimal("299.00"), "currency": "CNY"},
        "reason": "不想要了",
    }
    [shipment] = normalise_message(express, p.archive)  # type: ignore[arg-type]
    assert (shipment.entity_id, shipment.entity.order_id) == ("zhongtong:75311234567890", "E20261121103015012300001")  # type: ignore[union-attr]
    # Without msg_id the dedupe key is (type, id, version)
    assert express.source_event_id == "TRADE_ORDER_EXPRESS:E20261121103015012300001:1795075200"


def _hook(name: str) -> tuple[dict[str, str], bytes]:
    hook = signed(name, YOUZAN_PAIR if name.startswith("youzan") else DOUYIN_PAIR)
    return hook.headers, hook.body


def test_a_youzan_health_check_is_acked_and_keeps_nothing() -> None:
    p = ports()
    sample = load_sample("youzan_push_test")
    outcome = post("youzan", sample["headers"], json.dumps(sample["body"]).encode(), p)  # unsigned, as Youzan tests
    assert (outcome.ack.body, outcome.accepted) == ({"code": 0, "msg": "success"}, ())
    assert (p.inbox.messages, p.archive.objects, p.once.results) == ([], {}, {})  # type: ignore[attr-defined]


def test_an_unknown_youzan_status_is_quarantined_naming_it() -> None:
    p = ports()
    sample = load_sample("youzan_trade_order_state")
    body = json.dumps({**sample["body"], "status": "WAIT_GROUP"}).encode()
    hook = signed("youzan_trade_order_state", YOUZAN_PAIR, body=body)
    message = post("youzan", hook.headers, hook.body, p).accepted[0].message
    with pytest.raises(NormalisationError, match="missing field 'WAIT_GROUP'"):
        normalise_message(message, p.archive)  # type: ignore[arg-type]


def test_each_douyin_message_in_a_push_is_its_own_delivery() -> None:
    p = ports()
    headers, body = _hook("douyin_batch")
    outcome = post("douyin", headers, body, p)
    assert outcome.ack.body == {"code": 0, "msg": "success"}
    keys = [a.message.dedupe_key for a in outcome.accepted]
    assert keys == ["douyin:demo:7345678901234567890:101", "douyin:demo:7345678901234567899:200"]
    assert len(p.inbox.messages) == 2 and p.archive.objects == {}  # type: ignore[attr-defined]
    order, case = (normalise_message(a.message, p.archive)[0] for a in outcome.accepted)  # type: ignore[arg-type]
    assert order.entity.model_dump(exclude_unset=True) == {
        "order_id": "6920000001234567890",
        "channel": "douyin",
        "status": "open",
        "payment_status": "paid",
        "fulfillment_status": "unfulfilled",
        "total": {"amount": Decimal("159"), "currency": "CNY"},
        "purchased_at": datetime.fromtimestamp(1795137240, UTC),
    }
    assert case.entity.model_dump(exclude_unset=True) == {
        "case_id": "7123456789012345678",
        "kind": "refund",
        "scenario": "cancel_before_fulfilment",
        "status": "requested",
        "order_id": "6920000001234567890",
        "amount": {"amount": Decimal("159"), "currency": "CNY"},
    }
    # A re-push of the same batch is all duplicates; a later batch repeating one message dedupes that one
    again = post("douyin", headers, body, p)
    assert [a.duplicate for a in again.accepted] == [True, True] and len(p.inbox.messages) == 2  # type: ignore[attr-defined]


def test_douyin_hmac_sign_method_is_verified_with_hmac_and_an_unknown_method_is_refused() -> None:
    headers, body = _hook("douyin_batch")
    app_key, secret = DOUYIN_PAIR.split(":")
    Douyin().verify(
        Headers({"sign-method": "hmac-sha256", "event-sign": hmac_sign(app_key, secret, body)}),
        body,
        [DOUYIN_PAIR],
        NOW,
    )
    with pytest.raises(SignatureInvalid, match="does not match"):  # an MD5 signature under the HMAC method
        Douyin().verify(Headers({**headers, "sign-method": "hmac-sha256"}), body, [DOUYIN_PAIR], NOW)
    with pytest.raises(SignatureInvalid, match="sign-method 'sha1' is not one of"):
        Douyin().verify(Headers({**headers, "sign-method": "sha1"}), body, [DOUYIN_PAIR], NOW)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"tag": "101"}, "non-empty JSON array"),
        ([], "non-empty JSON array"),
        ([{"tag": "101", "msg_id": "a", "data": "{}"}, {"tag": "200"}], "message 1 needs 'tag' and 'msg_id'"),
    ],
)
def test_a_malformed_douyin_batch_is_400_and_keeps_nothing(payload: object, message: str) -> None:
    p = ports()
    body = json.dumps(payload).encode()
    app_key, secret = DOUYIN_PAIR.split(":")
    with pytest.raises(MalformedPayload, match=message):
        post("douyin", {"event-sign": md5_sign(app_key, secret, body)}, body, p)
    assert (p.inbox.messages, p.once.results) == ([], {})  # type: ignore[attr-defined]


def test_an_unknown_douyin_tag_is_quarantined_naming_it() -> None:
    message = InboxMessage(
        source="douyin",
        tenant="demo",
        dedupe_key="douyin:demo:x",
        source_event_id="x",
        topic="tag:999",
        received_at=NOW,
        headers={},
        body_sha256="0",
        archive_key="raw/x",
        body='{"tag":"999","msg_id":"x","data":"{}"}',
    )
    with pytest.raises(NormalisationError, match="unsupported message tag '999'"):
        normalise_message(message, FakeArchive())
