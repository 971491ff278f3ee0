"""The read audit: who looked which customer up, when, by what, and what they were shown.

One item per lookup in the state table, partitioned by tenant and UTC day::

    pk  {tenant}#reads#{YYYY-MM-DD}
    sk  {ISO time, UTC, microseconds}Z#{request id}
    reader, role, selector_kind, selector_hmac, entity_ids, outcome, reason, expires_at

The selector's value (a phone, an e-mail, a serial) is never stored: only its HMAC-SHA256 with the
tenant's identity salt, of ``"{kind}:{normalised value}"`` (``selector_hmac``), the same digest the
identity index and the selector items are keyed by, so an operator who holds the salt can tell whether a
given phone was looked up, and nobody else can read one out of the log. ``ReadRecord`` refuses anything
but 64 hex digits there.

``expires_at`` (the table's TTL attribute) is the lookup's time plus the environment's
``read_audit_retention_days``. A day's partition takes every lookup of a tenant that day: a busy
service team's few lookups a second are far below a partition's 1,000 writes a second.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.adapters.dynamo import DynamoTable
from shared.read.readers import Role

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

READS = "reads"
DAY_SECONDS = 24 * 3600
MAX_DAYS_LISTED = 3660  # the longest retention (10 years) and a little: older days hold nothing
_LAST = "~"  # after every request id character: the end of a time's sort keys

Hmac = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


def selector_hmac(salt: bytes, kind: str, normalised: str) -> str:
    """What the read audit keeps of a selector: HMAC-SHA256 hex with the tenant's identity salt of
    ``"{kind}:{normalised value}"`` (``shared.identity.resolver.hash_key``'s digest for an identity key,
    the selector item's for a serial, tracking or order number)."""
    return hmac.new(salt, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


class ReadRecord(BaseModel):
    """One lookup as the read audit keeps it. ``reader`` and ``role`` are missing when the request was
    refused before a reader was known, the selector when it was refused before one was read;
    ``reason`` is the internal why (a refusal's detail), never shown to the client."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    at: AwareDatetime
    request_id: Token
    reader: str | None = None
    role: Role | None = None
    selector_kind: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")] | None = None
    selector_hmac: Hmac | None = None
    entity_ids: tuple[str, ...] = ()  # the customers and entities the answer showed
    outcome: Annotated[int, Field(ge=100, le=599)]  # the HTTP status answered
    reason: str | None = None


def day_of(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def reads_pk(tenant: str, day: str) -> str:
    return f"{tenant}#{READS}#{day}"


def time_key(at: datetime) -> str:
    """``2026-11-11T08:00:00.123456Z``: fixed width, so sort keys sort by time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reads_sk(at: datetime, request_id: str) -> str:
    return f"{time_key(at)}#{request_id}"


class ReadAudit(DynamoTable):
    """The read audit in the state table: ``write`` one record per lookup, ``records`` to list them."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, retention_days: int | None = None) -> None:
        """``retention_days`` (the environment's ``read_audit_retention_days``) is needed to write, not
        to list."""
        super().__init__(table, client)
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        self.retention_days = retention_days

    def item(self, record: ReadRecord) -> dict[str, Any]:
        if self.retention_days is None:
            raise ValueError("a read audit without retention_days cannot write")
        item: dict[str, Any] = {
            "pk": {"S": reads_pk(record.tenant, day_of(record.at))},
            "sk": {"S": reads_sk(record.at, record.request_id)},
            "outcome": {"N": str(record.outcome)},
            "entity_ids": {"L": [{"S": e} for e in record.entity_ids]},
            "expires_at": {"N": str(int(record.at.timestamp()) + self.retention_days * DAY_SECONDS)},
        }
        optional = {
            "reader": record.reader,
            "role": record.role,
            "selector_kind": record.selector_kind,
            "selector_hmac": record.selector_hmac,
            "reason": record.reason,
        }
        item.update({name: {"S": value} for name, value in optional.items() if value is not None})
        return item

    def write(self, record: ReadRecord) -> None:
        """One put (a retried request with the same id and time writes the same item again)."""
        self.client.put_item(TableName=self.table, Item=self.item(record))

    def records(
        self, tenant: str, since: datetime, until: datetime | None = None, reader: str | None = None
    ) -> Iterator[ReadRecord]:
        """A tenant's lookups from ``since`` to ``until`` (default: now), oldest first, optionally of one
        reader only: one query (and its pages) per UTC day."""
        until = until or datetime.now(UTC)
        if since.tzinfo is None or until.tzinfo is None:
            raise ValueError("since and until must carry a time zone")
        first, last = since.astimezone(UTC).date(), until.astimezone(UTC).date()
        days = (last - first).days + 1
        if days > MAX_DAYS_LISTED:
            raise ValueError(f"since is {days} days back: at most {MAX_DAYS_LISTED} are kept")
        for n in range(max(days, 0)):
            yield from self._day(tenant, first + timedelta(days=n), since, until, reader)

    def _day(
        self, tenant: str, day: date, since: datetime, until: datetime, reader: str | None
    ) -> Iterator[ReadRecord]:
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :from AND :to",
            "ExpressionAttributeValues": {
                ":pk": {"S": reads_pk(tenant, day.isoformat())},
                ":from": {"S": time_key(since)},
                ":to": {"S": time_key(until) + _LAST},
            },
        }
        if reader is not None:
            query["FilterExpression"] = "reader = :reader"
            query["ExpressionAttributeValues"][":reader"] = {"S": reader}
        while True:
            page = self.client.query(**query)
            for item in page.get("Items", []):
                yield _record(tenant, item)
            if "LastEvaluatedKey" not in page:
                return
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _record(tenant: str, item: dict[str, Any]) -> ReadRecord:
    at, _, request_id = item["sk"]["S"].partition("#")

    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return ReadRecord.model_validate(
        {
            "tenant": tenant,
            "at": datetime.fromisoformat(at),
            "request_id": request_id,
            "reader": text("reader"),
            "role": text("role"),
            "selector_kind": text("selector_kind"),
            "selector_hmac": text("selector_hmac"),
            "entity_ids": tuple(e["S"] for e in item.get("entity_ids", {}).get("L", [])),
            "outcome": int(item["outcome"]["N"]),
            "reason": text("reason"),
        }
    )
