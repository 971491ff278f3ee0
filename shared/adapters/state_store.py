"""DynamoDB state store: one table, one item collection per (tenant, entity).

``pk = {tenant}#{entity_type}#{entity_id}``; ``sk`` is ``STATE``, ``AUDIT#{version:012d}`` or
``ACK#{target}``. State and audit share a partition so one transaction writes both; the table's
stream (NEW_IMAGE) carries every audit insert to the publisher — a transactional outbox.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.constants import ACK_SK_PREFIX, AUDIT_RETENTION_DAYS, AUDIT_SK_PREFIX, DECISION_SK_PREFIX, STATE_SK
from shared.delivery.targets import canonical_json
from shared.models import ObservedEntity
from shared.state.audit import AuditRecord
from shared.state.merge import Discarded, EntityState
from shared.state.stored import pack, state_from_item
from shared.state.sync import StaleState

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.type_defs import PutTypeDef


def entity_pk(tenant: str, entity_type: str, entity_id: str) -> str:
    return f"{tenant}#{entity_type}#{entity_id}"


def audit_sk(version: int) -> str:
    return f"{AUDIT_SK_PREFIX}{version:012d}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def audit_from_item(item: dict[str, Any]) -> AuditRecord:
    return AuditRecord.model_validate_json(item["record"]["S"])


def state_key(tenant: str, entity_type: str, entity_id: str) -> dict[str, Any]:
    return {"pk": _s(entity_pk(tenant, entity_type, entity_id)), "sk": _s(STATE_SK)}


def loaded(item: dict[str, Any] | None) -> tuple[EntityState | None, str]:
    """(state, audit head) from a STATE item of any layout, or (None, "") for no item."""
    if not item:
        return None, ""
    return state_from_item(item), item.get("audit_head", {}).get("S", "")


_NOT_READ = object()


class ReadAhead:
    """State-table items one record will need, read in the record's first batch read.

    Sync reads the identity index in a BatchGetItem; the keys of the states it will merge into (the
    order's, its customer's) are known before that, so they ride along instead of costing a GetItem
    each. An item is used once: a merge retried after a conflict reads fresh state.
    """

    def __init__(self) -> None:
        self._wanted: dict[tuple[str, str], dict[str, Any]] = {}
        self._read: dict[tuple[str, str], dict[str, Any] | None] = {}

    @staticmethod
    def _id(key: dict[str, Any]) -> tuple[str, str]:
        return (key["pk"]["S"], key["sk"]["S"])

    def want(self, key: dict[str, Any]) -> None:
        if self._id(key) not in self._read:
            self._wanted[self._id(key)] = key

    def take_wanted(self) -> list[dict[str, Any]]:
        """The keys to add to the next batch read (each asked for once)."""
        keys = list(self._wanted.values())
        self._wanted.clear()
        return keys

    def is_wanted(self, item_key: dict[str, Any]) -> bool:
        return self._id(item_key) in self._read

    def received(self, asked: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
        """The batch read's answer for ``asked`` (an absent item is an answer too: no state yet)."""
        for key in asked:
            self._read[self._id(key)] = None
        for item in items:
            self._read[self._id(item)] = item

    def take(self, key: dict[str, Any]) -> Any:
        """The item read ahead for ``key`` (``None``: read, and absent), or ``_NOT_READ``; once."""
        return self._read.pop(self._id(key), _NOT_READ)


class ReadAheadStore:
    """The state store for one record: ``load`` answers from the read-ahead when it holds the item."""

    def __init__(self, store: DynamoStateStore, reads: ReadAhead) -> None:
        self.store = store
        self.reads = reads

    def load(self, tenant: str, entity_type: str, entity_id: str) -> tuple[EntityState | None, str]:
        item = self.reads.take(state_key(tenant, entity_type, entity_id))
        if item is _NOT_READ:
            return self.store.load(tenant, entity_type, entity_id)
        return loaded(item)

    def commit(self, state: EntityState, expected_revision: int, audit: AuditRecord | None, head: str) -> None:
        self.store.commit(state, expected_revision, audit, head)

    def record_decisions(self, event: ObservedEntity, discarded: Sequence[Discarded]) -> None:
        self.store.record_decisions(event, discarded)


