"""Orders link to one resolved customer; customers seen in parts are joined on strong evidence; the identity
index on DynamoDB holds only salted hashes."""

from __future__ import annotations

import copy
import json
import uuid

import boto3
import pytest

from infra.sandbox.samples import SignedWebhook, load_sample
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.identity.names import name_hashes
from shared.sources import shopify
from tests.fakes import erp_webhook
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


def test_a_crm_record_naming_a_shop_account_and_a_wechat_follower_joins_them_with_the_evidence_kept(
    stack: Stack, shopify_secret: str
) -> None:
    jon = {"id": 3001, "first_name": "Jon", "last_name": "Snow", "email": "jon@example.com", "phone": None}

    def crm_record(webhook_id: str, **keys: str) -> SignedWebhook:
        observation = {
            "entity_type": "customer",
            "entity_id": "C-77",
            "occurred_at": "2026-11-20T02:20:00Z",
            "entity": {"source_customer_id": "C-77", "name": "JON SNOW", **keys},
        }
        return erp_webhook(webhook_id, observation)

    stack.post(order_webhook(shopify_secret, 11, jon, "jon@example.com"))  # a shop account, by e-mail
    stack.post(crm_record("msg_c1", openid="oU-jon"))  # a WeChat follower, by OpenID: nothing in common yet
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    order, _ = store.load("demo", "order", "shopify:11")
    assert order is not None
    shop_customer = order.fields["customer_id"]
    index = DynamoIdentityIndex(stack.resources.refs.state_table, "demo")
    [follower] = [c for _, t, c in store.entities("demo") if t == "customer" and c != shop_customer]

    stack.post(crm_record("msg_c2", openid="oU-jon", email=" Jon@Example.com"))  # the CRM learns the e-mail
    stack.run_until_quiet()
    assert index.canonical(shop_customer) == follower  # the CRM's own id decides who stays
    profile = boto3.client("dynamodb").get_item(
        TableName=stack.resources.refs.state_table,
        Key={"pk": {"S": f"demo#idprofile#{shop_customer}"}, "sk": {"S": "PROFILE"}},
    )["Item"]
    assert (profile["alias_of"]["S"], sorted(profile["absorbed_on"]["SS"])) == (
        follower,
        ["email", "openid", "source_id"],
    )
    assert index.candidates() == []

    stack.post(order_webhook(shopify_secret, 12, jon, "jon@example.com"))  # the next order of the shop account
    stack.run_until_quiet()
    later, _ = store.load("demo", "order", "shopify:12")
    assert later is not None and later.fields["customer_id"] == follower


def test_two_workers_joining_one_pair_from_opposite_ends_cannot_make_an_alias_cycle(stack: Stack) -> None:
    table = stack.resources.refs.state_table
    first, second = DynamoIdentityIndex(table, "demo"), DynamoIdentityIndex(table, "demo")
    for index, customer in ((first, "cus_a"), (second, "cus_b")):
        index.claim(customer, [], name_hashes("li na", b"s" * 32))
    first.profile("cus_a"), second.profile("cus_b")  # both read before either writes
    first.absorb("cus_b", "cus_a", ("email", "openid"))
    with pytest.raises(RuntimeError, match="absorbed or kept apart meanwhile; the message will be retried"):
        second.absorb("cus_a", "cus_b", ("email", "openid"))
    fresh = DynamoIdentityIndex(table, "demo")
    assert (fresh.canonical("cus_a"), fresh.canonical("cus_b")) == ("cus_a", "cus_a")
