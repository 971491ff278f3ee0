"""Event source mappings for the sandbox: SQS queues and the state table's stream.

Partial batch failures behave as on AWS: succeeded records are deleted, failed ones become visible
again (after a short backoff here instead of the full visibility timeout) and the queue's redrive
policy moves them to the DLQ after maxReceiveCount receives.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
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
    ) -> None:
        """``retry_delay``: how long a failed record stays hidden, by receive count — shorter than the
        queue's visibility so the sandbox moves fast. ``None`` does what Lambda does: nothing, so the
        visibility the handler set (a consumer with its own backoff) or the queue's decides."""
        super().__init__(name=f"poll-{function}-{queue_url.rsplit('/', 1)[-1]}", daemon=True)
        self.retry_delay = retry_delay
        self.functions, self.function = functions, function
        self.queue_url, self.queue_arn, self.region = queue_url, queue_arn, region
        self.stopping = threading.Event()
        self.busy = False
        self.sqs = boto3.client("sqs")

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.poll_once(wait_seconds=1)  # long polling, as the Lambda service does
            except Exception:  # a poller survives a stand-in hiccup, like the real event source mapping
                time.sleep(0.2)
            finally:
                self.busy = False

    def poll_once(self, wait_seconds: int = 0) -> int:
        # The event source mapping receives, deletes and hides with the function's role, as Lambda does.
        with self.functions.role_of(self.function):
            return self._poll_once(wait_seconds)

    def _poll_once(self, wait_seconds: int) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        self.busy = True  # holding messages: drain() waits for this batch
        event = {"Records": [sqs_record(m, self.queue_arn, self.region) for m in messages]}
        try:
            response = self.functions.invoke(self.function, event) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}
        for message in messages:
            if message["MessageId"] in failed:
                if self.retry_delay is None:
                    continue
                receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay(receives),
                )
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)


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
    ) -> None:
        super().__init__(name=f"poll-{function}-stream", daemon=True)
        self.functions, self.function, self.stream_arn, self.region = functions, function, stream_arn, region
        self.failure_queue_url, self.max_retries = failure_queue_url, max_retries
        self.stopping = threading.Event()
        self.busy = False
        self.streams = boto3.client("dynamodbstreams")
        self.sqs = boto3.client("sqs")
        self.iterators: dict[str, str] = {}

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
            return self._poll_once()

    def _poll_once(self) -> int:
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        total = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            response = self.streams.get_records(ShardIterator=self.iterators[shard_id], Limit=100)
            self.iterators[shard_id] = response["NextShardIterator"]
            records = [{**r, "eventSourceARN": self.stream_arn} for r in response.get("Records", [])]
            total += len(records)
            if records:
                self.deliver(records)
        return total

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
