"""Hostile input at the webhook API, through the real ingest handler on moto: never a 5xx, never an
unhandled exception, and a rejected request leaves nothing behind.

The named cases are the ones a hostile test found crashing the handler (each raised past the
typed errors); the property test throws arbitrary headers and bodies at every source, unsigned and
correctly signed, so the parsers behind the signature check see the junk too.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infra.sandbox.http_servers import api_gateway_event
from infra.sandbox.samples import SIGNERS
from shared.constants import source_secret_name
from shared.signing import standard_sign
from shared.sources import SOURCES
from shared.sources.inhouse import INHOUSE_SYSTEMS
from shared.sources.kuaidi100 import kuaidi100_sign
from shared.sources.stripe import sign as stripe_sign
from tests.integration.conftest import Stack

TENANT = "fuzz"
SECRET = "whsec_aG9zdGlsZS1pbnB1dC10ZXN0LWtleS0zMi1ieXRlcyE="
PAIRED = {"youzan", "douyin"}  # their secrets are "<app id>:<secret>" pairs
DEEP = b"[" * 10_000 + b"]" * 10_000
HUGE_INT = b'{"id": ' + b"9" * 5_000 + b', "type": "refund.updated"}'


def secret_for(source: str) -> str:
    return f"app-id:{SECRET}" if source in PAIRED else SECRET


@pytest.fixture
def hostile(stack: Stack) -> Iterator[Stack]:
    """The stack, with a tenant that has a webhook secret for every source."""
    client = boto3.client("secretsmanager")
    for source in SOURCES:
        client.create_secret(
            Name=source_secret_name(stack.cfg.secrets_prefix, source, TENANT),
            SecretString=json.dumps({"secrets": [secret_for(source)]}),
        )
    yield stack


def post(stack: Stack, source: str, headers: dict[str, str], body: bytes, method: str = "POST") -> dict[str, Any]:
    event = api_gateway_event(method, f"/webhooks/{source}/{TENANT}", headers, body)
    return stack.functions.invoke("ingest", event)  # type: ignore[no-any-return]


def answer(response: dict[str, Any]) -> tuple[int, str]:
    return response["statusCode"], json.loads(response["body"]).get("error", "")


def standard_headers(body: bytes) -> dict[str, str]:
    stamp, webhook_id = str(int(time.time())), f"msg_{hashlib.sha256(body).hexdigest()[:24]}"
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": standard_sign(SECRET, webhook_id, stamp, body),
    }


def signed_headers(source: str, body: bytes) -> dict[str, str]:
    if source in INHOUSE_SYSTEMS:
        return standard_headers(body)
    return SIGNERS[source](secret_for(source), body, {})


def nothing_left_behind(stack: Stack) -> None:
    assert stack.depth("inbox") == 0
    assert stack.archived_keys() == []
    assert stack.idempotency_items() == 0


# --- the cases found crashing the handler --------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "header"),
    [
        ("5,000-digit t", "t=" + "9" * 5_000 + ",v1=00"),
        ("non-ASCII digit t", "t=\u00b2,v1=00"),
        ("Arabic-Indic digits t", "t=\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660,v1=00"),
    ],
)
def test_a_stripe_signature_header_with_a_crafted_timestamp_is_a_401(hostile: Stack, case: str, header: str) -> None:
    response = post(hostile, "stripe", {"Stripe-Signature": header}, b"{}")
    assert answer(response) == (401, "signature_invalid"), case
    nothing_left_behind(hostile)


@pytest.mark.parametrize("source", INHOUSE_SYSTEMS)
@pytest.mark.parametrize("timestamp", ["9" * 5_000, "\u00b2", "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660"])
def test_a_crafted_webhook_timestamp_is_a_401_on_every_in_house_source(
    hostile: Stack, source: str, timestamp: str
) -> None:
    headers = {"webhook-id": "m1", "webhook-timestamp": timestamp, "webhook-signature": "v1,AAAA"}
    assert answer(post(hostile, source, headers, b"{}")) == (401, "signature_invalid")
    nothing_left_behind(hostile)


def test_an_unsigned_youzan_body_of_ten_thousand_brackets_is_a_401_and_never_parsed(hostile: Stack) -> None:
    assert answer(post(hostile, "youzan", {}, DEEP)) == (401, "signature_invalid")
    nothing_left_behind(hostile)


@pytest.mark.parametrize("source", sorted(set(SOURCES) - {"kuaidi100"}))
@pytest.mark.parametrize(("what", "body"), [("10,000 levels deep", DEEP), ("a 5,000-digit integer", HUGE_INT)])
def test_a_signed_body_the_json_parser_cannot_hold_is_a_400(
    hostile: Stack, source: str, what: str, body: bytes
) -> None:
    response = post(hostile, source, signed_headers(source, body), body)
    assert answer(response) == (400, "malformed_payload"), what
    nothing_left_behind(hostile)


@pytest.mark.parametrize(("what", "param"), [("deep", DEEP.decode()), ("huge integer", HUGE_INT.decode())])
def test_a_signed_kuaidi100_param_the_json_parser_cannot_hold_is_a_400(hostile: Stack, what: str, param: str) -> None:
    body = urlencode({"param": param, "sign": kuaidi100_sign(SECRET, param)}).encode()
    assert answer(post(hostile, "kuaidi100", {}, body)) == (400, "malformed_payload"), what
    nothing_left_behind(hostile)


def test_nan_and_infinity_are_not_json(hostile: Stack) -> None:
    body = b'{"id": "evt_1", "type": "refund.updated", "amount": NaN, "x": Infinity}'
    headers = {"Stripe-Signature": stripe_sign(SECRET, body, int(time.time()))}
    assert answer(post(hostile, "stripe", headers, body)) == (400, "malformed_payload")
    nothing_left_behind(hostile)


def test_an_event_id_too_long_to_be_a_key_is_a_400(hostile: Stack) -> None:
    body = json.dumps({"id": "evt_" + "x" * 3_000, "type": "refund.updated"}).encode()
    headers = {"Stripe-Signature": stripe_sign(SECRET, body, int(time.time()))}
    assert answer(post(hostile, "stripe", headers, body)) == (400, "malformed_payload")
    nothing_left_behind(hostile)


@pytest.mark.parametrize(
    ("source", "body"),
    [
        ("douyin", rb'[{"tag":"101","msg_id":"m1","data":"\ud800"}]'),
        ("stripe", rb'{"id":"evt_\ud800","type":"refund.updated"}'),
        ("stripe", rb'{"id":"evt_1","type":"refund.\udfff"}'),
        ("zendesk", rb'{"id":"\ud800","type":"zen:event-type:ticket.x"}'),
        ("shopify", rb'{"id":1,"note":"an emoji cut in half: \ud83d"}'),
    ],
)
def test_a_lone_surrogate_in_a_signed_body_is_a_400(hostile: Stack, source: str, body: bytes) -> None:
    # JSON's grammar lets an escape name half a UTF-16 pair, which is no Unicode text: nothing can store it
    headers = {**signed_headers(source, body), "X-Shopify-Topic": "orders/updated", "X-Shopify-Event-Id": "e1"}
    assert answer(post(hostile, source, headers, body)) == (400, "malformed_payload")
    nothing_left_behind(hostile)


@pytest.mark.parametrize("character", ["\ufffe", "\uffff", "\x01"])
def test_a_character_sqs_does_not_carry_is_accepted_and_queued_escaped(hostile: Stack, character: str) -> None:
    # SQS refuses U+FFFE, U+FFFF and most control characters in a message body; a signed body may hold them
    # (raw, or escaped in its JSON): the envelope escapes them, so the delivery is kept byte for byte
    body = json.dumps({"id": "evt_odd", "type": "refund.updated", "note": f"a{character}b"}, ensure_ascii=False)
    raw = body.encode()
    response = post(hostile, "stripe", signed_headers("stripe", raw), raw)
    assert answer(response) == (200, "")
    [message] = hostile.messages("inbox")
    assert json.loads(message["Body"])["body"] == body


# --- anything at all, at every source ------------------------------------------------------------
HEADER_NAMES = sorted(
    {
        "Stripe-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Shopify-Hmac-Sha256",
        "X-Shopify-Topic",
        "X-Shopify-Event-Id",
        "X-WC-Webhook-Signature",
        "X-WC-Webhook-Topic",
        "X-WC-Webhook-Source",
        "X-WC-Webhook-Delivery-ID",
        "X-Zendesk-Webhook-Signature",
        "X-Zendesk-Webhook-Signature-Timestamp",
        "aftership-hmac-sha256",
        "sign",
        "Event-Sign",
        "Event-Type",
        "event-sign",
        "sign-method",
        "Content-Type",
    }
)
NUMBERISH = st.one_of(
    st.text(alphabet="0123456789", min_size=1, max_size=40),
    st.just("9" * 5_000),
    st.text(alphabet="\u00b2\u0661\u0967\uff11\u00bd0123456789-+. eE", min_size=1, max_size=12),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "0x10", " 1 "]),
)
HEADER_VALUES = st.one_of(
    st.text(max_size=30),
    NUMBERISH,
    NUMBERISH.map(lambda t: f"t={t},v1=00"),
    st.sampled_from(["v1,", "v1,====", "md5", "hmac-sha256", "t=,v1=", "=", ","]),
)
HEADERS = st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=5)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
ODD_CHARACTERS = st.sampled_from(
    ["\ud800", "\udfff", "\ud83d", "\ufffe", "\uffff", "\x00", "\x01", "\u2028", "é", "中"]
)
# (st.text drops surrogates from any alphabet: the characters are drawn one by one and joined)
ODD_TEXT = st.lists(ODD_CHARACTERS | st.characters(codec=None, exclude_categories=()), max_size=16).map("".join)
IDENTIFIABLE = st.fixed_dictionaries(
    {"id": ODD_TEXT, "type": ODD_TEXT, "msg_id": ODD_TEXT, "tag": ODD_TEXT, "data": ODD_TEXT | JSONISH},
    optional={"note": ODD_TEXT},
)
BODIES = st.one_of(
    st.binary(max_size=200),
    JSONISH.map(lambda v: json.dumps(v).encode()),
    st.integers(min_value=1, max_value=3_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=3_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(min_value=20, max_value=6_000).map(lambda n: b'{"id": ' + b"7" * n + b', "type": "x"}'),
    st.sampled_from([b"NaN", b'{"id": NaN}', b'{"id": "e", "type": "t", "v": -Infinity}', b"1e99999", b'"\\ud800"']),
    # shapes that identify as a delivery, so their strings reach the archive and the queue
    st.tuples(IDENTIFIABLE | st.lists(IDENTIFIABLE, min_size=1, max_size=3), st.booleans()).map(
        lambda v: json.dumps(v[0], ensure_ascii=v[1]).encode("utf-8", "surrogatepass")  # escaped, or raw
    ),
    st.text(max_size=60).map(lambda p: urlencode({"param": p, "sign": kuaidi100_sign(SECRET, p)}).encode()),
)


@settings(
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(source=st.sampled_from(sorted(SOURCES)), headers=HEADERS, body=BODIES, sign=st.booleans())
def test_any_header_and_body_at_any_source_signed_or_not_is_answered_below_500(
    hostile: Stack, source: str, headers: dict[str, str], body: bytes, sign: bool
) -> None:
    if sign:
        headers = {**headers, **signed_headers(source, body)}
    response = post(hostile, source, headers, body)  # an unhandled exception fails the test here
    status, error = answer(response)
    event(f"HTTP {status} {error}".strip())  # --hypothesis-show-statistics: how far the junk got
    assert status < 500
    if status >= 400:
        assert error in {"signature_invalid", "malformed_payload", "duplicate_conflict", "payload_too_large"}
