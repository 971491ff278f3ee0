"""Every delivery carries an id that names one delivery of one change: the same (tenant, entity, version,
target) keeps it across retries and re-deliveries, anything else gets another. Receivers dedupe on it
(Standard Webhooks tells them to dedupe on ``webhook-id``), so a collision drops a real change.

Signatures are checked with the ``standardwebhooks`` package, the receivers' own library, as the oracle.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from standardwebhooks import Webhook

from shared.adapters.http import Response
from shared.delivery.deliver import deliver_change
from shared.delivery.targets import OAuth2ClientCredentials, StandardWebhooksAuth, TargetConfig
from shared.errors import DeliveryFailed
from tests.fakes import FakeHttp, FakeStateStore, changed, observe

SECRET = "whsec_dGFyZ2V0LXNpZ25pbmcta2V5LWZvci10ZXN0cyE="
ERP = TargetConfig(
    name="erp",
    url="https://erp.example.com/in",
    entity_types=("order",),
    auth=StandardWebhooksAuth(kind="standard_webhooks"),
)
CRM = TargetConfig(name="crm", url="https://crm.example.com/in", entity_types=("order",))


def webhook_ids(http: FakeHttp) -> list[str]:
    return [headers["webhook-id"] for _, _, headers in http.requests]


def test_twenty_orders_whose_paid_flag_flips_to_refunded_reach_the_erp_with_twenty_ids() -> None:
    store, http = FakeStateStore(), FakeHttp()
    orders = [f"shopify:{n}" for n in range(1, 21)]
    for order in orders:
        observe(store, order, 0, payment_status="paid")
        deliver_change(changed(order, 1), ERP, store, http, {"secret": SECRET})
        observe(store, order, 5, payment_status="refunded")
        deliver_change(changed(order, 2), ERP, store, http, {"secret": SECRET})
    refunds = [json.loads(body) for _, body, _ in http.requests if json.loads(body)["version"] == 2]
    assert [r["changes"] for r in refunds] == [{"payment_status": "refunded"}] * 20  # the same change, 20 times
    assert len(set(webhook_ids(http))) == 40  # ... and every delivery its own id


def test_a_value_that_flips_back_gets_a_new_id() -> None:
    store, http = FakeStateStore(), FakeHttp()
    for version, (minutes, status) in enumerate([(0, "paid"), (5, "refunded"), (10, "paid"), (15, "refunded")], 1):
        observe(store, "shopify:1", minutes, payment_status=status)
        deliver_change(changed("shopify:1", version), ERP, store, http, {"secret": SECRET})
    bodies = [json.loads(body)["changes"] for _, body, _ in http.requests]
    assert bodies[1] == bodies[3] == {"payment_status": "refunded"}
    assert Counter(webhook_ids(http)).most_common(1)[0][1] == 1


def test_a_retried_delivery_keeps_its_id_and_every_signature_verifies_with_standardwebhooks() -> None:
    store = FakeStateStore()
    observe(store, "shopify:1", 0)
    failing, working = FakeHttp(status=503), FakeHttp()
    with pytest.raises(DeliveryFailed):
        deliver_change(changed("shopify:1", 1), ERP, store, failing, {"secret": SECRET})
    deliver_change(changed("shopify:1", 1), ERP, store, working, {"secret": SECRET})
    store.acks.clear()  # the ack was lost (say the function died after the call): it goes again
    deliver_change(changed("shopify:1", 1), ERP, store, working, {"secret": SECRET})
    attempts = failing.requests + working.requests
    assert len(attempts) == 3
    assert len({headers["webhook-id"] for _, _, headers in attempts}) == 1
    for _, body, headers in attempts:
        assert Webhook(SECRET).verify(body, headers) == json.loads(body)


def test_the_same_change_to_two_targets_has_two_ids() -> None:
    store, to_erp, to_other = FakeStateStore(), FakeHttp(), FakeHttp()
    observe(store, "shopify:1", 0)
    deliver_change(changed("shopify:1", 1), ERP, store, to_erp, {"secret": SECRET})
    other = ERP.model_copy(update={"name": "erp-eu"})
    deliver_change(changed("shopify:1", 1), other, store, to_other, {"secret": SECRET})
    assert webhook_ids(to_erp) != webhook_ids(to_other)


class TokenAndTarget(FakeHttp):
    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float, method: str = "POST") -> Response:
        if url.endswith("/token"):
            return Response(200, json.dumps({"access_token": "tok", "expires_in": 3600}), {})
        return super().post(url, body, headers, timeout, method)


@pytest.mark.parametrize(
    ("target", "credentials"),
    [
        (CRM, {"value": "k"}),
        (
            CRM.model_copy(
                update={
                    "name": "crm-oauth",
                    "auth": OAuth2ClientCredentials(
                        kind="oauth2_client_credentials", token_url="https://auth.example.com/token"
                    ),
                }
            ),
            {"client_id": "c", "client_secret": "s"},
        ),
        (
            CRM.model_copy(
                update={"name": "crm-records", "method": "PATCH", "path": "/orders/{order_id}", "body": "changes"}
            ),
            {"value": "k"},
        ),
    ],
    ids=["api key", "oauth2", "record api"],
)
def test_http_targets_that_are_not_standard_webhooks_carry_an_idempotency_key_per_delivery(
    target: TargetConfig, credentials: dict[str, Any]
) -> None:
    store, http = FakeStateStore(), TokenAndTarget()
    observe(store, "shopify:1", 0, payment_status="paid")
    deliver_change(changed("shopify:1", 1), target, store, http, credentials)
    observe(store, "shopify:1", 5, payment_status="refunded")
    with pytest.raises(DeliveryFailed):
        deliver_change(changed("shopify:1", 2), target, store, FakeHttp(status=500), credentials)
    deliver_change(changed("shopify:1", 2), target, store, http, credentials)
    keys = [headers["Idempotency-Key"] for _, _, headers in http.requests]
    assert len(keys) == 2 and keys[0] != keys[1]
    store_again = FakeStateStore()  # another entity at the same version: another key
    observe(store_again, "shopify:2", 0, payment_status="paid")
    deliver_change(changed("shopify:2", 1), target, store_again, http, credentials)
    assert http.requests[-1][2]["Idempotency-Key"] not in keys
