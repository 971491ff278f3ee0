"""The customer view in the state table: the projector's writes and the lookup's three reads.

Item layout: ``shared.read.view``. Writes are idempotent (a stream record is delivered at least once)
and guarded by the entity's owner pointer: ``place`` moves the pointer, the ``E#`` item (out of the
former owner's view, into the new one's) and the selectors that name the entity in one transaction,
conditional on the pointer being as it was read, so two projections of one entity racing each other
converge on the newer state and a crash never leaves the entity in two views. Its ``T#`` items follow
(``timeline_of`` / ``move``), driven by the pointer's ``former`` until it is settled. Reads: one
BatchGetItem of selector (or identity key) items, one Query of a view's ``E#`` items, one Query of its
newest ``T#`` items; each counts as one call, its pages (over 1 MB) aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.read.view import (
    ALIAS_SK,
    ENTITY_PREFIX,
    OWNER_SK,
    REF_OWNER_PREFIX,
    SELECTOR_SK,
    TIMELINE_PREFIX,
    Owner,
    entity_sk,
    owner_from_item,
    owner_pk,
    view_pk,
)

TRANSACTION_MAX = 100  # items one TransactWriteItems takes


class PointerMoved(Exception):
    """The owner pointer changed since it was read (another projection of the entity): read it again."""


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


class DynamoViewStore(DynamoTable):
    # --- the projector's writes ---------------------------------------------------------------------
    def owner(self, tenant: str, entity_type: str, entity_id: str) -> Owner | None:
        """An entity's owner pointer (consistent read), None before its first projection."""
        item = self.client.get_item(
            TableName=self.table, Key=_key(owner_pk(tenant, entity_type, entity_id), OWNER_SK), ConsistentRead=True
        ).get("Item")
        return owner_from_item(item)

    def place(
        self,
        tenant: str,
        entity_type: str,
        entity_id: str,
        version: int,
        customer_id: str | None,
        read: Owner | None,
        entity: dict[str, Any] | None,
        selectors: Sequence[tuple[str, Sequence[str]]],
    ) -> Owner:
        """Put the entity in ``customer_id``'s view as of ``version`` (None: in no view): the pointer, the
        ``E#`` item (``entity``) and every selector ``(pk, refs)`` pointing its refs there, and the
        former owner's ``E#`` item deleted, in one transaction conditional on the pointer being ``read``.
        PointerMoved when it is not (read it again and decide again). Returns the pointer written."""
        pk = owner_pk(tenant, entity_type, entity_id)
        former = set(read.former) if read else set()
        if read is not None and read.customer_id and read.customer_id != customer_id:
            former.add(read.customer_id)
        former.discard(customer_id or "")
        pointer: dict[str, Any] = {**_key(pk, OWNER_SK), "version": {"N": str(version)}}
        if customer_id:
            pointer["customer_id"] = {"S": customer_id}
        if former:
            pointer["former"] = {"SS": sorted(former)}
        put: dict[str, Any] = {"TableName": self.table, "Item": pointer}
        if read is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :rv AND " + (
                "customer_id = :rc" if read.customer_id else "attribute_not_exists(customer_id)"
            )
            put["ExpressionAttributeValues"] = {":rv": {"N": str(read.version)}}
            if read.customer_id:
                put["ExpressionAttributeValues"][":rc"] = {"S": read.customer_id}
        writes: list[dict[str, Any]] = [{"Put": put}]
        if read is not None and read.customer_id and read.customer_id != customer_id:
            key = _key(view_pk(tenant, read.customer_id), entity_sk(entity_type, entity_id))
            writes.append({"Delete": {"TableName": self.table, "Key": key}})
        if entity is not None:
            writes.append({"Put": {"TableName": self.table, "Item": entity}})
        updates = [self._selector_update(pk, refs, customer_id) for pk, refs in selectors]
        room = TRANSACTION_MAX - len(writes)
        writes += [{"Update": update} for update in updates[:room]]
        try:
            self.client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]  # built above
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("TransactionCanceledException", "TransactionConflictException"):
                raise PointerMoved(f"{entity_type} {entity_id}'s owner pointer changed meanwhile") from exc
            raise
        for update in updates[room:]:  # an order of over 90 serials: its remaining selectors after
            self.client.update_item(**update)
        return Owner(customer_id, version, frozenset(former))

    def _selector_update(self, pk: str, refs: Sequence[str], customer_id: str | None) -> dict[str, Any]:
        """Point a selector's refs at a customer's view (none: at no view) and add them to its refs
        (repeating it changes nothing)."""
        names = {f"#o{i}": f"{REF_OWNER_PREFIX}{ref}" for i, ref in enumerate(sorted(set(refs)))}
        values: dict[str, Any] = {":r": {"SS": sorted(set(refs))}}
        if customer_id:
            values[":c"] = {"S": customer_id}
            expression = "SET customer_id = :c, " + ", ".join(f"{n} = :c" for n in names) + " ADD refs :r"
        else:
            expression = "REMOVE " + ", ".join(names) + " ADD refs :r"
        return {
            "TableName": self.table,
            "Key": _key(pk, SELECTOR_SK),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def settled(self, tenant: str, entity_type: str, entity_id: str, former: str) -> None:
        """A former owner's view holds nothing of the entity any more: drop it from ``former``."""
        self.client.update_item(
            TableName=self.table,
            Key=_key(owner_pk(tenant, entity_type, entity_id), OWNER_SK),
            UpdateExpression="DELETE former :f",
            ExpressionAttributeValues={":f": {"SS": [former]}},
        )

    def timeline_of(self, tenant: str, customer_id: str, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        """The ``T#`` items of one entity in a view (a filtered Query of the view's timeline)."""
        return self._query(
            {
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :t)",
                "FilterExpression": "contains(sk, :e)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": view_pk(tenant, customer_id)},
                    ":t": {"S": TIMELINE_PREFIX},
                    ":e": {"S": f"#{entity_type}#{entity_id}#"},
                },
            }
        )

    def move(self, items: Sequence[dict[str, Any]], tenant: str, customer_id: str | None) -> None:
        """Move items into ``customer_id``'s view (None: delete them): the copy first, then the delete,
        so a crash between leaves a copy the next attempt deletes, never a loss."""
        for item in items:
            if customer_id:
                self.client.put_item(TableName=self.table, Item={**item, "pk": {"S": view_pk(tenant, customer_id)}})
            self.client.delete_item(TableName=self.table, Key=_key(item["pk"]["S"], item["sk"]["S"]))

    def put_item(self, item: dict[str, Any]) -> None:
        """A ``T#`` or alias item: the same record writes the same item (idempotent)."""
        self.client.put_item(TableName=self.table, Item=item)

    def delete(self, pk: str, sk: str) -> None:
        self.client.delete_item(TableName=self.table, Key=_key(pk, sk))

    def remove_alias(self, tenant: str, alias: str) -> None:
        self.delete(view_pk(tenant, alias), ALIAS_SK)

    def _query(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs = {"TableName": self.table, **kwargs}
        while True:
            page = self.client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def view_items(self, tenant: str) -> list[dict[str, Any]]:
        """Every key of every view of a tenant (``pk``, ``sk``, and an alias marker's ``doc``): the
        rebuild's sweep, an operator's scan, never on a hot path."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": view_pk(tenant, "")}},
            "ProjectionExpression": "pk, sk, #d",
            "ExpressionAttributeNames": {"#d": "doc"},
        }
        while True:
            page = self.client.scan(**kwargs)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- the lookup's reads ---------------------------------------------------------------------------
    def batch_get(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The items of ``(pk, sk)`` keys that exist: one BatchGetItem (per 100 keys; unprocessed keys
        are asked again, a few times)."""
        return self.batch_get_items([_key(pk, sk) for pk, sk in dict.fromkeys(keys)])

    def entities(self, tenant: str, customer_id: str) -> list[dict[str, Any]]:
        """A view's ``E#`` items (its customer's card, the alias marker, every entity summary)."""
        return self._query(
            {
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :e)",
                "ExpressionAttributeValues": {
                    ":pk": {"S": view_pk(tenant, customer_id)},
                    ":e": {"S": ENTITY_PREFIX},
                },
            }
        )

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
