"""Event source mappings for the sandbox: SQS queues and the state table's stream.

Partial batch failures behave as on AWS: succeeded records are deleted (DeleteMessageBatch, as the
Lambda service deletes them), failed ones become visible
again (after a short backoff here instead of the full visibility timeout) and the queue's redrive
policy moves them to the DLQ after maxReceiveCount receives.

They scale as the Lambda service's do: an SQS mapping keeps receiving while earlier batches run, up
to ``max_in_flight`` batches at once (each invocation in an execution environment of its own, see
``environments.py``), and long-polls so a message is picked up as soon as it lands; a stream mapping
splits each batch by partition key over ``parallelization`` concurrent invocations (AWS's
ParallelizationFactor: records of one key stay in order, in one invocation). A stream mapping lists
the stream's shards every few seconds and reads the shards it knows four times a second in between.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from infra.sandbox.lambda_runtime import Functions, sqs_record


class SqsPoller(threading.Thread):
    def __init__(
        self,
        functions: Functions,
        function: str,
        queue_url: str,
        queue_arn: str,
        region: str,
        retry_delay: Callable[[int], int] | None = lambda receives: min(receives, 3),
        max_in_flight: int = 1,
    ) -> None:
        """``retry_delay``: how long a failed record stays hidden, by receive count — shorter than the
        queue's visibility so the sandbox moves fast. ``None`` does what Lambda does: nothing, so the
        visibility the handler set (a consumer with its own backoff) or the queue's decides.
        ``max_in_flight``: batches invoked at once (the mapping's concurrency)."""
        super().__init__(name=f"poll-{function}-{queue_url.rsplit('/', 1)[-1]}", daemon=True)
        self.retry_delay = retry_delay
        self.functions, self.function = functions, function
        self.queue_url, self.queue_arn, self.region = queue_url, queue_arn, region
        self.max_in_flight = max(1, max_in_flight)
        self.stopping = threading.Event()
        self.sqs = boto3.client("sqs")
        self._slots = threading.Semaphore(self.max_in_flight)
        self._in_flight = 0
        self._count = threading.Lock()

    @property
    def busy(self) -> bool:
        """Holding messages (received, not yet deleted or released): drain() waits for them."""
        return self._in_flight > 0

    def _hold(self, delta: int) -> None:
        with self._count:
            self._in_flight += delta

    def run(self) -> None:
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix=self.name) as batches:
            while not self.stopping.is_set():
                if not self._slots.acquire(timeout=0.5):
                    continue  # every slot busy: receive more once a batch is done
                try:
                    with self.functions.role_of(self.function):
                        messages = self._receive(wait_seconds=1)  # long polling, as the Lambda service does
                except Exception:  # a poller survives a stand-in hiccup, like the real event source mapping
                    messages = []
                    time.sleep(0.2)
                if not messages:
                    self._slots.release()
                    continue
                self._hold(1)  # (until now the queue counts them as in flight)
                batches.submit(self._run_batch, messages)

    def _run_batch(self, messages: list[dict[str, Any]]) -> None:
        try:
            with self.functions.role_of(self.function):
                self._invoke(messages)
        except Exception:  # noqa: S110 - the messages reappear after their visibility timeout, as on AWS
            pass
        finally:
            self._hold(-1)
            self._slots.release()

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and invoke the function with it, on this thread."""
        # The event source mapping receives, deletes and hides with the function's role, as Lambda does.
        with self.functions.role_of(self.function):
            messages = self._receive(wait_seconds)
            if messages:
                self._hold(1)
                try:
                    self._invoke(messages)
                finally:
                    self._hold(-1)
            return len(messages)

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
        try:
            response = self.functions.invoke(self.function, event) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed and self.retry_delay is not None:
                receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay(receives),
                )
        # The succeeded records leave the queue in one DeleteMessageBatch (up to 10 entries a call), as
        # the Lambda service deletes them; an entry that fails to delete reappears after its visibility
        # timeout and is delivered again (at least once).
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )


SHARD_LISTING_SECONDS = 5.0  # how often a stream mapping lists its stream's shards again


class StreamPoller(threading.Thread):
    """DynamoDB stream -> function, with bisect-free retries and an on-failure SQS destination."""

    def __init__(
        self,
        functions: Functions,
        function: str,
        stream_arn: str,
        failure_queue_url: str,
        region: str,
        max_retries: int = 3,
        parallelization: int = 1,
    ) -> None:
        super().__init__(name=f"poll-{function}-stream", daemon=True)
        self.parallelization = max(1, parallelization)
        self.functions, self.function, self.stream_arn, self.region = functions, function, stream_arn, region
        self.failure_queue_url, self.max_retries = failure_queue_url, max_retries
        self.stopping = threading.Event()
        self.busy = False
        self.streams = boto3.client("dynamodbstreams")
        self.sqs = boto3.client("sqs")
        self.iterators: dict[str, str] = {}
        self._shards: list[str] = []
        self._described_at = float("-inf")

    def run(self) -> None:
        while not self.stopping.is_set():
            self.busy = True
            try:
                got = self.poll_once()
            except Exception:
                got = 0
                time.sleep(0.2)
            self.busy = False
            if not got:
                time.sleep(0.25)  # the Lambda service polls a stream shard about four times a second

    def poll_once(self) -> int:
        # The event source mapping reads the stream (and writes its failure queue) with the function's role.
        with self.functions.role_of(self.function):
            try:
                return self._poll_once()
            except Exception:
                self._described_at = float("-inf")  # the stream may have changed: list its shards again
                raise

    def _poll_once(self) -> int:
        # The shards are listed again every few seconds (new ones are found, as the Lambda service finds
        # them), not before every read: between two listings the mapping reads the shards it knows.
        now = time.monotonic()
        if now - self._described_at >= SHARD_LISTING_SECONDS:
            description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
            self._shards = [shard["ShardId"] for shard in description["Shards"]]
            self._described_at = now
        total = 0
        for shard_id in self._shards:
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = self.streams.get_records(ShardIterator=self.iterators[shard_id], Limit=100)
            self.iterators[shard_id] = response["NextShardIterator"]
            records = [{**r, "eventSourceARN": self.stream_arn} for r in response.get("Records", [])]
            total += len(records)
            if records:
                self.deliver_in_parallel(records)
        return total

    def deliver_in_parallel(self, records: list[dict[str, Any]]) -> None:
        """The batch split by partition key over ``parallelization`` invocations at once (each key's
        records in order, in one of them); the shard moves on when all of them are done."""
        groups: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            key = json.dumps(record.get("dynamodb", {}).get("Keys", {}).get("pk"), sort_keys=True, default=str)
            groups.setdefault(zlib.crc32(key.encode()) % self.parallelization, []).append(record)
        if len(groups) == 1:
            self.deliver(records)
            return

        def deliver(group: list[dict[str, Any]]) -> None:
            with self.functions.role_of(self.function):  # this thread, too, reads as the function's role
                self.deliver(group)

        with ThreadPoolExecutor(len(groups), thread_name_prefix=self.name) as pool:
            list(pool.map(deliver, groups.values()))

    def deliver(self, records: list[dict[str, Any]]) -> None:
        pending, attempts = records, 0
        while pending:
            try:
                response = self.functions.invoke(self.function, {"Records": pending}) or {}
                failures = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
            except Exception:
                failures = [pending[0]["dynamodb"]["SequenceNumber"]]
            if not failures:
                return
            attempts += 1
            first = next(i for i, r in enumerate(pending) if r["dynamodb"]["SequenceNumber"] == failures[0])
            pending = pending[first:]  # retry from the first failed record, as the ESM does
            if attempts > self.max_retries:
                self.sqs.send_message(
                    QueueUrl=self.failure_queue_url,
                    MessageBody=json.dumps(
                        {"reason": "retries exhausted", "stream": self.stream_arn, "records": pending},
                        default=str,
                    ),
                )
                return
            time.sleep(0.1 * attempts)
