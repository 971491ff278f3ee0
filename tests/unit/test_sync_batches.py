"""Sync processes a batch's records concurrently, each entity's records in arrival order, and reports
failures per record exactly."""

from __future__ import annotations

import json
import threading
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from functions.sync.handler import RECORD_WORKERS, entity_of
from shared.adapters.concurrent_records import ConcurrentRecordsProcessor, makespan


def sqs_message(message_id: str, entity: str | None) -> dict[str, Any]:
    body = json.dumps({"detail": {"tenant": "t", "entity_type": "order", "entity_id": entity}}) if entity else "junk"
    return {
        "messageId": message_id,
        "receiptHandle": message_id,
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:orders",
        "awsRegion": "eu-west-1",
    }


def test_records_of_different_entities_run_at_once_and_one_entity_s_records_in_arrival_order() -> None:
    batch = [
        sqs_message("a1", "A"),
        sqs_message("b1", "B"),
        sqs_message("a2", "A"),
        sqs_message("x1", None),
        sqs_message("a3", "A"),
        sqs_message("b2", "B"),
    ]
    # The first records of A and B each wait for the other: processed one after another, they would
    # never meet (the barrier's timeout only keeps a failing run from hanging).
    both_started = threading.Barrier(2, timeout=30)
    seen: list[str] = []
    prepared: list[bool] = []

    def handle(record: SQSRecord) -> None:
        r = record
        if r.message_id in ("a1", "b1"):
            both_started.wait()
        if r.message_id in ("a2", "x1"):
            raise ValueError("this one fails")
        seen.append(r.message_id)

    processor = ConcurrentRecordsProcessor(
        5, group_of=entity_of, workers=RECORD_WORKERS, prepare=lambda: prepared.append(True)
    )
    answer = process_partial_response(event={"Records": batch}, record_handler=handle, processor=processor)
    # Then exactly the failed records are reported, and every other one was handled
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == ["a2", "x1"]
    assert sorted(seen) == ["a1", "a3", "b1", "b2"]
    # and A's records ran in arrival order (a2 failed in between), B's too
    assert [m for m in seen if m.startswith("a")] == ["a1", "a3"]
    assert [m for m in seen if m.startswith("b")] == ["b1", "b2"]
    assert prepared == [True]


def test_a_batch_about_one_entity_runs_in_order_on_the_calling_thread() -> None:
    threads: set[int] = set()
    seen: list[str] = []

    def handle(record: SQSRecord) -> None:
        r = record
        threads.add(threading.get_ident())
        seen.append(r.message_id)

    processor = ConcurrentRecordsProcessor(5, group_of=entity_of, workers=RECORD_WORKERS, prepare=lambda: None)
    batch = [sqs_message(f"m{i}", "A") for i in range(5)]
    answer = process_partial_response(event={"Records": batch}, record_handler=handle, processor=processor)
    assert answer == {"batchItemFailures": []}
    assert (seen, threads) == (["m0", "m1", "m2", "m3", "m4"], {threading.get_ident()})


def test_a_record_whose_entity_is_not_hashable_is_a_group_of_its_own() -> None:
    odd = sqs_message("odd", "A")
    odd["body"] = json.dumps({"detail": {"tenant": "t", "entity_type": "order", "entity_id": ["A"]}})
    assert entity_of(odd) == ("record", "odd")
    assert entity_of(sqs_message("a", "A")) == ("t", "order", "A")


def test_makespan_is_the_busiest_worker_s_records_when_groups_go_to_the_first_free_worker() -> None:
    assert makespan([], 8) == 0
    assert makespan([10], 8) == 10  # one entity: one after another
    assert makespan([1] * 10, 8) == 2  # ten entities on eight threads: two rounds
    assert makespan([1] * 10, 10) == 1
    assert makespan([3, 1, 1, 1], 2) == 3  # the long group on one worker, the three others on the other
