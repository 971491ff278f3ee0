"""The pure parts of batched writes: PutEvents chunking and per-entry outcomes, the raw archive's
objects per batch, the replay window by object name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ops.replay import ReplaySelection, batch_in_window
from shared.adapters.events import PUT_EVENTS_MAX_BYTES, EventBus, OwnedEntry, chunks, entry_size
from shared.adapters.routed_queues import RoutedQueues
from shared.adapters.s3 import decode_lines, encode_lines
from shared.intake.raw_archive import Received, batch_id, raw_batch_objects
from shared.models import InboxMessage


def test_entries_go_in_calls_of_ten() -> None:
    details = [("order.observed", "{}")] * 25
    assert [len(c) for c in chunks("aftersync", details)] == [10, 10, 5]


def test_a_call_stays_within_256_kb_and_an_oversized_entry_goes_alone() -> None:
    big = json.dumps({"x": "a" * 100_000})
    huge = json.dumps({"x": "a" * 300_000})
    details = [("t", big), ("t", big), ("t", big), ("t", huge), ("t", "{}")]
    calls = chunks("aftersync", details)
    assert calls == [[0, 1], [2], [3], [4]]
    for call in calls[:2]:
        assert sum(entry_size("aftersync", *details[i]) for i in call) <= PUT_EVENTS_MAX_BYTES


class FakeEventBridge:
    """Answers PutEvents as EventBridge does; rejects entries whose detail holds ``reject``, and fails
    a whole call holding ``fail``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([e["Detail"] for e in Entries])
        if any("fail" in e["Detail"] for e in Entries):
            raise ConnectionError("no answer")
        answers = [{"ErrorCode": "InternalFailure"} if "reject" in e["Detail"] else {"EventId": "x"} for e in Entries]
        return {"FailedEntryCount": sum("ErrorCode" in a for a in answers), "Entries": answers}


def test_a_refused_entry_or_a_failed_call_fails_exactly_the_records_it_carried() -> None:
    client = FakeEventBridge()
    bus = EventBus("bus", client)  # type: ignore[arg-type]
    entries = [OwnedEntry(f"m{i}", "t", json.dumps({"n": i})) for i in range(10)]  # call 1: m0..m9
    entries[3] = OwnedEntry("m3", "t", json.dumps({"n": "reject"}))
    entries += [OwnedEntry("m10", "t", '{"n": 10}'), OwnedEntry("m11", "t", '{"n": "fail"}')]  # call 2
    entries += [OwnedEntry("m0", "t", '{"n": "again"}')]  # m0's second event, also in call 2
    failed = bus.put_owned("aftersync", entries)
    assert [len(c) for c in client.calls] == [10, 3]
    assert failed == {
        "m3": "EventBridge rejected the entry: InternalFailure",
        "m10": "PutEvents failed: ConnectionError",
        "m11": "PutEvents failed: ConnectionError",
        "m0": "PutEvents failed: ConnectionError",
    }


class FakeSqs:
    """Answers SendMessageBatch as SQS does; refuses a message whose body holds ``reject``, and fails a
    whole call holding ``fail``."""

    class meta:  # (boto3's client.meta)
        region_name = "eu-west-1"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append((QueueUrl.rsplit("/", 1)[1], [e["MessageBody"] for e in Entries]))
        if any("fail" in e["MessageBody"] for e in Entries):
            raise ConnectionError("no answer")
        failed = [{"Id": e["Id"], "Code": "InternalError"} for e in Entries if "reject" in e["MessageBody"]]
        return {"Successful": [{"Id": e["Id"]} for e in Entries if "reject" not in e["MessageBody"]], "Failed": failed}


def test_observations_go_to_their_queue_in_calls_of_ten_as_the_bus_would_deliver_them() -> None:
    client = FakeSqs()
    urls = {
        "order.observed": "https://sqs.eu-west-1.amazonaws.com/111122223333/orders",
        "ticket.observed": "https://sqs.eu-west-1.amazonaws.com/111122223333/tickets",
    }
    queues = RoutedQueues(urls, client)  # type: ignore[arg-type]
    entries = [OwnedEntry(f"m{i}", "order.observed", json.dumps({"n": i, "s": "\u0001"})) for i in range(12)]
    entries += [OwnedEntry("m12", "ticket.observed", '{"n": 12}'), OwnedEntry("m13", "refund.observed", "{}")]
    failed = queues.send_owned("aftersync", entries)
    assert [(queue, len(bodies)) for queue, bodies in client.calls] == [("orders", 10), ("orders", 2), ("tickets", 1)]
    assert failed == {"m13": "no queue for refund.observed"}  # a type nobody routes fails its record
    event = json.loads(client.calls[0][1][3])
    assert {k: v for k, v in event.items() if k not in ("id", "time")} == {
        "version": "0",
        "detail-type": "order.observed",
        "source": "aftersync",
        "account": "111122223333",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"n": 3, "s": "\u0001"},
    }
    assert len({json.loads(body)["id"] for _, bodies in client.calls for body in bodies}) == 13


