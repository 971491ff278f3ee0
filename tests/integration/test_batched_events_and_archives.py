"""Issue 15: normalise's observations sent to their domain queue in SendMessageBatch calls across a
batch's records (≤ 10 a call), publish's PutEvents likewise (≤ 10 entries a call), partial failures exact;
the raw archive written by normalise as one batch object per inbox batch before the ack; replay over
batch objects; audit records archived as batch objects and still found by the trail. All through the
real handlers on moto."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from infra.sandbox.lambda_runtime import sqs_record
from infra.sandbox.samples import signed
from ops.replay import ReplaySelection, replay
from ops.trail import full_trail
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore, entity_pk
from shared.constants import AUDIT_BATCH_PREFIX, RAW_BATCH_PREFIX, audit_archive_key
from shared.models import InboxMessage
from shared.state.policy import default_policy
from shared.state.sync import apply_observation
from tests.fakes import observed
from tests.integration.conftest import Stack

MOVEMENTS = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2]  # events per record: 23 in all
RAW_KEY = re.compile(r"raw/batches/([0-9a-f])/\d{4}/\d{2}/\d{2}/\d{2}/\d{4}-\d{4}-([0-9a-f]{32})\.jsonl\.gz")


def wms_batch(stack: Stack, secrets: dict[str, Any], n: int, movements: int) -> None:
    """A WMS stock-movement webhook with ``movements`` movements (one stock observation each)."""
    body = {
        "warehouse": "SH-01",
        "batch_no": f"RK-{n}",
        "moved_at": "2026-11-23 10:20:00",
        "movements": [
            {
                "id": f"MV-{n}-{m}",
                "item": {"code": f"SKU-{n}-{m}", "name": "滤芯"},
                "qty": 1,
                "type": "RET",
            }
            for m in range(movements)
        ],
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    hook = signed("wms_stock_movements", secrets["sources"]["wms"]["demo"][0], body=raw, **{"webhook-id": f"msg_{n}"})
    assert stack.post(hook)["statusCode"] == 200


def receive_batch(stack: Stack, purpose: str = "inbox") -> list[dict[str, Any]]:
    """Every message now in a queue, as the SQS records of one batch (in the order received)."""
    sqs = boto3.client("sqs")
    messages: dict[str, dict[str, Any]] = {}
    while True:
        got = sqs.receive_message(
            QueueUrl=stack.resources.queue_urls[purpose],
            MaxNumberOfMessages=10,
            VisibilityTimeout=300,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            break
        messages.update({m["MessageId"]: m for m in got})
    return [sqs_record(m, stack.resources.queue_arns[purpose], stack.cfg.region) for m in messages.values()]


class Sends(list[int]):
    """The messages of each SendMessageBatch call, in order; ``by_queue``: the same by queue URL."""

    def __init__(self) -> None:
        super().__init__()
        self.by_queue: dict[str, list[int]] = {}


@contextmanager
def send_batch_calls(client: Any, reject_marker: str | None = None) -> Iterator[Sends]:
    """The messages of each SendMessageBatch call ``client`` makes. With ``reject_marker``, a message
    whose body holds it is sent with an invalid delay, so SQS (moto) refuses that message alone."""
    calls = Sends()

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Entries"]))
        calls.by_queue.setdefault(params["QueueUrl"], []).append(len(params["Entries"]))
        if reject_marker:
            for entry in params["Entries"]:
                if reject_marker in entry["MessageBody"]:
                    entry["DelaySeconds"] = 901

    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", count)


def normalise_sender() -> Any:
    from functions.normalise import handler as normalise

    return normalise.ports().domains.client


def raw_objects(stack: Stack) -> dict[str, list[str]]:
    s3 = boto3.client("s3")
    bucket = stack.resources.refs.archive_bucket
    keys = S3Archive(bucket).keys(RAW_BATCH_PREFIX)
    return {k: gzip.decompress(s3.get_object(Bucket=bucket, Key=k)["Body"].read()).decode().splitlines() for k in keys}


# -- normalise ------------------------------------------------------------------------------------
def test_a_batch_of_ten_records_sends_its_23_observations_in_three_calls(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    # Given 10 inbox messages carrying 1..4 stock movements each (23 observations)
    for n, movements in enumerate(MOVEMENTS):
        wms_batch(stack, sandbox_secrets, n, movements)
    records = receive_batch(stack)
    assert len(records) == 10
    # When normalise gets them as one batch
    with send_batch_calls(normalise_sender()) as calls:
        answer = stack.functions.invoke("normalise", {"Records": records})
    # Then the 23 observations go to the after-sales queue in 3 calls of 10, 10 and 3 messages (not 10
    # calls, one per record)
    assert answer == {"batchItemFailures": []}
    assert calls == [10, 10, 3]
    assert stack.depth("after-sales") == 23
    # each as the EventBridge event the bus's rule would have delivered: what sync reads
    [message] = boto3.client("sqs").receive_message(QueueUrl=stack.resources.queue_urls["after-sales"])["Messages"]
    event = json.loads(message["Body"])
    assert {k: v for k, v in event.items() if k not in ("id", "time", "detail")} == {
        "version": "0",
        "detail-type": "stock.observed",
        "source": "aftersync",
        "account": "123456789012",
        "region": stack.cfg.region,
        "resources": [],
    }
    assert event["detail"]["entity_type"] == "stock"


def test_a_refused_message_fails_only_its_record_and_its_retry_sends_all_its_observations(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    # Given 8 good messages, one whose 3 observations include one SQS refuses, and one not an envelope
    for n in range(8):
        wms_batch(stack, sandbox_secrets, n, 2)
    wms_batch(stack, sandbox_secrets, 8, 3)
    SqsQueue(stack.resources.queue_urls["inbox"]).send('{"not": "an inbox envelope"}')
    records = receive_batch(stack)
    [rejected] = [r for r in records if '"msg_8"' in r["body"]]
    # When normalise sends the batch's 19 observations and SQS refuses the message for SKU 8-1
    with send_batch_calls(normalise_sender(), reject_marker="SKU-8-1@") as calls:
        answer = stack.functions.invoke("normalise", {"Records": records})
    # Then exactly that record is reported failed; the junk one is quarantined, not failed; the rest went out
    assert answer == {"batchItemFailures": [{"itemIdentifier": rejected["messageId"]}]}
    assert calls == [10, 9]
    assert stack.depth("quarantine") == 1
    assert stack.depth("after-sales") == 18  # 16 from the good records, 2 of the rejected record's 3
    # And when the record comes back alone, all 3 of its observations are sent again (sync is idempotent)
    with send_batch_calls(normalise_sender()) as calls:
        assert stack.functions.invoke("normalise", {"Records": [rejected]}) == {"batchItemFailures": []}
    assert calls == [3]
    assert stack.depth("after-sales") == 21


def test_a_batch_is_archived_as_one_object_holding_its_envelopes_as_received(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    for n, movements in enumerate(MOVEMENTS):
        wms_batch(stack, sandbox_secrets, n, movements)
    records = receive_batch(stack)
    assert stack.functions.invoke("normalise", {"Records": records}) == {"batchItemFailures": []}
    [(key, lines)] = raw_objects(stack).items()
    match = RAW_KEY.fullmatch(key)
    assert match is not None and match.group(1) == match.group(2)[0]  # the shard: the batch id's first digit
    assert lines == [r["body"] for r in records]
    envelopes = [InboxMessage.model_validate_json(line) for line in lines]
    hour = envelopes[0].received_at
    assert key.startswith(f"{RAW_BATCH_PREFIX}{match.group(1)}/{hour:%Y/%m/%d/%H}/")


def test_when_the_archive_write_fails_the_whole_batch_fails_and_nothing_goes_out(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    for n in range(3):
        wms_batch(stack, sandbox_secrets, n, 2)
    records = receive_batch(stack)
    s3 = boto3.client("s3")
    bucket = stack.resources.refs.archive_bucket
    for key in S3Archive(bucket).keys(""):
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)  # the archive is unavailable
    with send_batch_calls(normalise_sender()) as calls, pytest.raises(Exception, match="NoSuchBucket"):
        stack.functions.invoke("normalise", {"Records": records})
    assert (calls, stack.depth("after-sales"), stack.depth("quarantine")) == ([], 0, 0)
    # When the batch comes back with the archive there again, it is archived and goes out
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": stack.cfg.region})  # type: ignore[typeddict-item]
    assert stack.functions.invoke("normalise", {"Records": records}) == {"batchItemFailures": []}
    [lines] = raw_objects(stack).values()
    assert (lines, stack.depth("after-sales")) == ([r["body"] for r in records], 6)


# -- replay ---------------------------------------------------------------------------------------
def test_replay_over_batch_objects_replays_each_dedupe_key_once(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    # Given three deliveries archived in one batch, and one of them delivered again in a later batch
    for n in range(3):
        wms_batch(stack, sandbox_secrets, n, 1)
    records = receive_batch(stack)
    assert stack.functions.invoke("normalise", {"Records": records}) == {"batchItemFailures": []}
    again = {**records[1], "messageId": "redelivered-copy"}
    assert stack.functions.invoke("normalise", {"Records": [again]}) == {"batchItemFailures": []}
    assert sorted(len(lines) for lines in raw_objects(stack).values()) == [1, 3]
    # And a delivery archived the old way, one object per event, in the same hour
    old = InboxMessage.model_validate_json(records[0]["body"]).model_copy(
        update={"dedupe_key": "wms:demo:msg_old", "source_event_id": "msg_old"}
    )
    S3Archive(stack.resources.refs.archive_bucket).put(
        f"raw/wms/demo/{old.received_at:%Y/%m/%d/%H}/{old.received_at:%Y%m%dT%H%M%S%fZ}-old.json",
        old.model_dump_json().encode(),
    )
    # When the hour is replayed
    now = datetime.now(UTC)
    selection = ReplaySelection("wms", "demo", now - timedelta(hours=1), now + timedelta(minutes=1))
    inbox = SqsQueue(stack.resources.queue_urls["inbox"])
    replayed = replay(selection, S3Archive(stack.resources.refs.archive_bucket), inbox)
    # Then each dedupe key is re-enqueued once, with origin replay
    assert sorted(replayed) == ["wms:demo:msg_0", "wms:demo:msg_1", "wms:demo:msg_2", "wms:demo:msg_old"]
    requeued = [InboxMessage.model_validate_json(r["body"]) for r in receive_batch(stack)]
    assert sorted(m.dedupe_key for m in requeued) == sorted(replayed)
    assert {m.origin for m in requeued} == {"replay"}
    # And another source or tenant in the same objects is not selected
    other = ReplaySelection("wms", "other-tenant", now - timedelta(hours=1), now + timedelta(minutes=1))
    assert replay(other, S3Archive(stack.resources.refs.archive_bucket), inbox) == []


# -- publish --------------------------------------------------------------------------------------
def audit_inserts(stack: Stack, versions: int) -> list[dict[str, Any]]:
    """The state table stream's audit inserts after ``versions`` changes to one order."""
    store = DynamoStateStore(stack.resources.refs.state_table)
    for i in range(versions):
        apply_observation(observed(f"e{i:02d}", i, note=f"note {i}"), store, default_policy())
    streams = boto3.client("dynamodbstreams")
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stack.resources.stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stack.resources.stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
    inserts = [
        {**r, "eventSourceARN": stack.resources.stream_arn}
        for r in records
        if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"].startswith("AUDIT#")
    ]
    assert len(inserts) == versions
    return inserts


