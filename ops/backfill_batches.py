"""Backfill in verified batches, resumable from the last verified one (断点续传).

A planned file (``shared/pulls/backfill.py``: every record checked before anything is sent) is cut into
batches of ``--batch-size`` records in file order. Each batch is admitted, then verified against the
state (counts and fields, as ``verify`` does) before the next one is sent: the pipeline gets a bounded
wait (``--wait`` per batch, polled each second) to apply it. A batch that does not verify stops the run,
naming the batch and its pending records, unless ``--keep-going``.

The checkpoint records how far the file is verified: the records of its leading batches that all
verified. Its key is the file's content hash, the map (or the source and topic of JSON Lines) and the
tenant, so a renamed copy resumes and an edited file, another map or another tenant start again. A run
skips admitting what the checkpoint covers and starts at the batch after it; those batches are only
re-read against the state (reads, no wait), so the report still covers the whole file. A run cut short
inside a batch (a failed call, Ctrl-C) also records how many records it had sent: the next run sends
that batch from the record after them. The checkpoint is the speed-up and the report, not the
guarantee: admission stays idempotent by the record's hash (the admission records), so a run killed
outright (no checkpoint of what it sent) sends a record of its last batch again only if its admission's
lease (3 s) is over, and that copy is applied once downstream, as a platform's retried webhook is.

Where: an item ``ops#backfill#<tenant>#<key>`` in the stack's idempotency table. The operator's
credentials already write there (every admission record of the backfill is an item in it), the table
has no stream (a checkpoint wakes no consumer, unlike an ``ops#`` item in the state table), and it
travels with the stack: a colleague on another machine, or a re-run from a fresh checkout, resumes
where the last run stopped. It expires after ``CHECKPOINT_DAYS`` (TTL on ``expiration``), well after
the admission records it outlives: a resume weeks later still skips what was verified.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError

from shared.pulls.backfill import Admitted, Plan, Report

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

DEFAULT_BATCH_SIZE: Final = 500
CHECKPOINT_DAYS: Final = 90
POLL_SECONDS: Final = 1.0


@dataclass(frozen=True)
class Batch:
    number: int  # from 1
    start: int  # index of its first record in the plan
    plan: Plan  # its records (no rejects)

    @property
    def end(self) -> int:
        return self.start + len(self.plan.records)

    @property
    def lines(self) -> tuple[int, int]:
        return self.plan.records[0].line, self.plan.records[-1].line


def batches(plan: Plan, size: int) -> list[Batch]:
    """The plan's records in file order, ``size`` to a batch."""
    if size < 1:
        raise ValueError("a batch holds at least one record")
    records = plan.records
    return [
        Batch(n, start, Plan(records[start : start + size], ()))
        for n, start in enumerate(range(0, len(records), size), start=1)
    ]


@dataclass(frozen=True)
class BatchResult:
    batch: Batch
    report: Report
    resumed: bool  # verified by an earlier run (the checkpoint): not admitted again, only re-checked
    admitted: Admitted | None  # None: nothing sent (resumed, or --verify-only)
    sent_earlier: int = 0  # its leading records an interrupted run had sent: not sent again

    @property
    def verified(self) -> bool:
        return self.report.complete

    @property
    def new(self) -> int:
        return len(self.admitted.new) if self.admitted else 0

    @property
    def duplicates(self) -> int:
        return len(self.admitted.duplicates) if self.admitted else 0


