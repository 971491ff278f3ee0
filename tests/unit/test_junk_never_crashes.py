"""For every source: any bytes and any headers give an answer (2xx or a typed 4xx), never a crash.

Signed junk is included: each example is also signed correctly for the source, so the parsers and
identifiers behind the signature check see junk too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.sandbox.samples import EVENTS_DIR, SIGNERS, load_sample
from shared.errors import NormalisationError, WebhookRejected
from shared.intake.ingest import IngestPolicy, IngestPorts, WebhookRequest, accept_webhook
from shared.models import InboxMessage
from shared.signing import standard_sign
from shared.sources import NORMALISERS, SOURCES
from shared.sources.base import Headers
from shared.sources.kuaidi100 import kuaidi100_sign
from tests.fakes import FakeArchive, FakeOnce, FakeQueue, FakeSecrets

SECRET = "whsec_c2VjcmV0LWZvci1wcm9wZXJ0eS10ZXN0cw=="
NOW = datetime.now(UTC)
PAIRED = {"youzan", "douyin"}  # their secrets are "<app id>:<secret>" pairs


def secret_for(source: str) -> str:
    return f"app-id:{SECRET}" if source in PAIRED else SECRET


POLICY = IngestPolicy(enabled_sources=frozenset(SOURCES), max_body_bytes=64 * 1024, secrets_prefix="p")


def ports() -> IngestPorts:
    return IngestPorts(
        secrets=FakeSecrets({f"p/sources/{name}/t": {"secrets": [secret_for(name)]} for name in SOURCES}),
        archive=FakeArchive(),
        inbox=FakeQueue(),
        once=FakeOnce(),
    )


def signed_headers(source: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    if source in SIGNERS and source != "kuaidi100":
        return {**headers, **SIGNERS[source](secret_for(source), body, {"sign-method": "md5"})}
    if source == "kuaidi100":
        return headers
    timestamp = str(int(NOW.timestamp()))
    return {
        **headers,
        "webhook-id": "m1",
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_sign(SECRET, "m1", timestamp, body),
    }


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=15,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSONISH.map(lambda v: __import__("json").dumps(v).encode()),
    st.builds(lambda p: f"param={p}&sign={kuaidi100_sign(SECRET, p)}".encode(), st.text(max_size=60)),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "X-Shopify-Topic",
            "X-Shopify-Event-Id",
            "X-WC-Webhook-Topic",
            "Content-Type",
            "webhook-id",
            "sign-method",
            "x",
        ]
    ),
    st.text(max_size=20),
    max_size=4,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(SOURCES)), body=BODIES, headers=HEADERS, sign=st.booleans())
def test_any_input_is_answered_or_refused_with_a_typed_4xx(
    source: str, body: bytes, headers: dict[str, str], sign: bool
) -> None:
    if sign:
        headers = signed_headers(source, body, headers)
    try:
        outcome = accept_webhook(
            WebhookRequest(source=source, tenant="t", headers=Headers(headers), body=body, received_at=NOW),
            POLICY,
            ports(),
        )
    except WebhookRejected as rejected:
        assert 400 <= rejected.status_code < 500
        assert str(rejected)
    else:
        assert 200 <= outcome.ack.status_code < 300


SAMPLE_BODIES = [load_sample(p.stem)["body"] for p in sorted(EVENTS_DIR.glob("*.json"))]
SHOPIFY_TOPICS = {load_sample(p.stem)["headers"]["X-Shopify-Topic"] for p in EVENTS_DIR.glob("shopify_*.json")}
OTHER_TOPICS = ["charge.refunded", "refund.updated", "zen:event-type:ticket.status_changed", "order.updated"]
SHOP_TOPICS = [
    "TRADE_ORDER_STATE",
    "TRADE_ORDER_REFUND",
    "TRADE_ORDER_EXPRESS",
    "tag:101",
    "tag:200",
    "observation",
    "ORDER_CHANGE",
]
TOPICS = st.sampled_from([*sorted(SHOPIFY_TOPICS), *OTHER_TOPICS, *SHOP_TOPICS]) | st.text(max_size=20)


@st.composite
def near_misses(draw: st.DrawFn) -> object:
    body = draw(st.sampled_from(SAMPLE_BODIES))
    if isinstance(body, list):  # a Douyin batch: the normaliser sees one message of it
        body = draw(st.sampled_from(body))
    if not isinstance(body, dict) or not body:
        return body
    key = draw(st.sampled_from(sorted(body)))
    if draw(st.booleans()):
        return {k: v for k, v in body.items() if k != key}
    return {**body, key: draw(JSONISH)}


NEAR_MISSES = near_misses()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(sorted(NORMALISERS)), payload=JSONISH | NEAR_MISSES, topic=TOPICS)
def test_a_verified_payload_of_any_shape_normalises_or_is_quarantined(source: str, payload: object, topic: str) -> None:
    """Behind the signature: whatever shape the payload has, normalise yields events or a NormalisationError.

    Payloads are junk, or a real sample with one top-level field dropped or replaced by junk."""
    message = InboxMessage(
        source=source,
        tenant="t",
        dedupe_key=f"{source}:t:e",
        source_event_id="e",
        topic=topic,
        received_at=NOW,
        headers={},
        body_sha256="0",
        archive_key="raw/x",
    )
    try:
        events = NORMALISERS[source].normalise(message, payload)
    except NormalisationError as exc:
        assert exc.reason
    else:
        assert all(e.tenant == "t" and e.source == source for e in events)
