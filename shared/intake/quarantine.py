"""The quarantine: deliveries that verified but can never be processed, parked with their reason
for an operator (fix, then replay) instead of being retried into a DLQ or dropped."""

from __future__ import annotations

import json
from typing import Protocol

from shared.masking import mask_text


class QueuePort(Protocol):
    def send(self, body: str, attributes: dict[str, str] | None = None) -> str: ...


def park(queue: QueuePort, *, source: str, reason: str, message_id: str, envelope: str) -> str:
    """``reason`` names field paths and error kinds (``describe_error``); e-mails and phone numbers are
    masked in it all the same. The envelope is kept whole: a fixed delivery is replayed from it.
    Returns the reason as kept (what to log)."""
    reason = mask_text(reason)
    queue.send(
        json.dumps({"reason": reason, "source": source, "message_id": message_id, "envelope": envelope}),
        {"source": source, "reason": reason[:256]},
    )
    return reason
