"""A batch's records on threads: records of different groups at once, a group's records in arrival order.

A consumer whose records spend their time waiting (on DynamoDB, on a target's answer) hands a batch to a
small thread pool instead of one record after another. The grouping key says which records must not
overtake each other: sync's records of one entity (their conditional writes would race), deliver's
changes of one entity to one target (a receiver sees them in order). Each group runs on one thread in
arrival order; groups run at once, up to ``workers``. A batch that is one group runs on the calling
thread, as before. Failures are reported per record exactly as ``DeadLetteringProcessor`` does.

What the workers share must be safe on threads: the clients are made in ``prepare`` before the pool
(boto3 makes clients safely on one thread only), each task runs in a copy of the invocation's context
(what Powertools, X-Ray and the sandbox keep per invocation travels with it), and the caches the
handlers keep per container take their own locks (``shared/adapters/circuit.py``, ``secrets.py``…).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.adapters.dead_letter import DeadLetteringProcessor

GroupOf = Callable[[dict[str, Any]], Hashable]


def detail_key(*fields: str, per_queue: bool = False) -> GroupOf:
    """Groups records by these fields of their EventBridge ``detail`` (and their queue: ``per_queue``, e.g.
    one queue per target); a record that does not say (not JSON, no such detail) is a group of its own."""

    def group_of(record: dict[str, Any]) -> Hashable:
        try:
            detail = json.loads(record["body"])["detail"]
            key = tuple(detail[f] for f in fields)
            hash(key)
        except (ValueError, KeyError, TypeError):
            return ("record", record.get("messageId"))
        return (record.get("eventSourceARN"), *key) if per_queue else key

    return group_of


def makespan(group_sizes: Sequence[int], workers: int) -> int:
    """Records' waits one after another on the busiest worker, when the groups are handed to ``workers``
    threads in arrival order, each to the first free one (as ``ThreadPoolExecutor`` does): the batch
    takes about this many records' time (the bench's ``parallel_calls`` is records / this)."""
    if not group_sizes:
        return 0
    if len(group_sizes) <= 1:
        return sum(group_sizes)
    busy = [0] * min(workers, len(group_sizes))
    for size in group_sizes:
        busy[busy.index(min(busy))] += size
    return max(busy)


class ConcurrentRecordsProcessor(DeadLetteringProcessor):
    """Records of different groups (``group_of``) in parallel on up to ``workers`` threads; records of one
    group in arrival order. ``prepare`` runs once before work fans out (making the clients the workers
    share)."""

    def __init__(
        self,
        *args: Any,
        group_of: GroupOf,
        workers: int,
        prepare: Callable[[], None] = lambda: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.group_of = group_of
        self.workers = workers
        self.prepare = prepare

    def groups(self, records: Sequence[dict[str, Any]]) -> list[list[int]]:
        """The positions of the records, by group, in arrival order (of a group's first record, and within it)."""
        groups: dict[Hashable, list[int]] = {}
        for position, record in enumerate(records):
            groups.setdefault(self.group_of(record), []).append(position)
        return list(groups.values())

    def process(self) -> list[tuple[Any, ...]]:
        groups = self.groups(self.records)
        if len(groups) <= 1 or self.workers == 1:
            return super().process()
        self.prepare()  # boto3 makes clients safely on one thread only: make them before the pool
        results: list[Any] = [None] * len(self.records)

        def run(positions: list[int]) -> None:
            for position in positions:
                results[position] = self._process_record(self.records[position])

        with ThreadPoolExecutor(max_workers=min(self.workers, len(groups))) as pool:
            tasks = [pool.submit(contextvars.copy_context().run, run, positions) for positions in groups]
            for future in tasks:
                future.result()  # _process_record reports a record's failure itself; this only re-raises a bug
        return results
