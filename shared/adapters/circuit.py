"""Per-target circuit breakers and rate limits, kept in the state table without a hot key.

Circuit (``ops#circuit#<target>``): consecutive failures count up; at the policy's threshold the circuit
opens for a while (doubling with every reopening, up to the retry policy's longest wait), deliveries to
that target wait in its queue meanwhile, and after the pause one delivery decides: success closes it,
failure reopens it. A warm container reads the item at most once per ``circuit.cache_seconds`` and
target, not before every delivery: a failure it sees updates its copy at once (the failure's write
returns the item, so an opening by another container is learnt with it), and an opening it does not
see reaches it within ``cache_seconds``. So a failing target gets at most one call per warm container
after another container opened its circuit (the failed call that returns the open state), and a target
that fails for others only, at most ``cache_seconds`` of this container's calls. A container whose copy
shows failures delivers to the target one call at a time (``one_at_a_time``); the calls of a batch
already in flight when the first failure comes back (at most a batch) fail with it.

Rate limit (``ops#rate#<target>#<second>``): a coarse token bucket per container. A container leases a
block of send slots (``TargetConfig.token_block``: its share of the second) from the counter of the
current clock second with one write, and spends them without writing; the counter's ``ADD`` hands out
exactly what is left, so the leases of one second never add up past the limit, whatever the number of
containers. Slots are only spent in the second they were leased for; what a container leaves unspent is
lost. One write per block and container (plus, at most once a second, the write that finds the second
used up), and every second has its own key: no item is written by every delivery.

A container's records may run on threads (deliver's batch): each target's circuit copy and lease are
read and changed under that target's lock, held across the call that refreshes them, so the threads
of a cold container read the circuit once, lease one block at a time, and never hand a slot out twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.delivery.targets import TargetConfig

if TYPE_CHECKING:  # the stubs are a dev dependency: types only
    from types_boto3_dynamodb.client import DynamoDBClient

RATE_COUNTER_TTL_SECONDS = 3600  # a second's counter is kept an hour (TTL), for a look after the fact


@dataclass(frozen=True)
class CircuitState:
    failures: int = 0
    open_until: float = 0.0
    opens: int = 0

    def open_for(self, now: float) -> float:
        return max(0.0, self.open_until - now)


@dataclass
class _Lease:
    """This container's slots of one second of one target."""

    second: int
    left: int
    used_up: bool  # the second's counter has reached the limit: no lease is worth a write until the next


