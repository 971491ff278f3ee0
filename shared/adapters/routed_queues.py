"""Events sent straight to the queue a bus rule would route them to (SQS SendMessageBatch), each as the
EventBridge event the rule would have delivered, so the consumer reads it unchanged.

normalise uses it for its observations: each ``entity.observed.<type>`` has exactly one destination, its
domain's queue, so the bus there only added a PutEvents entry ($1.00 a million), EventBridge's own
SendMessage into the queue and about half a second. publish uses it for ``entity.changed``: it evaluates
the routes' event patterns itself (``shared.routing``) and sends each change to every queue whose
pattern it matches (a target's deliver queue, the automation queue), as the bus's rules did.

As with ``EventBus.put_owned``, a batch's records are sent together and the caller learns which records
had an entry refused (a per-entry failure, or a call that failed as a whole): only those are retried.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

import boto3

from shared.adapters.events import OwnedEntry, Owner
from shared.adapters.sqs import carriable_json

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

SEND_BATCH_MAX_ENTRIES = 10  # SQS: entries per SendMessageBatch
SEND_BATCH_MAX_BYTES = 256 * 1024  # SQS: a batch's bodies together (and one body), as every Region takes it


def envelope(event_id: str, source: str, detail_type: str, detail: str, account: str, region: str, time: str) -> str:
    """The EventBridge event a rule's SQS target receives, with ``detail`` (a JSON document) as is."""
    head = json.dumps(
        {
            "version": "0",
            "id": event_id,
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": time,
            "region": region,
            "resources": [],
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"detail":{detail}}}'


class RoutedQueues:
    """``urls``: the queue URL of each detail type this sender routes."""

    def __init__(self, urls: Mapping[str, str], client: SQSClient | None = None) -> None:
        self.urls = dict(urls)
        self._client = client

    @cached_property
    def client(self) -> SQSClient:
        return self._client or boto3.client("sqs")

    def send_owned(self, source: str, entries: Sequence[OwnedEntry[Owner]]) -> dict[Owner, str]:
        """Send the events of a batch's records, each to its detail type's queue, in as few calls as SQS
        allows; returns the records (owners) with at least one event not sent, each with the first reason.
        Never raises for a refusal: the caller decides what failed."""
        failed: dict[Owner, str] = {}
        addressed: list[tuple[str, OwnedEntry[Owner]]] = []
        for entry in entries:
            url = self.urls.get(entry.detail_type)
            if url is None:
                failed.setdefault(entry.owner, f"no queue for {entry.detail_type}")
            else:
                addressed.append((url, entry))
        for owner, reason in self.send_to(source, addressed).items():
            failed.setdefault(owner, reason)
        return failed

    def send_to(self, source: str, entries: Sequence[tuple[str, OwnedEntry[Owner]]]) -> dict[Owner, str]:
        """Send each event to the queue URL it comes with (an event for several queues comes once for
        each), by queue, in as few calls as SQS allows; returns the owners with an event not sent, each
        with the first reason."""
        failed: dict[Owner, str] = {}
        by_queue: dict[str, list[tuple[OwnedEntry[Owner], str]]] = {}
        time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        region = self.client.meta.region_name
        for url, entry in entries:
            account = url.rstrip("/").rsplit("/", 2)[-2]  # https://sqs.<region>.amazonaws.com/<account>/<name>
            body = envelope(
                str(uuid.uuid4()), source, entry.detail_type, carriable_json(entry.detail), account, region, time
            )
            by_queue.setdefault(url, []).append((entry, body))
        for url, items in by_queue.items():
            for call in _calls(items):
                self._send(url, call, failed)
        return failed

    def _send(self, url: str, call: list[tuple[OwnedEntry[Owner], str]], failed: dict[Owner, str]) -> None:
        if len(call) == 1 and len(call[0][1].encode()) > SEND_BATCH_MAX_BYTES:
            failed.setdefault(call[0][0].owner, f"an event of {len(call[0][1].encode())} bytes is over SQS's limit")
            return
        request: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(position), "MessageBody": body} for position, (_, body) in enumerate(call)
        ]
        try:
            result = self.client.send_message_batch(QueueUrl=url, Entries=request)
        except Exception as exc:  # the whole call failed (throttled past retries, refused): its entries did
            for entry, _ in call:
                failed.setdefault(entry.owner, f"SendMessageBatch failed: {type(exc).__name__}")
            return
        for answer in result.get("Failed", []):
            entry = call[int(answer["Id"])][0]
            failed.setdefault(entry.owner, f"SQS refused the message: {answer.get('Code', 'unknown')}")


def _calls(items: list[tuple[OwnedEntry[Owner], str]]) -> list[list[tuple[OwnedEntry[Owner], str]]]:
    """In order, each call at most 10 messages and 256 KiB of bodies; a body over 256 KiB alone (refused
    alone, without a call)."""
    calls: list[list[tuple[OwnedEntry[Owner], str]]] = []
    size = 0
    for item in items:
        needed = len(item[1].encode())
        if not calls or len(calls[-1]) == SEND_BATCH_MAX_ENTRIES or size + needed > SEND_BATCH_MAX_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(item)
        size += needed
    return calls