def test_a_refused_message_a_failed_call_or_an_oversized_one_fails_exactly_its_records() -> None:
    client = FakeSqs()
    queues = RoutedQueues({"t": "https://sqs.eu-west-1.amazonaws.com/1/q"}, client)  # type: ignore[arg-type]
    entries = [OwnedEntry(f"m{i}", "t", json.dumps({"n": i})) for i in range(10)]  # call 1: m0..m9
    entries[3] = OwnedEntry("m3", "t", json.dumps({"n": "reject"}))
    entries += [OwnedEntry("m10", "t", '{"n": 10}'), OwnedEntry("m11", "t", '{"n": "fail"}')]  # call 2
    entries += [OwnedEntry("m0", "t", '{"n": "again"}')]  # m0's second event, also in call 2
    entries += [OwnedEntry("m12", "t", json.dumps({"x": "a" * 300_000}))]  # over 256 KiB: no call
    failed = queues.send_owned("aftersync", entries)
    assert [len(bodies) for _, bodies in client.calls] == [10, 3]
    assert failed == {
        "m3": "SQS refused the message: InternalError",
        "m10": "SendMessageBatch failed: ConnectionError",
        "m11": "SendMessageBatch failed: ConnectionError",
        "m0": "SendMessageBatch failed: ConnectionError",
        "m12": "an event of 300197 bytes is over SQS's limit",
    }


def envelope(key: str, received_at: datetime, body: str = '{"id": 1}') -> str:
    return InboxMessage(
        source="shopify",
        tenant="demo",
        dedupe_key=key,
        source_event_id=key,
        topic="orders/create",
        received_at=received_at,
        headers={},
        body_sha256="0" * 64,
        archive_key="raw/x",
        body=body,
    ).model_dump_json()


def test_a_batch_is_one_object_per_hour_of_receipt_with_the_envelopes_as_received() -> None:
    late = envelope("a", datetime(2026, 11, 20, 10, 59, 58, tzinfo=UTC))
    pretty = json.dumps(json.loads(envelope("b", datetime(2026, 11, 20, 11, 0, 1, tzinfo=UTC))), indent=2)
    early = envelope("c", datetime(2026, 11, 20, 11, 0, 7, tzinfo=UTC))
    received = [Received("1", late), Received("2", pretty), Received("3", "not json"), Received("4", early)]
    objects = raw_batch_objects(received)
    assert [o.dedupe_keys for o in objects] == [["a"], ["b", "c"]]
    first, second = objects
    assert first.key == f"raw/batches/{batch_id(['1'])[0]}/2026/11/20/10/5958-5958-{batch_id(['1'])}.jsonl.gz"
    assert (
        second.key == f"raw/batches/{batch_id(['2', '4'])[0]}/2026/11/20/11/0001-0007-{batch_id(['2', '4'])}.jsonl.gz"
    )
    assert first.lines == [late]
    assert [json.loads(line) for line in second.lines] == [json.loads(pretty), json.loads(early)]
    assert decode_lines(encode_lines(second.lines)) == second.lines


def test_a_json_lines_document_must_be_one_line() -> None:
    with pytest.raises(ValueError, match="one line"):
        encode_lines(['{"a":\n1}'])


@pytest.mark.parametrize(
    ("name", "selected"),
    [
        ("0001-0007-x.jsonl.gz", True),
        ("0000-0000-x.jsonl.gz", False),  # all of it before 11:00:01
        ("0010-0012-x.jsonl.gz", True),
        ("0031-0040-x.jsonl.gz", False),  # after 11:00:30
        ("0000-0059-x.jsonl.gz", True),  # straddles the window
        ("ab-x.json", False),
    ],
)
def test_replay_skips_a_batch_object_outside_its_window_by_name(name: str, selected: bool) -> None:
    hour = datetime(2026, 11, 20, 11, tzinfo=UTC)
    selection = ReplaySelection(
        "shopify", "demo", datetime(2026, 11, 20, 11, 0, 1, tzinfo=UTC), datetime(2026, 11, 20, 11, 0, 30, tzinfo=UTC)
    )
    assert batch_in_window(f"raw/batches/a/2026/11/20/11/{name}", hour, selection) is selected


class FlakyArchive:
    """Writes batch objects, except under ``failing`` (a key prefix)."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.objects: dict[str, list[str]] = {}

    def put_lines(self, key: str, lines: list[str]) -> None:
        if key.startswith(self.failing):
            raise ConnectionError("no answer")
        self.objects[key] = lines


def ttl_removal(pk: str, version: int, sequence: str) -> dict[str, Any]:
    record = {"tenant": "t", "entity_type": "order", "entity_id": pk.split("#", 2)[2], "version": version}
    return {
        "eventID": sequence,
        "eventName": "REMOVE",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2027, 2, 18, tzinfo=UTC).timestamp(),
            "Keys": {"pk": {"S": pk}, "sk": {"S": f"AUDIT#{version:012d}"}},
            "OldImage": {"pk": {"S": pk}, "sk": {"S": f"AUDIT#{version:012d}"}, "record": {"S": json.dumps(record)}},
            "SequenceNumber": sequence,
        },
    }


def test_an_audit_object_that_cannot_be_written_fails_exactly_its_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    from functions.audit_archive import handler
    from shared.constants import audit_batch_prefix, entity_shard

    # Given records of entities in two shards, and the archive failing for one shard's objects
    pks = [f"t#order#shopify:{n}" for n in range(40)]
    first = pks[0]
    other = next(pk for pk in pks if entity_shard(pk) != entity_shard(first))
    same = next(pk for pk in pks[1:] if entity_shard(pk) == entity_shard(first))
    archive = FlakyArchive(failing=audit_batch_prefix(first))
    monkeypatch.setattr(handler, "archive", lambda: archive)
    records = [ttl_removal(first, 1, "100"), ttl_removal(other, 1, "101"), ttl_removal(same, 2, "102")]
    # When the batch is archived
    failed = handler.archive_batch([DynamoDBRecord(r) for r in records])
    # Then the records of the failed object fail (both from that shard), the other object is written
    assert sorted(failed) == ["100", "102"]
    [(key, lines)] = archive.objects.items()
    assert key.startswith(audit_batch_prefix(other) + "2027/02/18/")
    assert [json.loads(line)["pk"] for line in lines] == [other]
