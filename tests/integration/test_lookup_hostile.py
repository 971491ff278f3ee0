"""Hostile tests of the lookup API and the customer view, through the real handlers on moto.

Each test here failed on main 80d71ee: a request a reader can send that crashes the lookup (a 5xx,
and no read recorded), a malformed or ambiguous query answered as if it were fine, and a view that
keeps showing a customer's orders under another customer once a join is undone or an order changes
hands (also when the stream delivers the older state late); the view's four stayed strict xfail until
the owner pointers (``shared.read.view``).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from infra.sandbox.http_servers import api_gateway_event
from infra.sandbox.samples import SignedWebhook
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.read.access_log import ReadAudit, ReadRecord
from shared.read.view import entity_sk, view_pk
from shared.sources import shopify
from shared.state.merge import EntityState
from shared.state.stored import pack
from tests.integration.conftest import Stack
from tests.integration.test_customer_identity import order_webhook
from tests.integration.test_customer_view import LEI, CallCounter, _lookup, two_shops  # noqa: F401 - a fixture

WEI = {"id": 3003, "first_name": "Wei", "last_name": "Wang", "phone": "13500135000"}


def _get(stack: Stack, secrets: dict[str, Any], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A lookup as the sandbox's agent with exactly these query parameters (not URL-encoded: what the
    proxy event carries after API Gateway decoded them)."""
    key = secrets["readers"]["demo-agent"]["key"]
    event = api_gateway_event("GET", "/v1/demo/lookup", {"Authorization": f"Bearer {key}"}, b"")
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    answer = stack.functions.invoke("lookup", event)
    return answer["statusCode"], json.loads(answer["body"])


def _reassigned(secret: str, order_id: int, customer: dict[str, object]) -> SignedWebhook:
    """The shop's update of an order to another customer, an hour after it was created (the sample's
    own ``updated_at`` would tie with the first record, and a tie is broken by the random event id)."""
    webhook = order_webhook(secret, order_id, customer, None)
    body = json.loads(webhook.body)
    body["updated_at"] = "2026-11-20T11:00:00+08:00"
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {**webhook.headers, shopify.SIGNATURE_HEADER: shopify.sign(secret, raw)}
    return SignedWebhook("order", "shopify", headers, raw)


def _reads(stack: Stack) -> list[ReadRecord]:
    since = datetime.now(UTC) - timedelta(minutes=5)
    return list(ReadAudit(stack.resources.refs.state_table).records("demo", since))


def _customer_of(stack: Stack, order_id: str) -> str:
    state, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "order", order_id)
    assert state is not None
    return str(state.fields["customer_id"])


# --- what a request carries: always a 4xx, never a crash ---------------------------------------------
@pytest.mark.usefixtures("two_shops")
def test_a_cursor_of_deeply_nested_json_is_400_and_recorded_not_a_crash(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    # 2,668 characters of base64: well within API Gateway's URL limit; json.loads raises RecursionError
    cursor = base64.urlsafe_b64encode(b"[" * 2000).decode()
    status, body = _get(stack, sandbox_secrets, {"phone": "13800138000", "cursor": cursor})
    assert (status, body) == (400, {"error": "bad_request", "message": "cursor is not one this lookup gave out"})
    [read] = _reads(stack)
    assert (read.reader, read.selector_kind, read.outcome, read.entity_ids) == ("demo-agent", "phone", 400, ())


@pytest.mark.usefixtures("two_shops")
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("serial", "SN-RV2-\ud800"),
        ("tracking", "7531\udfff"),
        ("order", "#\ud800"),
        ("email", "l\ud800@example.com"),
        ("wecom_external_userid", "wm\ud800"),
    ],
)
def test_a_selector_with_a_lone_surrogate_is_400_not_a_crash(
    stack: Stack, sandbox_secrets: dict[str, Any], kind: str, value: str
) -> None:
    # a proxy event is JSON: "\ud800" in it decodes to a lone surrogate, which has no UTF-8 encoding,
    # so the selector's HMAC (value.encode()) raises UnicodeEncodeError outside any handler
    status, body = _get(stack, sandbox_secrets, {kind: value})
    assert status == 400 and body["error"] == "bad_request"
    assert kind in body["message"]
    assert "\ud800" not in body["message"] and "\udfff" not in body["message"]
    [read] = _reads(stack)
    assert (read.selector_kind, read.selector_hmac, read.outcome) == (kind, None, 400)


