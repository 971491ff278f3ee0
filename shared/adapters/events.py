"""The event bus (EventBridge): PutEvents in chunks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import boto3

from shared.adapters.sqs import carriable_json

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_events.client import EventBridgeClient


class EventBus:
    """PutEvents in chunks of 10; any failed entry raises so the caller's message is retried."""

    def __init__(self, name: str, client: EventBridgeClient | None = None) -> None:
        self.name = name
        self._client = client

    @cached_property
    def client(self) -> EventBridgeClient:
        return self._client or boto3.client("events")

    def put(self, source: str, entries: Sequence[tuple[str, str]]) -> None:
        """``entries`` are ``(detail_type, detail_json)`` pairs."""
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            result = self.client.put_events(
                Entries=[
                    {"EventBusName": self.name, "Source": source, "DetailType": dt, "Detail": carriable_json(detail)}
                    for dt, detail in chunk
                ]
            )
            if result.get("FailedEntryCount"):
                errors = {str(e["ErrorCode"]) for e in result["Entries"] if e.get("ErrorCode")}
                raise RuntimeError(f"EventBridge rejected {result['FailedEntryCount']} entries: {sorted(errors)}")
