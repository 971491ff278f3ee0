"""Where the AWS stand-in differs from AWS in a way the real handlers would notice, fix the stand-in.

- EventBridge -> SQS: moto drops the ``account`` field from the event it writes to the queue; real
  EventBridge always sends it (and Powertools' EventBridge envelope requires it).
"""

from __future__ import annotations

from typing import Any

from moto.events import models as events_models

_original_send_to_sqs = events_models.Rule._send_to_sqs_queue


def _send_to_sqs_with_account(self: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
    if "detail-type" in event:
        event.setdefault("account", self.account_id)
    _original_send_to_sqs(self, resource_id, event, group_id)


def apply() -> None:
    events_models.Rule._send_to_sqs_queue = _send_to_sqs_with_account  # type: ignore[method-assign]