@pytest.mark.usefixtures("two_shops")
@pytest.mark.parametrize(
    ("kind", "value"),
    [("phone", "abc"), ("phone", "12"), ("email", "not-an-email"), ("order", "#")],
)
def test_a_selector_that_is_not_one_is_400_not_404(
    stack: Stack, sandbox_secrets: dict[str, Any], kind: str, value: str
) -> None:
    # README: "400 no selector, more than one, or a malformed one (the message says what)"; a phone
    # with no digits is malformed, not a phone nobody has
    status, body = _get(stack, sandbox_secrets, {kind: value})
    assert status == 400 and body["error"] == "bad_request"
    assert kind in body["message"]
    assert value not in body["message"]


@pytest.mark.usefixtures("two_shops")
def test_a_selector_given_twice_is_400_not_the_last_one_answered(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    key = sandbox_secrets["readers"]["demo-agent"]["key"]
    event = api_gateway_event(
        "GET", "/v1/demo/lookup?phone=13900139000&phone=13800138000", {"Authorization": f"Bearer {key}"}, b""
    )
    assert event["multiValueQueryStringParameters"] == {"phone": ["13900139000", "13800138000"]}
    answer = stack.functions.invoke("lookup", event)
    body = json.loads(answer["body"])
    # two phones asked: "exactly one" selector is not met; today the last one is answered (Lei's view)
    assert answer["statusCode"] == 400 and body["error"] == "bad_request"
    assert "phone" in body["message"]
    assert "customer" not in body


# --- the view when a customer is split again or an order changes hands ----------------------------------
def test_after_a_split_the_survivor_s_view_no_longer_shows_the_split_customer_s_order(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))
    stack.run_until_quiet()
    lei, wei = _customer_of(stack, "shopify:5001"), _customer_of(stack, "shopify:5003")
    DynamoIdentityIndex(stack.resources.refs.state_table, "demo").absorb(wei, lei, ("test",), by="test")
    stack.run_until_quiet()
    assert sorted(o["order_id"] for o in _lookup(stack, sandbox_secrets, "phone", "13800138000").orders) == [
        "shopify:5001",
        "shopify:5003",
    ]
    DynamoIdentityIndex(stack.resources.refs.state_table, "demo").split(wei)
    stack.run_until_quiet()

    wei_view = _lookup(stack, sandbox_secrets, "phone", "13500135000")
    assert wei_view.customer_id == wei
    assert [o["order_id"] for o in wei_view.orders] == ["shopify:5003"]
    lei_view = _lookup(stack, sandbox_secrets, "phone", "13800138000")
    assert lei_view.customer_id == lei
    # Wei's order, and Wei's card changes in the timeline, leave Lei's view with the split
    assert [o["order_id"] for o in lei_view.orders] == ["shopify:5001"]
    assert {t["entity_id"] for t in lei_view.timeline} == {"shopify:5001", lei}
    by_number = _lookup(stack, sandbox_secrets, "order", "#5003")
    assert (by_number.customer_id, by_number.matches) == (wei, [])


