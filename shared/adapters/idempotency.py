"""The admission record: one conditional PutItem per delivery decides who enqueues it.

An item ``{id: <dedupe key>, body_sha256, lease_until, owner, expiration}`` in the idempotency table.
``claim`` writes it only when no live record of the key exists, or the record's body is the same and
its lease ran out (the admitting invocation finished, or died, without the record saying which: the
caller sends again — a harmless second admission, never a lost one). On a failed condition DynamoDB
returns the record (``ReturnValuesOnConditionCheckFailure=ALL_OLD``), so a duplicate or a conflicting
body costs this one call. See docs/design.md, "Ingest: two calls before the ack".
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from shared.constants import ADMISSION_LEASE_SECONDS
from shared.errors import DuplicateConflict

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.client import DynamoDBClient


def now() -> float:
    """The ledger's clock (epoch seconds); tests move it past a lease."""
    return time.time()


@dataclass(frozen=True)
class Claim:
    """The outcome of ``claim``: ``owned`` — this caller wrote the record and must enqueue the delivery;
    ``seen_before`` — the same body had been received before (a duplicate, answered as one)."""

    dedupe_key: str
    owned: bool
    seen_before: bool
    owner: str = ""


class AdmissionLedger:
    def __init__(
        self,
        table: str,
        ttl_seconds: int,
        client: DynamoDBClient | None = None,
        lease_seconds: float = ADMISSION_LEASE_SECONDS,
    ) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self.lease_seconds = lease_seconds
        self._client = client
        self._context: Any = None

    @cached_property
    def client(self) -> DynamoDBClient:
        return self._client or boto3.client("dynamodb")

    def register_context(self, context: Any) -> None:
        """The invocation's context: a lease never outlives the invocation that holds it."""
        self._context = context

    def _lease_ms(self) -> int:
        lease = self.lease_seconds * 1000
        if self._context is not None:
            lease = min(lease, self._context.get_remaining_time_in_millis())
        return max(0, int(lease))

    def claim(self, dedupe_key: str, body_sha256: str) -> Claim:
        """Write the admission record, or say why not. Raises ``DuplicateConflict`` when the key was
        received with another body (nothing is written)."""
        now_ms = int(now() * 1000)
        owner = secrets.token_hex(8)
        try:
            response = self.client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": dedupe_key},
                    "body_sha256": {"S": body_sha256},
                    "lease_until": {"N": str(now_ms + self._lease_ms())},
                    "owner": {"S": owner},
                    "expiration": {"N": str(now_ms // 1000 + self.ttl_seconds)},
                },
                # new, expired (TTL deletes lazily), or the same body whose admitting invocation is over
                ConditionExpression="attribute_not_exists(id) OR expiration < :now_s "
                "OR (body_sha256 = :sha AND lease_until < :now_ms)",
                ExpressionAttributeValues={
                    ":sha": {"S": body_sha256},
                    ":now_ms": {"N": str(now_ms)},
                    ":now_s": {"N": str(now_ms // 1000)},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            if old.get("body_sha256", {}).get("S") != body_sha256:
                raise DuplicateConflict(f"event {dedupe_key!r} was already received with a different body") from exc
            # the same body, its admitting invocation still within its lease: a concurrent copy or a
            # prompt duplicate; that invocation enqueues it (or, failing, answers non-2xx and is retried)
            return Claim(dedupe_key, owned=False, seen_before=True)
        old = response.get("Attributes") or {}
        seen = old.get("body_sha256", {}).get("S") == body_sha256 and int(old.get("expiration", {}).get("N", "0")) >= (
            now_ms // 1000
        )
        return Claim(dedupe_key, owned=True, seen_before=seen, owner=owner)

    def release(self, claim: Claim) -> None:
        """Give up an owned claim whose enqueue failed, so the platform's retry admits it at once
        (best effort: if this fails too, the lease runs out and the retry after it takes over)."""
        if not claim.owned:
            return
        # taken over since, or DynamoDB unreachable: the lease bounds the wait either way
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.delete_item(
                TableName=self.table,
                Key={"id": {"S": claim.dedupe_key}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": claim.owner}},
            )
