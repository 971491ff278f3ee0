"""A DynamoDB table by name, its client made on first use: the base of the table adapters; and what
DynamoDB bills for an item (its documented sizing rules), which the tests and benches count with."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:  # the stubs are a dev dependency: types only, nothing at run time
    from types_boto3_dynamodb.client import DynamoDBClient

BATCH_GET_MAX = 100  # keys a BatchGetItem takes
BATCH_GET_ATTEMPTS = 5


class DynamoTable:
    """A DynamoDB table by name, its client made on first use (or given, in tests)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self._client = client

    @cached_property
    def client(self) -> DynamoDBClient:
        return self._client or boto3.client("dynamodb")

    def batch_get_items(self, keys: Sequence[dict[str, Any]], *, consistent: bool = False) -> list[dict[str, Any]]:
        """The items of these low-level keys that exist, in no particular order: one BatchGetItem per
        100 keys; keys DynamoDB leaves unprocessed (throttling) are asked again with a backoff, a few
        times, then RuntimeError (the caller's message or record is retried)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_MAX):
            request: dict[str, Any] = {self.table: {"Keys": list(keys[start : start + BATCH_GET_MAX])}}
            if consistent:
                request[self.table]["ConsistentRead"] = True
            found.extend(self.batch_get_request(request))
        return found

    def batch_get_request(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The items one BatchGetItem request (``RequestItems``, any tables) finds; keys DynamoDB leaves
        unprocessed (throttling) are asked again with a backoff, a few times, then RuntimeError."""
        found: list[dict[str, Any]] = []
        for attempt in range(BATCH_GET_ATTEMPTS):
            response = self.client.batch_get_item(RequestItems=request)
            for items in response["Responses"].values():
                found.extend(items)
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            time.sleep(0.05 * 2**attempt)
        raise RuntimeError(f"DynamoDB left keys unprocessed after {BATCH_GET_ATTEMPTS} attempts; retry later")


# What DynamoDB bills (developerguide/CapacityUnitCalculations.html): an item's size is the sum of its
# attribute names and values; a write costs 1 unit per started KB (2 in a transaction), a read 1 per
# started 4 KB if strongly consistent, half that if not, 2 in a transaction.
def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB bills for one attribute value."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "B":
        return len(v)
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode("utf-8")) for x in v)
    if kind == "BS":
        return sum(len(x) for x in v)
    if kind == "NS":
        return sum(attribute_size({"N": x}) for x in v)
    if kind == "L":
        return 3 + sum(1 + attribute_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_size(x) for k, x in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """An item's size as DynamoDB bills it: every attribute's name and value (no item: 0)."""
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in (item or {}).items())


def write_units(size: int, transactional: bool = False) -> int:
    """Write units for writing an item of ``size`` bytes: one per started KB (at least one), twice that
    inside a transaction."""
    return max(1, -(-size // 1024)) * (2 if transactional else 1)


def read_units(size: int, consistent: bool, transactional: bool = False) -> float:
    """Read units for reading an item of ``size`` bytes: one per started 4 KB (at least one) strongly
    consistent, half eventually consistent, two in a transaction."""
    units = max(1, -(-size // 4096))
    return units * 2.0 if transactional else units * (1.0 if consistent else 0.5)
