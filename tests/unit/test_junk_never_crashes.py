"""For every source: any bytes and any headers give an answer (2xx or a typed 4xx), never a crash.

Signed junk is included: each example is also signed correctly for the source, so the parsers and
identifiers behind the signature check see junk too.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.sandbox.samples import SIGNERS
from shared.errors import WebhookRejected
from shared.ingest import IngestPolicy, IngestPorts, WebhookRequest, accept_webhook
from shared.sources import SOURCES
from shared.sources.base import Headers
from shared.sources.inhouse import standard_sign
from shared.sources.logistics import kuaidi100_sign
from tests.unit.fakes import FakeArchive, FakeOnce, FakeQueue, FakeSecrets

SECRET = "whsec_c2VjcmV0LWZvci1wcm9wZXJ0eS10ZXN0cw=="
NOW = datetime.now(UTC)
POLICY = IngestPolicy(enabled_sources=frozenset(SOURCES), max_body_bytes=64 * 1024, secrets_prefix="p")


def ports() -> IngestPorts:
    return IngestPorts(
        secrets=FakeSecrets({f"p/sources/{name}/t": {"secrets": [SECRET]} for name in SOURCES}),
        archive=FakeArchive(),
        inbox=FakeQueue(),
        once=FakeOnce(),
    )


def signed_headers(source: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    if source in SIGNERS and source != "kuaidi100":
        return {**headers, **SIGNERS[source](SECRET, body, headers)}
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
    st.sampled_from(["X-Shopify-Topic", "X-Shopify-Event-Id", "X-WC-Webhook-Topic", "Content-Type", "webhook-id", "x"]),
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
