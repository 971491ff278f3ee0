"""The event bus (EventBridge): PutEvents in calls of up to 10 entries and 256 KB.

A batch consumer puts the events of all its records together (``put_owned``) and learns which
records had an entry refused, so only those are retried: an entry EventBridge rejects (a per-entry
``ErrorCode``) or a call that fails as a whole fails exactly the records whose entries it carried.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar

import boto3

from shared.adapters.sqs import carriable_json

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_events.client import EventBridgeClient
    from types_boto3_events.type_defs import PutEventsRequestEntryTypeDef

PUT_EVENTS_MAX_ENTRIES = 10  # EventBridge: entries per PutEvents call
PUT_EVENTS_MAX_BYTES = 256 * 1024  # EventBridge: a PutEvents request's entries, measured as entry_size does

Owner = TypeVar("Owner", bound=Hashable)


def entry_size(source: str, detail_type: str, detail: str) -> int:
    """An entry's size as EventBridge counts it against the 256 KB of a call ("Calculating
    PutEvents event entry size": source, detail type and detail in UTF-8; no time, no resources)."""
    return len(source.encode()) + len(detail_type.encode()) + len(detail.encode())


@dataclass(frozen=True)
class OwnedEntry(Generic[Owner]):
    """An event to put and the record it comes from (``owner``: a message id, a sequence number)."""

    owner: Owner
    detail_type: str
    detail: str


def chunks(source: str, details: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Indexes of ``(detail_type, detail)`` pairs grouped into calls: in order, each call at most 10
    entries and 256 KB. An entry over 256 KB alone goes in a call of its own (EventBridge refuses it,
    and with it only that call)."""
    calls: list[list[int]] = []
    size = 0
    for index, (detail_type, detail) in enumerate(details):
        needed = entry_size(source, detail_type, detail)
        if not calls or len(calls[-1]) == PUT_EVENTS_MAX_ENTRIES or size + needed > PUT_EVENTS_MAX_BYTES:
            calls.append([])
            size = 0
        calls[-1].append(index)
        size += needed
    return calls


class EventBus:
    def __init__(self, name: str, client: EventBridgeClient | None = None) -> None:
        self.name = name
        self._client = client

    @cached_property
    def client(self) -> EventBridgeClient:
        return self._client or boto3.client("events")

    def put_all(self, source: str, entries: Sequence[tuple[str, str]]) -> list[str | None]:
        """Put ``(detail_type, detail_json)`` pairs in as few calls as the limits allow. Returns, per
        entry, ``None`` if EventBridge accepted it, else why not (its ``ErrorCode``, or the error of the
        call that carried it). Never raises for a refusal: the caller decides what failed."""
        details = [(detail_type, carriable_json(detail)) for detail_type, detail in entries]
        outcome: list[str | None] = [None] * len(details)
        for call in chunks(source, details):
            request: list[PutEventsRequestEntryTypeDef] = [
                {"EventBusName": self.name, "Source": source, "DetailType": details[i][0], "Detail": details[i][1]}
                for i in call
            ]
            try:
                result = self.client.put_events(Entries=request)
            except Exception as exc:  # the whole call failed (throttled past retries, refused): its entries did
                for i in call:
                    outcome[i] = f"PutEvents failed: {type(exc).__name__}"
                continue
            if not result.get("FailedEntryCount"):
                continue
            # Result entries answer request entries by position.
            for i, answer in zip(call, result["Entries"], strict=False):
                if answer.get("ErrorCode"):
                    outcome[i] = f"EventBridge rejected the entry: {answer['ErrorCode']}"
        return outcome

    def put_owned(self, source: str, entries: Sequence[OwnedEntry[Owner]]) -> dict[Owner, str]:
        """Put the events of a batch's records together; returns the records (owners) with at least
        one entry refused, each with the first reason. A record not returned had every entry put."""
        outcome = self.put_all(source, [(e.detail_type, e.detail) for e in entries])
        failed: dict[Owner, str] = {}
        for entry, error in zip(entries, outcome, strict=True):
            if error is not None and entry.owner not in failed:
                failed[entry.owner] = error
        return failed

    def put(self, source: str, entries: Sequence[tuple[str, str]]) -> None:
        """Put every entry or raise (so a caller handling one record at a time has it retried)."""
        errors = sorted({e for e in self.put_all(source, entries) if e is not None})
        if errors:
            raise EventsRefused(errors)


class EventsRefused(Exception):
    """EventBridge (or, for normalise's observations and publish's changes, their SQS queue) did not take
    some of a record's events: the record is retried (all its events sent again; downstream is
    idempotent)."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__("; ".join(reasons))
