"""In-house systems over Standard Webhooks: signature scheme, tolerance, canonical bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from shared.errors import SignatureInvalid
from shared.signing import standard_sign
from shared.sources.base import Headers
from shared.sources.inhouse import StandardWebhooksSource

NOW = datetime.fromtimestamp(1795400000, UTC)
SECRET = "whsec_" + base64.b64encode(b"erp-signing-key-32-bytes-long!!!").decode()


def headers(body: bytes, webhook_id: str = "msg_1", timestamp: int = 1795400000, secret: str = SECRET) -> Headers:
    return Headers(
        {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_sign(secret, webhook_id, str(timestamp), body),
        }
    )


def test_the_signature_is_hmac_of_id_timestamp_body_with_the_decoded_key() -> None:
    body = b'{"a":1}'
    expected = base64.b64encode(
        hmac.new(b"erp-signing-key-32-bytes-long!!!", b"msg_1.1795400000." + body, hashlib.sha256).digest()
    ).decode()
    assert standard_sign(SECRET, "msg_1", "1795400000", body) == f"v1,{expected}"
    StandardWebhooksSource("erp").verify(headers(body), body, [SECRET], NOW)


def test_one_of_several_signatures_may_match_during_key_rotation() -> None:
    body = b"{}"
    good = standard_sign(SECRET, "msg_1", "1795400000", body)
    h = Headers({"webhook-id": "msg_1", "webhook-timestamp": "1795400000", "webhook-signature": f"v1,AAAA {good}"})
    StandardWebhooksSource("erp").verify(h, body, [SECRET], NOW)


@pytest.mark.parametrize(
    ("h", "message"),
    [
        ({"webhook-timestamp": "1795400000", "webhook-signature": "v1,x"}, "missing webhook-id header"),
        ({"webhook-id": "m", "webhook-signature": "v1,x"}, "missing webhook-timestamp header"),
        ({"webhook-id": "m", "webhook-timestamp": "1795400000"}, "missing webhook-signature header"),
        ({"webhook-id": "m", "webhook-timestamp": "1795399000", "webhook-signature": "v1,x"}, "outside the ±300 s"),
        ({"webhook-id": "m", "webhook-timestamp": "1795400000", "webhook-signature": "v1,x"}, "no v1 signature"),
    ],
)
def test_refusals_name_the_problem(h: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        StandardWebhooksSource("erp").verify(Headers(h), b"{}", [SECRET], NOW)