def run_batches(
    planned: Sequence[Batch],
    *,
    admit: Callable[[Plan, int], Admitted] | None,
    verify: Callable[[Plan, bool], Report],
    verified_before: int = 0,
    sent_before: int = 0,
    save: Callable[[Batch], None] | None = None,
    keep_going: bool = False,
    on_result: Callable[[BatchResult], None] | None = None,
) -> list[BatchResult]:
    """Each batch: ``admit(records, index of the first)`` its records (none that ``verified_before`` or
    ``sent_before`` cover; none at all when ``admit`` is None: verify only), then ``verify(plan, patient)``
    (patient: give the pipeline its wait). ``save`` follows each batch that extends the verified run of
    leading batches. Stops after the first batch that does not verify, unless ``keep_going``. An
    exception (a failed send, Ctrl-C) propagates: what was saved stands."""
    results: list[BatchResult] = []
    leading = True  # every batch so far verified: the checkpoint may move
    for batch in planned:
        resumed = admit is not None and batch.end <= verified_before
        admitted = None
        sent_earlier = 0
        if admit is not None and not resumed:
            sent_earlier = min(max(sent_before - batch.start, 0), len(batch.plan.records))
            admitted = admit(Plan(batch.plan.records[sent_earlier:], ()), batch.start + sent_earlier)
        report = verify(batch.plan, not resumed)
        result = BatchResult(batch, report, resumed, admitted, sent_earlier)
        results.append(result)
        if on_result:
            on_result(result)
        if not result.verified:
            leading = False
            if not keep_going:
                break
        elif leading and save is not None and not resumed:
            save(batch)
    return results


def pause(seconds: float) -> None:
    """The wait between two checks of a batch (the tests run the pipeline here instead)."""
    time.sleep(seconds)


def patient_verify(
    verify_once: Callable[[Plan], Report],
    wait_seconds: float,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[Plan, bool], Report]:
    """``verify`` for ``run_batches``: a patient check polls each ``POLL_SECONDS`` until the batch is
    complete or ``wait_seconds`` have passed (bounded: a lost record fails the batch, it never hangs)."""

    def verify(plan: Plan, patient: bool) -> Report:
        deadline = clock() + (wait_seconds if patient else 0)
        report = verify_once(plan)
        while not report.complete and clock() < deadline:
            pause(min(POLL_SECONDS, max(0.0, deadline - clock())))
            report = verify_once(plan)
        return report

    return verify


def checkpoint_key(tenant: str, file_sha256: str, recipe: str) -> str:
    """``ops#backfill#<tenant>#<file hash>-<recipe hash>``: recipe is the column map's digest, or
    ``jsonl:<source>/<topic>``."""
    return f"ops#backfill#{tenant}#{file_sha256[:32]}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Checkpoint:
    verified_records: int  # the leading records of the plan that are verified
    sent_records: int  # the leading records sent (>= verified: a run cut short inside a batch)
    batches: int  # verified batches of batch_size
    batch_size: int
    saved_at: int  # epoch seconds


class Checkpoints:
    """Checkpoint items in the idempotency table (see the module docstring)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, days: int = CHECKPOINT_DAYS) -> None:
        self.table = table
        self.days = days
        self._client = client

    @cached_property
    def client(self) -> DynamoDBClient:
        return self._client or boto3.client("dynamodb")

    def load(self, key: str) -> Checkpoint | None:
        item: dict[str, Any] = (
            self.client.get_item(TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True).get("Item") or {}
        )
        if not item or int(item["expiration"]["N"]) < time.time():
            return None
        return Checkpoint(
            int(item["verified_records"]["N"]),
            int(item["sent_records"]["N"]),
            int(item["batches"]["N"]),
            int(item["batch_size"]["N"]),
            int(item["saved_at"]["N"]),
        )

    def save(self, key: str, verified: int, sent: int, batches: int, batch_size: int, total: int) -> None:
        """Record that the plan's first ``verified`` records are verified (``batches`` batches) and its first
        ``sent`` records sent; never moves backwards (a slower concurrent run of the same file cannot undo
        a faster one's progress)."""
        now = int(time.time())
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": key},
                    "verified_records": {"N": str(verified)},
                    "sent_records": {"N": str(max(sent, verified))},
                    "batches": {"N": str(batches)},
                    "batch_size": {"N": str(batch_size)},
                    "records": {"N": str(total)},
                    "saved_at": {"N": str(now)},
                    "expiration": {"N": str(now + self.days * 86400)},
                },
                ConditionExpression="attribute_not_exists(id) OR expiration < :now "
                "OR (verified_records <= :v AND sent_records <= :s)",
                ExpressionAttributeValues={
                    ":v": {"N": str(verified)},
                    ":s": {"N": str(max(sent, verified))},
                    ":now": {"N": str(now)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
