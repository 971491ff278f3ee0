"""What sync costs per observation on DynamoDB (moto): the calls it makes, by operation, and the write
units its writes bill, from the sizes of the items in the real requests."""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

import boto3

from infra.sandbox.lambda_runtime import sqs_record
from infra.sandbox.samples import signed
from shared.adapters.dynamo import item_size, write_units
from shared.adapters.state_store import DynamoStateStore, entity_pk
from shared.constants import STATE_SK
from shared.delivery.targets import canonical_json
from tests.fakes import observed
from tests.integration.conftest import Stack

ORDER = "shopify:820982911946154508"


class Requests:
    """The sync function's DynamoDB requests, as its client sends them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, params))

    def operations(self) -> dict[str, int]:
        return dict(Counter(name for name, _ in self.calls))

    def write_units(self) -> int:
        units = 0
        for name, params in self.calls:
            if name == "TransactWriteItems":
                units += sum(
                    write_units(item_size(next(iter(t.values()))["Item"]), True) for t in params["TransactItems"]
                )
            elif name == "PutItem":
                units += write_units(item_size(params["Item"]))
            elif name == "UpdateItem":
                units += 1  # the identity index's small items (a key's owners, a profile): under 1 KB each
        return units


def sync_what_is_queued(stack: Stack) -> Requests:
    """Run the pipeline up to the domain queues, then the sync function on what they hold, recording
    its DynamoDB requests."""
    stack.run_until_quiet(skip=frozenset({"sync"}))
    sqs = boto3.client("sqs")
    url, arn = stack.resources.queue_urls["orders"], stack.resources.queue_arns["orders"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    handler = importlib.import_module("functions.sync.handler")
    requests = Requests()
    client = handler.ports().store.client
    client.meta.events.register("provide-client-params.dynamodb", requests)
    try:
        answer = stack.functions.invoke("sync", {"Records": [sqs_record(m, arn, stack.cfg.region) for m in messages]})
    finally:
        client.meta.events.unregister("provide-client-params.dynamodb", requests)
    assert answer == {"batchItemFailures": []}
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return requests


def test_a_new_order_of_a_new_customer_then_its_update_calls_and_write_units(stack: Stack, shopify_secret: str) -> None:
    # Given a new order naming a customer never seen (source id, e-mail and phone: three keys)
    stack.post(signed("shopify_orders_create", shopify_secret))
    created = sync_what_is_queued(stack)
    # Then one batch read (its keys, the order's state, the customer's state and profile), the three key
    # claims and the profile, and one transaction per entity (state + audit record)
    assert created.operations() == {"BatchGetItem": 1, "UpdateItem": 4, "TransactWriteItems": 2}
    # order: state 1 KB + audit 2 KB, doubled; customer: 1 + 1, doubled; 4 index items
    assert created.write_units() == 6 + 4 + 4
    # When the order is updated (fulfilled, with a note)
    stack.post(signed("shopify_orders_updated", shopify_secret))
    updated = sync_what_is_queued(stack)
    # Then one batch read and one transaction of two items under 1 KB each: 4 write units in all; the
    # customer, unchanged, is not written
    assert updated.operations() == {"BatchGetItem": 1, "TransactWriteItems": 1}
    assert updated.write_units() == 4


def test_a_state_in_the_old_layout_loads_and_its_next_change_stores_it_compact(stack: Stack) -> None:
    store = DynamoStateStore(stack.resources.refs.state_table)
    ddb = boto3.client("dynamodb")
    from shared.state.merge import merge
    from shared.state.policy import default_policy

    # Given a state written before the compact layout: the pydantic dump as a String attribute
    first = merge(None, observed("a", 0), default_policy().for_type("order")).state
    key = {"pk": {"S": entity_pk("t", "order", "shopify:1")}, "sk": {"S": STATE_SK}}
    ddb.put_item(
        TableName=store.table,
        Item={
            **key,
            "entity_type": {"S": "order"},
            "version": {"N": str(first.version)},
            "revision": {"N": str(first.revision)},
            "doc": {"S": canonical_json(first.model_dump(mode="json"))},
            "audit_head": {"S": "0" * 64},
        },
    )
    # Then it loads as it was
    loaded, head = store.load("t", "order", "shopify:1")
    assert (loaded, head) == (first, "0" * 64)
    # When it changes
    from shared.state.sync import apply_observation

    result = apply_observation(observed("b", 5, note="ring twice"), store, default_policy())
    # Then it is stored in the compact layout, and reads back whole
    item = ddb.get_item(TableName=store.table, Key=key)["Item"]
    assert sorted(item) == ["audit_head", "docz", "pk", "revision", "sk", "version"]
    again, _ = store.load("t", "order", "shopify:1")
    assert again is not None
    assert (result.version, again.fields["note"], again.version) == (2, "ring twice", 2)
    assert (
        again.snapshot()
        == merge(first, observed("b", 5, note="ring twice"), default_policy().for_type("order")).state.snapshot()
    )


def test_twenty_orders_of_one_b2b_account_write_its_customer_once(stack: Stack, shopify_secret: str) -> None:
    import copy
    import json
    import uuid

    from infra.sandbox.samples import SignedWebhook, load_sample
    from shared.sources import shopify

    def order(n: int) -> SignedWebhook:
        """Order ``n`` of one account (customer 4242), placed by its own buyer, a minute after order n - 1."""
        sample = copy.deepcopy(load_sample("shopify_orders_create"))
        buyer = {
            "id": 4242,
            "first_name": f"Buyer{n}",
            "last_name": "Acme",
            "email": f"buyer{n}@acme.example",
            "phone": f"+86 138 0013 80{n:02d}",
        }
        at = f"2026-11-20T10:{n:02d}:05+08:00"
        sample["body"].update(
            {"id": 7000 + n, "name": f"#{7000 + n}", "customer": buyer, "email": buyer["email"], "updated_at": at}
        )
        body = json.dumps(sample["body"], separators=(",", ":")).encode()
        headers = {
            **sample["headers"],
            shopify.EVENT_ID_HEADER: str(uuid.uuid4()),
            shopify.SIGNATURE_HEADER: shopify.sign(shopify_secret, body),
        }
        return SignedWebhook("order", "shopify", headers, body)

    written: Counter[str] = Counter()
    for n in range(20):
        stack.post(order(n))
        for name, params in sync_what_is_queued(stack).calls:
            items = [next(iter(t.values())) for t in params.get("TransactItems", [])] or [params]
            for item in items:
                key = item.get("Item", item.get("Key", {}))
                if key.get("sk", {}).get("S") == STATE_SK and "#customer#" in key["pk"]["S"]:
                    written[name] += 1
    # Then its customer state was written by the first order only: one transaction, nothing after
    assert written == {"TransactWriteItems": 1}
    store = DynamoStateStore(stack.resources.refs.state_table)
    order_state, _ = store.load("demo", "order", "shopify:7019")
    assert order_state is not None
    customer, _ = store.load("demo", "customer", order_state.fields["customer_id"])
    assert customer is not None and customer.fields["name"] == "Buyer0 Acme"