def publish_sender() -> Any:
    from functions.publish import handler as publish

    return publish.queues().client


def routed_by_eventbridge(stack: Stack, detail: dict[str, Any]) -> set[str]:
    """The queues EventBridge's own matching (moto's) sends a change to, from the same patterns."""
    from moto.events.models import EventPattern as MotoPattern

    from infra.wiring import change_routes

    event = {"source": "aftersync", "detail-type": "entity.changed", "detail": detail}
    return {
        stack.resources.queue_urls[r.queue_purpose]
        for r in change_routes(stack.cfg)
        if MotoPattern.load(json.dumps(r.pattern)).matches_event(event)
    }


def test_publish_sends_a_stream_batch_to_the_routes_queues_in_calls_of_ten_and_fails_the_refused_record(
    stack: Stack,
) -> None:
    records = audit_inserts(stack, 12)
    # Given the order's change goes (by EventBridge's matching of the routes) to the two order targets
    queues = routed_by_eventbridge(
        stack, {"tenant": "t", "entity_type": "order", "entity_id": "shopify:1", "origin_source": "shopify"}
    )
    assert queues == {stack.resources.queue_urls["deliver-crm"], stack.resources.queue_urls["deliver-erp"]}
    with send_batch_calls(publish_sender()) as calls:
        assert stack.functions.invoke("publish", {"Records": records}) == {"batchItemFailures": []}
    assert calls.by_queue == {url: [10, 2] for url in queues}
    # each queue holds the twelve changes as the EventBridge events its consumer reads
    for purpose in ("deliver-crm", "deliver-erp"):
        bodies = [json.loads(m["body"]) for m in receive_batch(stack, purpose)]
        assert sorted(b["detail"]["version"] for b in bodies) == list(range(1, 13))
        assert {(b["source"], b["detail-type"], b["detail"]["entity_id"]) for b in bodies} == {
            ("aftersync", "entity.changed", "shopify:1")
        }
    # When SQS refuses the message of version 7 (on both queues)
    with send_batch_calls(publish_sender(), reject_marker='"version":7,') as calls:
        answer = stack.functions.invoke("publish", {"Records": records})
    # Then exactly that record is reported, by its sequence number (the stream checkpoints there)
    [seven] = [r for r in records if r["dynamodb"]["Keys"]["sk"]["S"] == "AUDIT#000000000007"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": seven["dynamodb"]["SequenceNumber"]}]}
    assert calls.by_queue == {url: [10, 2] for url in queues}


# -- audit archive and trail ----------------------------------------------------------------------
def ttl_removal(stack: Stack, item: dict[str, Any], sequence: int) -> dict[str, Any]:
    """The stream record DynamoDB's TTL sweeper produces for an expired item (as documented by AWS)."""
    return {
        "eventID": str(sequence),
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": stack.cfg.region,
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2027, 2, 18, 9, tzinfo=UTC).timestamp(),
            "Keys": {"pk": item["pk"], "sk": item["sk"]},
            "OldImage": item,
            "SequenceNumber": str(sequence),
            "SizeBytes": 1,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": stack.resources.stream_arn,
    }


