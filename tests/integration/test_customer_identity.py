"""Orders link to one resolved customer; the identity index on DynamoDB holds only salted hashes."""

from __future__ import annotations

import copy
import json
import uuid

import boto3

from infra.sandbox.samples import SignedWebhook, load_sample
from shared.adapters.state_store import DynamoStateStore
from shared.sources import shopify
from tests.integration.conftest import Stack


def order_webhook(secret: str, order_id: int, customer: dict[str, object], email: str | None) -> SignedWebhook:
    sample = copy.deepcopy(load_sample("shopify_orders_create"))
    sample["body"].update(
        {"id": order_id, "name": f"#{order_id}", "customer": customer, "email": email, "phone": customer.get("phone")}
    )
    body = json.dumps(sample["body"], separators=(",", ":")).encode()
    headers = {
        **sample["headers"],
        shopify.EVENT_ID_HEADER: str(uuid.uuid4()),
        shopify.SIGNATURE_HEADER: shopify.sign(secret, body),
    }
    return SignedWebhook("order", "shopify", headers, body)


def test_orders_of_one_customer_link_to_one_customer_and_a_family_member_stays_apart(
    stack: Stack, shopify_secret: str
) -> None:
    jon = {
        "id": 1001,
        "first_name": "Jon",
        "last_name": "Snow",
        "email": "jon@example.com",
        "phone": "+86 138 0013 8000",
    }
    sansa = {
        "id": 1002,
        "first_name": "Sansa",
        "last_name": "Snow",
        "email": "sansa@example.com",
        "phone": "13800138000",
    }
    stack.post(order_webhook(shopify_secret, 1, jon, "jon@example.com"))
    stack.post(order_webhook(shopify_secret, 2, {**jon, "email": " JON@Example.com "}, " JON@Example.com "))
    stack.post(order_webhook(shopify_secret, 3, sansa, "sansa@example.com"))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    ids = []
    for order in (1, 2, 3):
        state, _ = store.load("demo", "order", f"shopify:{order}")
        assert state is not None
        ids.append(state.fields["customer_id"])
    assert ids[0] == ids[1] != ids[2]
    customer, _ = store.load("demo", "customer", ids[0])
    assert customer is not None
    assert customer.fields["source_customer_id.shopify"] == "1001"
    assert customer.fields["name"] == "Jon Snow"


def test_the_identity_index_holds_no_raw_identity_keys(stack: Stack, shopify_secret: str) -> None:
    jon = {"id": 1001, "first_name": "Jon", "last_name": "Snow", "email": "jon@example.com", "phone": "13800138000"}
    stack.post(order_webhook(shopify_secret, 1, jon, "jon@example.com"))
    stack.run_until_quiet()
    items = boto3.client("dynamodb").scan(TableName=stack.resources.refs.state_table)["Items"]
    index_items = [i for i in items if i["sk"]["S"] in ("KEY", "PROFILE", "CANDIDATE")]
    assert len(index_items) >= 3
    dumped = json.dumps(index_items)
    assert "jon@example.com" not in dumped and "13800138000" not in dumped
