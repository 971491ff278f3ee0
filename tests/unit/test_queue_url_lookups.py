"""A queue's URL is looked up once per warm container, however many of a batch's threads need it at once
(deliver runs a batch's records on threads: each deferred record sends its copy back, each failed one may
hide its message). The lookup was check-then-act on a dict: threads that asked while the first lookup
was in flight each made their own GetQueueUrl call (seen on a busy 2-core machine: 4 calls, not 1)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.adapters.dead_letter import DeadLetteringProcessor
from shared.adapters.sqs import MessageVisibility

THREADS = 8
ARN = "arn:aws:sqs:eu-west-1:123456789012:aftersync-dev-deliver-erp"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/aftersync-dev-deliver-erp"


class SlowSqs:
    """GetQueueUrl that takes a while to answer: the other threads ask while it is in flight."""

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self._lock = threading.Lock()

    def get_queue_url(self, QueueName: str, QueueOwnerAWSAccountId: str = "123456789012") -> dict[str, str]:
        with self._lock:
            self.lookups.append(QueueName)
        time.sleep(0.2)
        return {"QueueUrl": f"https://sqs.eu-west-1.amazonaws.com/{QueueOwnerAWSAccountId}/{QueueName}"}

    def change_message_visibility(self, **_: Any) -> dict[str, Any]:
        return {}


def _at_once(ask: Any) -> list[Any]:
    start = threading.Barrier(THREADS)

    def one(_: int) -> Any:
        start.wait()
        return ask()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def test_threads_sending_copies_back_at_once_look_the_queue_url_up_once() -> None:
    sqs = SlowSqs()
    processor = DeadLetteringProcessor(5, client=sqs)  # type: ignore[arg-type]
    assert _at_once(lambda: processor._queue_url(ARN)) == [URL] * THREADS
    assert sqs.lookups == ["aftersync-dev-deliver-erp"]


def test_threads_hiding_messages_at_once_look_the_queue_url_up_once() -> None:
    sqs = SlowSqs()
    visibility = MessageVisibility(sqs)  # type: ignore[arg-type]
    assert _at_once(lambda: visibility.hide(ARN, "receipt", 30)) == [30] * THREADS
    assert sqs.lookups == ["aftersync-dev-deliver-erp"]