class DynamoStateStore(DynamoTable):
    # --- sync ---------------------------------------------------------------------------------
    def load(self, tenant: str, entity_type: str, entity_id: str) -> tuple[EntityState | None, str]:
        item = self.client.get_item(
            TableName=self.table, Key=state_key(tenant, entity_type, entity_id), ConsistentRead=True
        ).get("Item")
        return loaded(item)

    def load_states(self, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], EntityState]:
        """The current state of many entities, ``(tenant, type, id)`` → state (absent ones left out):
        consistent BatchGetItem reads of up to 100 keys each, unprocessed keys asked again."""
        found: dict[tuple[str, str, str], EntityState] = {}
        wanted = sorted(set(keys))
        items = self.batch_get_items([{"pk": _s(entity_pk(*k)), "sk": _s(STATE_SK)} for k in wanted], consistent=True)
        for item in items:
            state = state_from_item(item)
            found[(state.tenant, state.entity_type, state.entity_id)] = state
        return found

    def commit(self, state: EntityState, expected_revision: int, audit: AuditRecord | None, head: str) -> None:
        pk = entity_pk(state.tenant, state.entity_type, state.entity_id)
        state_put: PutTypeDef = {
            "TableName": self.table,
            "Item": {
                "pk": _s(pk),
                "sk": _s(STATE_SK),
                "version": _n(state.version),
                "revision": _n(state.revision),
                "docz": {"B": pack(state)},
                "audit_head": _s(head),
            },
        }
        if expected_revision == 0:
            state_put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            state_put["ConditionExpression"] = "revision = :expected"
            state_put["ExpressionAttributeValues"] = {":expected": _n(expected_revision)}
        try:
            if audit is None:
                self.client.put_item(**state_put)
                return
            audit_put: PutTypeDef = {
                "TableName": self.table,
                # Only what its readers use (publish, the trail, the archive): the record itself, which
                # already names the entity and its version, and its expiry.
                "Item": {
                    "pk": _s(pk),
                    "sk": _s(audit_sk(audit.version)),
                    "record": _s(audit.model_dump_json()),
                    "expires_at": _n(int(time.time()) + AUDIT_RETENTION_DAYS * 86400),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            self.client.transact_write_items(TransactItems=[{"Put": state_put}, {"Put": audit_put}])
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if code == "ConditionalCheckFailedException" or (
                code == "TransactionCanceledException" and "ConditionalCheckFailed" in reasons
            ):
                raise StaleState(f"{pk} changed since it was read") from exc
            raise

    def record_decisions(self, event: ObservedEntity, discarded: Sequence[Discarded]) -> None:
        """Once per event (a replay finds the item and changes nothing)."""
        item = {
            "pk": _s(entity_pk(event.tenant, event.entity_type, event.entity_id)),
            "sk": _s(f"{DECISION_SK_PREFIX}{event.event_id}"),
            "record": _s(
                canonical_json(
                    {
                        "event_id": event.event_id,
                        "source": event.source,
                        "source_event_id": event.source_event_id,
                        "occurred_at": event.occurred_at.isoformat(),
                        "discarded": [
                            {"field": d.field, "offered": d.offered, "kept": d.kept, "reason": d.reason}
                            for d in discarded
                        ],
                    }
                )
            ),
            "expires_at": _n(int(time.time()) + AUDIT_RETENTION_DAYS * 86400),
        }
        try:
            self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # --- reads for operators ---------------------------------------------------------------------
    def _query(self, pk: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _s(pk), ":prefix": _s(prefix)},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def audit_trail(self, tenant: str, entity_type: str, entity_id: str) -> list[AuditRecord]:
        return [audit_from_item(i) for i in self._query(entity_pk(tenant, entity_type, entity_id), AUDIT_SK_PREFIX)]

    def decisions(self, tenant: str, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        items = self._query(entity_pk(tenant, entity_type, entity_id), DECISION_SK_PREFIX)
        return sorted((json.loads(i["record"]["S"]) for i in items), key=lambda d: (d["occurred_at"], d["event_id"]))

    def entities(self, tenant: str | None = None) -> list[tuple[str, str, str]]:
        """Every (tenant, entity_type, entity_id) with state: an operator's scan, never on a hot path."""
        found: list[tuple[str, str, str]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :state",
            "ExpressionAttributeValues": {":state": _s(STATE_SK)},
            "ProjectionExpression": "pk",
        }
        while True:
            page = self.client.scan(**kwargs)
            for item in page.get("Items", []):
                t, entity_type, entity_id = item["pk"]["S"].split("#", 2)
                if tenant is None or t == tenant:
                    found.append((t, entity_type, entity_id))
            if "LastEvaluatedKey" not in page:
                return sorted(found)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- delivery acks ---------------------------------------------------------------------------
    def load_for_delivery(
        self, tenant: str, entity_type: str, entity_id: str, target: str
    ) -> tuple[EntityState | None, dict[str, Any]]:
        pk = entity_pk(tenant, entity_type, entity_id)
        keys = [{"pk": _s(pk), "sk": _s(STATE_SK)}, {"pk": _s(pk), "sk": _s(f"{ACK_SK_PREFIX}{target}")}]
        response = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}})
        if response.get("UnprocessedKeys"):
            raise RuntimeError("DynamoDB left keys unprocessed; the message will be retried")
        state: EntityState | None = None
        ack: dict[str, Any] = {"version": 0, "hashes": {}}
        for item in response["Responses"].get(self.table, []):
            if item["sk"]["S"] == STATE_SK:
                state = state_from_item(item)
            else:
                ack = json.loads(item["ack"]["S"])
        return state, ack

    def record_ack(self, state: EntityState, target: str, ack: dict[str, Any]) -> bool:
        """Store the target's ack unless a newer version was acknowledged meanwhile."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": _s(entity_pk(state.tenant, state.entity_type, state.entity_id)),
                    "sk": _s(f"{ACK_SK_PREFIX}{target}"),
                    "version": _n(ack["version"]),
                    "ack": _s(canonical_json(ack)),
                },
                ConditionExpression="attribute_not_exists(pk) OR version < :v",
                ExpressionAttributeValues={":v": _n(ack["version"])},
            )
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