def test_expired_audit_records_are_archived_in_batch_objects_and_the_trail_finds_them(stack: Stack) -> None:
    # Given two orders with 3 versions each, in tenant t
    store = DynamoStateStore(stack.resources.refs.state_table)
    for i in range(3):
        apply_observation(observed(f"a{i}", i, note=f"a {i}"), store, default_policy())
        second = observed(f"b{i}", i, note=f"b {i}").model_copy(update={"entity_id": "shopify:2"})
        apply_observation(second, store, default_policy())
    ddb = boto3.client("dynamodb")
    items = {
        (entity_id, version): ddb.get_item(
            TableName=store.table,
            Key={"pk": {"S": entity_pk("t", "order", entity_id)}, "sk": {"S": f"AUDIT#{version:012d}"}},
        )["Item"]
        for entity_id in ("shopify:1", "shopify:2")
        for version in (1, 2, 3)
    }
    # When versions 1 and 2 of both expire in one stream batch (and version 3 of shopify:1 was archived
    # the old way, one object per record)
    expired = [(e, v) for e in ("shopify:1", "shopify:2") for v in (1, 2)]
    batch = [ttl_removal(stack, items[key], n) for n, key in enumerate(expired, start=100)]
    assert stack.functions.invoke("audit-archive", {"Records": batch}) == {"batchItemFailures": []}
    old = items[("shopify:1", 3)]
    archive = S3Archive(stack.resources.refs.archive_bucket)
    document = {"pk": old["pk"]["S"], "sk": old["sk"]["S"], "record": json.loads(old["record"]["S"])}
    archive.put(audit_archive_key(old["pk"]["S"], old["sk"]["S"]), json.dumps(document).encode())
    for entity_id, version in [*expired, ("shopify:1", 3)]:
        ddb.delete_item(
            TableName=store.table,
            Key={"pk": {"S": entity_pk("t", "order", entity_id)}, "sk": {"S": f"AUDIT#{version:012d}"}},
        )
    # Then the 4 records are in batch objects, one per entity shard (one PUT, not 4, when they share it)
    batch_keys = archive.keys(AUDIT_BATCH_PREFIX)
    shards = {entity_pk("t", "order", e) for e in ("shopify:1", "shopify:2")}
    assert 1 <= len(batch_keys) <= len(shards)
    assert all(
        re.fullmatch(r"audit/batches/[0-9a-f]/t/order/2027/02/18/[0-9a-f]{32}\.jsonl\.gz", k) for k in batch_keys
    )
    assert sorted(len(archive.lines(k)) for k in batch_keys) in ([4], [2, 2])
    # And each trail is whole: archived versions found, hot ones read, the chain verifies
    one = full_trail(store, archive, "t", "order", "shopify:1")
    two = full_trail(store, archive, "t", "order", "shopify:2")
    assert (one.archived_versions, [r.version for r in one.records], one.problems()) == ([1, 2, 3], [1, 2, 3], [])
    assert (two.archived_versions, [r.version for r in two.records], two.problems()) == ([1, 2], [1, 2, 3], [])
