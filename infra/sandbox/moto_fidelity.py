"""Where the AWS stand-in differs from AWS in a way the real handlers would notice, fix the stand-in.

- EventBridge -> SQS: moto drops the ``account`` field from the event it writes to the queue; real
  EventBridge always sends it (and Powertools' EventBridge envelope requires it).
- DynamoDB under concurrent requests: moto applies a transaction item by item and, when one of its
  conditions fails, restores a copy of each table taken when it began, which wipes whatever other
  requests wrote meanwhile (a state item without its audit record, or neither). Real DynamoDB
  transactions are atomic and isolated, so every operation of moto's DynamoDB backend runs under one
  lock here: requests from concurrent writers (threads in a test, the sandbox's threaded server) see
  each other's transactions whole or not at all.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.events import models as events_models

_original_send_to_sqs = events_models.Rule._send_to_sqs_queue


def _send_to_sqs_with_account(self: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
    if "detail-type" in event:
        event.setdefault("account", self.account_id)
    _original_send_to_sqs(self, resource_id, event, group_id)


_DYNAMODB_LOCK = threading.RLock()


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    run.__aftersync_serialised__ = True  # type: ignore[attr-defined]
    return run


def apply() -> None:
    events_models.Rule._send_to_sqs_queue = _send_to_sqs_with_account  # type: ignore[method-assign]
    for name, method in inspect.getmembers(DynamoDBBackend, inspect.isfunction):
        if not name.startswith("_") and not getattr(method, "__aftersync_serialised__", False):
            setattr(DynamoDBBackend, name, _serialised(method))
