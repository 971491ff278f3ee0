"""Audit trail on DynamoDB: tamper detection, TTL archival, and concurrent writers."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import boto3

from infra.sandbox.samples import signed
from ops.trail import full_trail
from shared.adapters.s3 import S3Archive
from shared.adapters.state_store import DynamoStateStore, entity_pk
from shared.constants import audit_batch_prefix
from shared.models import ObservedEntity
from shared.state.policy import default_policy
from shared.state.sync import apply_observation
from tests.fakes import observed
from tests.integration.conftest import Stack

ORDER = "shopify:820982911946154508"


def order_with_history(stack: Stack, secret: str) -> DynamoStateStore:
    stack.post(signed("shopify_orders_create", secret))
    stack.post(signed("shopify_orders_updated", secret))
    stack.run_until_quiet()
    return DynamoStateStore(stack.resources.refs.state_table)


def test_an_untouched_trail_verifies(stack: Stack, shopify_secret: str) -> None:
    store = order_with_history(stack, shopify_secret)
    trail = full_trail(store, S3Archive(stack.resources.refs.archive_bucket), "demo", "order", ORDER)
    assert [r.version for r in trail.records] == [1, 2]
    assert trail.problems() == []


def test_an_edited_record_is_detected(stack: Stack, shopify_secret: str) -> None:
    store = order_with_history(stack, shopify_secret)
    ddb = boto3.client("dynamodb")
    key = {"pk": {"S": entity_pk("demo", "order", ORDER)}, "sk": {"S": "AUDIT#000000000001"}}
    record = json.loads(ddb.get_item(TableName=store.table, Key=key)["Item"]["record"]["S"])
    record["changes"][0]["after"] = "forged"
    ddb.update_item(
        TableName=store.table,
        Key=key,
        UpdateExpression="SET #r = :r",
        ExpressionAttributeNames={"#r": "record"},
        ExpressionAttributeValues={":r": {"S": json.dumps(record)}},
    )
    assert full_trail(store, None, "demo", "order", ORDER).problems() == ["version 1: content does not match its hash"]


def test_a_deleted_latest_record_is_detected(stack: Stack, shopify_secret: str) -> None:
    store = order_with_history(stack, shopify_secret)
    boto3.client("dynamodb").delete_item(
        TableName=store.table, Key={"pk": {"S": entity_pk("demo", "order", ORDER)}, "sk": {"S": "AUDIT#000000000002"}}
    )
    assert full_trail(store, None, "demo", "order", ORDER).problems() == [
        "the latest record does not match the state's audit head (deleted or replaced)"
    ]


def test_records_expiring_by_ttl_move_to_the_archive_and_the_trail_stays_whole(
    stack: Stack, shopify_secret: str
) -> None:
    store = order_with_history(stack, shopify_secret)
    ddb = boto3.client("dynamodb")
    key = {"pk": {"S": entity_pk("demo", "order", ORDER)}, "sk": {"S": "AUDIT#000000000001"}}
    item = ddb.get_item(TableName=store.table, Key=key)["Item"]
    assert int(item["expires_at"]["N"]) > datetime.now(UTC).timestamp() + 89 * 86400
    # Given DynamoDB's TTL sweeper removes it: the stream record it produces (as documented by AWS)
    ttl_removal = {
        "eventID": "1",
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "Keys": key,
            "OldImage": item,
            "SequenceNumber": "100",
            "SizeBytes": 1,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": stack.resources.stream_arn,
    }
    assert stack.functions.invoke("audit-archive", {"Records": [ttl_removal]}) == {"batchItemFailures": []}
    ddb.delete_item(TableName=store.table, Key=key)
    # Then the hot table lacks version 1, the archive has it, and the whole chain verifies
    trail = full_trail(store, S3Archive(stack.resources.refs.archive_bucket), "demo", "order", ORDER)
    assert (trail.archived_versions, [r.version for r in trail.records], trail.problems()) == ([1], [1, 2], [])
    # And an ordinary delete (not the TTL service) is not archived
    user_delete = {**ttl_removal, "userIdentity": None}
    user_delete["dynamodb"] = {**ttl_removal["dynamodb"], "Keys": {**key, "sk": {"S": "AUDIT#000000000002"}}}
    stack.functions.invoke("audit-archive", {"Records": [user_delete]})
    archive = S3Archive(stack.resources.refs.archive_bucket)
    [batch_object] = archive.keys("audit/")
    assert batch_object.startswith(audit_batch_prefix(entity_pk("demo", "order", ORDER)))
    assert [json.loads(line)["sk"] for line in archive.lines(batch_object)] == ["AUDIT#000000000001"]


def test_fifty_concurrent_conflicting_updates_lose_nothing(stack: Stack) -> None:
    store = DynamoStateStore(stack.resources.refs.state_table)
    policy = default_policy()
    events: list[ObservedEntity] = [
        observed(f"e{i:02d}", i, note=f"note {i}", status="open" if i % 2 else "closed") for i in range(50)
    ]
    barrier = threading.Barrier(50)
    errors: list[BaseException] = []

    def write(event: ObservedEntity) -> None:
        try:
            barrier.wait()
            apply_observation(event, DynamoStateStore(store.table), policy, max_attempts=200)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state, _ = store.load("t", "order", "shopify:1")
    assert state is not None
    # The policy's answer: the newest observation (minute 49) holds every mutable field
    assert (state.fields["note"], state.fields["status"]) == ("note 49", "open")
    trail = store.audit_trail("t", "order", "shopify:1")
    assert [r.version for r in trail] == list(range(1, state.version + 1))
    assert full_trail(store, None, "t", "order", "shopify:1").problems() == []
    # Every applied change is in the trail exactly once: replaying the trail rebuilds the same fields
    rebuilt: dict[str, object] = {}
    for record in trail:
        for change in record.changes:
            rebuilt[change["field"]] = change["after"]
    assert rebuilt == state.fields
