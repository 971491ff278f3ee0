"""The customer view in the state table: the projector's writes and the lookup's three reads.

Item layout: ``shared.read.view``. Writes are idempotent (a stream record is delivered at least once):
an ``E#`` item only moves forward (conditional on its version), a ``T#`` item is the same item each
time, a selector adds to sets. Reads: one BatchGetItem of selector (or identity key) items, one Query
of a view's ``E#`` items, one Query of its newest ``T#`` items; each counts as one call, its pages
(over 1 MB) aside.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.read.view import ALIAS_SK, ENTITY_PREFIX, SELECTOR_SK, TIMELINE_PREFIX, selector_pk, view_pk

BATCH_GET_MAX = 100


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoViewStore(DynamoTable):
    # --- the projector's writes ---------------------------------------------------------------------
    def put_entity(self, item: dict[str, Any]) -> bool:
        """Write an ``E#`` item unless the view holds this version or a newer one (False then)."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(version) OR version < :v",
                ExpressionAttributeValues={":v": item["version"]},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def put_item(self, item: dict[str, Any]) -> None:
        """A ``T#`` or alias item: the same record writes the same item (idempotent)."""
        self.client.put_item(TableName=self.table, Item=item)

    def add_selector(self, tenant: str, kind: str, digest: str, customer_id: str, refs: Sequence[str]) -> None:
        """Point a selector at a customer and add what it names there (repeating it changes nothing).
        ``customer_id`` is the latest customer it was seen with; ``customers`` every one (two shops'
        order #1001 are two customers' orders)."""
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": selector_pk(tenant, kind, digest)}, "sk": {"S": SELECTOR_SK}},
            UpdateExpression="SET customer_id = :c ADD refs :r, customers :cs",
            ExpressionAttributeValues={
                ":c": {"S": customer_id},
                ":r": {"SS": sorted(set(refs))},
                ":cs": {"SS": [customer_id]},
            },
        )

    def remove_alias(self, tenant: str, alias: str) -> None:
        self.client.delete_item(TableName=self.table, Key={"pk": {"S": view_pk(tenant, alias)}, "sk": {"S": ALIAS_SK}})

    def partition(self, tenant: str, customer_id: str) -> list[dict[str, Any]]:
        """Every ``E#`` and ``T#`` item of a view (copied into the survivor's when a customer is absorbed)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": view_pk(tenant, customer_id)}},
        }
        while True:
            page = self.client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return [i for i in items if i["sk"]["S"] != ALIAS_SK]
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- the lookup's reads ---------------------------------------------------------------------------
    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The items of ``(pk, sk)`` keys that exist: one BatchGetItem (per 100 keys; unprocessed keys
        are asked again, a few times)."""
        unique = list(dict.fromkeys(keys))
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_GET_MAX):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[start : start + BATCH_GET_MAX]]
                }
            }
            for attempt in range(5):
                response = self.client.batch_get_item(RequestItems=request)
                found.extend(response["Responses"].get(self.table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            if request:
                raise RuntimeError("DynamoDB left keys unprocessed after 5 attempts; retry later")
        return found

    def entities(self, tenant: str, customer_id: str) -> list[dict[str, Any]]:
        """A view's ``E#`` items (its customer's card, the alias marker, every entity summary)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :e)",
            "ExpressionAttributeValues": {":pk": {"S": view_pk(tenant, customer_id)}, ":e": {"S": ENTITY_PREFIX}},
        }
        while True:
            page = self.client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def timeline(
        self, tenant: str, customer_id: str, limit: int, start: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """A page of a view's ``T#`` items, newest first, and the key to continue after (None: no more)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)",
            "ExpressionAttributeValues": {":pk": {"S": view_pk(tenant, customer_id)}, ":t": {"S": TIMELINE_PREFIX}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        page = self.client.query(**kwargs)
        return page.get("Items", []), page.get("LastEvaluatedKey")