class DynamoGuards(DynamoTable):
    """One warm container's guards: its cached circuits and its leased send slots, per target. Every
    method takes ``now`` (epoch seconds): the handler passes the clock, tests their own."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)
        self._circuits: dict[str, tuple[CircuitState, float]] = {}  # target -> (state, when learnt)
        self._leases: dict[str, _Lease] = {}
        self._locks: dict[str, threading.Lock] = {}  # target -> the lock of its copy and its lease
        self._serial: dict[str, threading.Lock] = {}  # target -> held across a delivery while it fails

    def _lock(self, target: str) -> threading.Lock:
        return self._locks.setdefault(target, threading.Lock())  # setdefault: one step, one lock a target

    @staticmethod
    def _key(kind: str, target: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": f"ops#{kind}#{target}"}, "sk": {"S": sk}}

    def one_at_a_time(self, target: TargetConfig) -> threading.Lock:
        """The lock a container's deliveries to a failing target hold across their call: while its circuit
        shows failures, one delivery at a time decides and the next learns its verdict (see the handler)."""
        return self._serial.setdefault(target.name, threading.Lock())

    # ---- circuit -------------------------------------------------------------------------------
    def circuit(self, target: TargetConfig, now: float) -> CircuitState:
        """The target's circuit as this container knows it: read from the table when its copy is older
        than ``target.circuit.cache_seconds``."""
        with self._lock(target.name):  # one read for the threads that find the copy old
            cached = self._circuits.get(target.name)
            if cached is not None and 0 <= now - cached[1] < target.circuit.cache_seconds:
                return cached[0]
            return self._learn(target.name, self.stored(target.name), now)

    def stored(self, target: str) -> CircuitState:
        """The circuit item as it is in the table now (no cache)."""
        item = self.client.get_item(TableName=self.table, Key=self._key("circuit", target, "CIRCUIT")).get("Item")
        return _circuit_state(item or {})

    def _learn(self, target: str, state: CircuitState, now: float) -> CircuitState:
        self._circuits[target] = (state, now)
        return state

    def failed(self, target: TargetConfig, now: float) -> CircuitState:
        """Count a failure; open the circuit when the threshold is reached and it is not open already (a
        failure another container saw may have opened it). The new state, also this container's copy."""
        with self._lock(target.name):
            return self._failed(target, now)

    def _failed(self, target: TargetConfig, now: float) -> CircuitState:
        updated = self.client.update_item(
            TableName=self.table,
            Key=self._key("circuit", target.name, "CIRCUIT"),
            UpdateExpression="ADD failures :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        state = _circuit_state(updated)
        if state.failures < target.circuit.failures_to_open or state.open_for(now) > 0:
            return self._learn(target.name, state, now)
        pause = min(
            target.circuit.open_seconds * 2**state.opens, max(target.retry.max_seconds, target.circuit.open_seconds)
        )
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key("circuit", target.name, "CIRCUIT"),
                UpdateExpression="SET open_until = :until ADD opens :one",
                # opened once: two containers failing at the threshold together do not double the pause twice
                ConditionExpression="attribute_not_exists(open_until) OR open_until <= :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(now + pause)},
                    ":one": {"N": "1"},
                    ":now": {"N": str(now)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self._learn(target.name, self.stored(target.name), now)  # opened by another meanwhile
        return self._learn(target.name, CircuitState(state.failures, now + pause, state.opens + 1), now)

    def succeeded(self, target: TargetConfig, now: float) -> None:
        """Close the circuit: written only when this container's copy shows failures to reset."""
        with self._lock(target.name):
            self._succeeded(target, now)

    def _succeeded(self, target: TargetConfig, now: float) -> None:
        cached = self._circuits.get(target.name)
        if cached is None or not cached[0].failures:
            return
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key("circuit", target.name, "CIRCUIT"),
                UpdateExpression="SET failures = :zero, opens = :zero, open_until = :zero",
                ConditionExpression="failures > :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        self._learn(target.name, CircuitState(), now)

    # ---- rate limit ----------------------------------------------------------------------------
    def take(self, target: TargetConfig, now: float) -> bool:
        """A send slot in the target's current second, or False when its rate limit is used up. Writes
        only to lease a new block (see the module's docstring)."""
        limit = target.rate_limit_per_second
        if limit is None:
            return True
        with self._lock(target.name):  # the check and the spending of a slot as one step
            return self._take(target, limit, now)

    def _take(self, target: TargetConfig, limit: int, now: float) -> bool:
        second = int(now)
        lease = self._leases.get(target.name)
        if lease is None or lease.second != second:
            lease = self._leases[target.name] = _Lease(second, 0, used_up=False)
        if not lease.left and not lease.used_up:
            lease.left, lease.used_up = self._lease(target.name, second, target.token_block(), limit)
        if not lease.left:
            return False
        lease.left -= 1
        return True

    def _lease(self, target: str, second: int, block: int, limit: int) -> tuple[int, bool]:
        """Up to ``block`` slots of ``second``: (slots granted, whether the second is now used up). The
        counter counts what was asked; what one lease gets is its share of the asked range below the limit."""
        asked = int(
            self.client.update_item(
                TableName=self.table,
                Key=self._key("rate", f"{target}#{second}", "LEASES"),
                UpdateExpression="ADD leased :block SET expires_at = :expires",
                ExpressionAttributeValues={
                    ":block": {"N": str(block)},
                    ":expires": {"N": str(second + RATE_COUNTER_TTL_SECONDS)},
                },
                ReturnValues="UPDATED_NEW",
            )["Attributes"]["leased"]["N"]
        )
        granted = max(0, min(block, limit - (asked - block)))
        return granted, asked >= limit


def _circuit_state(item: dict[str, Any]) -> CircuitState:
    return CircuitState(
        failures=int(item.get("failures", {}).get("N", "0")),
        open_until=float(item.get("open_until", {}).get("N", "0")),
        opens=int(item.get("opens", {}).get("N", "0")),
    )
