"""The quarantine: deliveries that verified but can never be processed, parked with their reason
for an operator (fix, then replay) instead of being retried into a DLQ or dropped."""

from __future__ import annotations

import json
from typing import Protocol


class QueuePort(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


def park(queue: QueuePort, *, source: str, reason: str, message_id: str, envelope: str) -> None:
    queue.send(
        json.dumps({"reason": reason, "source": source, "message_id": message_id, "envelope": envelope}),
        {"source": source, "reason": reason[:256]},
    )