def test_an_order_moved_to_another_customer_leaves_the_first_customer_s_view(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))
    stack.run_until_quiet()
    lei, wei = _customer_of(stack, "shopify:5001"), _customer_of(stack, "shopify:5003")
    stack.post(_reassigned(shopify_secret, 5001, WEI))  # the shop reassigned order #5001 to Wei
    stack.run_until_quiet()
    assert _customer_of(stack, "shopify:5001") == wei

    wei_view = _lookup(stack, sandbox_secrets, "phone", "13500135000")
    assert sorted(o["order_id"] for o in wei_view.orders) == ["shopify:5001", "shopify:5003"]
    lei_view = _lookup(stack, sandbox_secrets, "phone", "13800138000")
    assert lei_view.customer_id == lei
    assert lei_view.orders == []  # #5001 left Lei's view when it moved
    by_number = _lookup(stack, sandbox_secrets, "order", "#5001")
    assert (by_number.customer_id, by_number.matches) == (wei, [])  # the selector names its current owner only


def _state_record(state: EntityState, sequence: str) -> dict[str, Any]:
    pk = f"{state.tenant}#order#{state.entity_id}"
    return {
        "eventID": f"replay-{sequence}",
        "eventName": "MODIFY",
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": {"pk": {"S": pk}, "sk": {"S": "STATE"}},
            "NewImage": {
                "pk": {"S": pk},
                "sk": {"S": "STATE"},
                "version": {"N": str(state.version)},
                "revision": {"N": str(state.revision)},
                "docz": {"B": pack(state)},
            },
            "SequenceNumber": sequence,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_a_late_older_state_naming_the_former_customer_does_not_put_the_order_back_in_their_view(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    table = stack.resources.refs.state_table
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))
    stack.run_until_quiet()
    older, _ = DynamoStateStore(table).load("demo", "order", "shopify:5001")
    assert older is not None
    lei, wei = str(older.fields["customer_id"]), _customer_of(stack, "shopify:5003")
    stack.post(_reassigned(shopify_secret, 5001, WEI))
    stack.run_until_quiet()
    newer, _ = DynamoStateStore(table).load("demo", "order", "shopify:5001")
    assert newer is not None and newer.version > older.version and newer.fields["customer_id"] == wei
    # the view as it should be once the order moved: in Wei's, not in Lei's
    dynamodb = boto3.client("dynamodb")
    dynamodb.delete_item(
        TableName=table, Key={"pk": {"S": view_pk("demo", lei)}, "sk": {"S": entity_sk("order", "shopify:5001")}}
    )
    # the stream delivers the newer state, then the older one again (at least once, out of order)
    for sequence, state in (("901", newer), ("902", older)):
        assert stack.functions.invoke("project", {"Records": [_state_record(state, sequence)]}) == {
            "batchItemFailures": []
        }
    lei_item = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": view_pk("demo", lei)}, "sk": {"S": entity_sk("order", "shopify:5001")}}
    )
    assert "Item" not in lei_item  # version 1 of the order is older than the pointer's: nothing written
    assert [o["order_id"] for o in _lookup(stack, sandbox_secrets, "phone", "13800138000").orders] == []


# --- the cost of a lookup -------------------------------------------------------------------------------
def test_a_lookup_by_an_absorbed_customer_s_phone_costs_at_most_three_dynamodb_calls(
    stack: Stack, shopify_secret: str, sandbox_secrets: dict[str, Any]
) -> None:
    stack.post(order_webhook(shopify_secret, 5001, LEI, None))
    stack.post(order_webhook(shopify_secret, 5003, WEI, None))
    stack.run_until_quiet()
    lei, wei = _customer_of(stack, "shopify:5001"), _customer_of(stack, "shopify:5003")
    DynamoIdentityIndex(stack.resources.refs.state_table, "demo").absorb(wei, lei, ("test",), by="test")
    stack.run_until_quiet()
    counter = CallCounter()
    result = _lookup(stack, sandbox_secrets, "phone", "13500135000", client=counter.client)
    assert result.customer_id == lei
    # README: "At most 3 DynamoDB calls a lookup": the view's item of the phone key names the survivor
    assert sum(counter.take().values()) <= 3
