"""The customer view in its own table: the projector's writes and the lookup's three reads.

The view is derived data (``functions.project`` keeps it from the state table's stream), so it has a
DynamoDB table of its own: its writes never count against the state table's capacity, which is
sync's. Only the identity index's key items, which a lookup by phone, e-mail or WeCom id reads in its
first call, are in the state table: ``batch_get`` asks for them there (``state_table``) in the same
BatchGetItem as the view's items (one call can span two tables).

Item layout: ``shared.read.view``. Writes are idempotent (a stream record is delivered at least once)
and kept right by the entity's owner pointer and its ``E#`` items (the projector decides which to
make, ``functions.project.handler``):

- ``refresh``: a state that leaves its entity where it is rewrites its summary in one conditional
  PutItem (the item live, older, and naming the same selectors): a live item is only ever in the view
  the pointer names, so the condition holding says the pointer names this view, without reading it;
- ``claim`` + ``put_entity``: a first placement writes the pointer (conditional on there being none),
  then the summary (refused over a tombstone: a move got there in between);
- ``place``: a move changes the pointer, the former owner's ``E#`` item (into a tombstone) and the new
  owner's in one transaction conditional on the pointer and the former item as read, so two
  projections of one entity racing each other converge on the newer state and a crash never leaves
  the entity in two views;
- ``point_selectors``: a selector's refs pointed at a view, refused where a newer state of the entity
  pointed them already.

Its ``T#`` items follow a move (``timeline_of`` / ``move``), driven by the pointer's ``former`` until it
is settled. Reads: one BatchGetItem of selector (or identity key) items, one Query of a view's live
``E#`` items, one Query of its newest ``T#`` items; each counts as one call, its pages (over 1 MB) aside.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import BATCH_GET_MAX, DynamoTable
from shared.read.view import (
    ALIAS_SK,
    ENTITY_PREFIX,
    OWNER_SK,
    REF_OWNER_PREFIX,
    REF_VERSION_PREFIX,
    SELECTOR_SK,
    TIMELINE_PREFIX,
    TOMBSTONE,
    Owner,
    entity_sk,
    owner_from_item,
    owner_pk,
    tombstone_item,
    view_pk,
)

if TYPE_CHECKING:  # the stubs are a dev dependency: types only, nothing at run time
    from types_boto3_dynamodb.client import DynamoDBClient

CONFLICTS = ("TransactionCanceledException", "TransactionConflictException", "ConditionalCheckFailedException")


class PointerMoved(Exception):
    """The owner pointer or an ``E#`` item changed since it was read (another projection of the entity):
    read them again."""


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _conflict(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] in CONFLICTS


def _as_read(item: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """A condition that an ``E#`` item is still as read (a live one's version or a tombstone's; none)."""
    if item is None:
        return "attribute_not_exists(pk)", {}
    tomb = "attribute_exists(tombstone)" if TOMBSTONE in item else "attribute_not_exists(tombstone)"
    return f"version = :ev AND {tomb}", {":ev": item["version"]}


IDENTITY_KEY_MARK = "#idkey#"  # the identity index's key items (``shared.adapters.identity_index``)


class DynamoViewStore(DynamoTable):
    """The view table (``table``); ``state_table``: where the identity index's key items are read (the
    lookup's; the projector and the rebuild read none through this store)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, state_table: str | None = None) -> None:
        super().__init__(table, client)
        self.state_table = state_table

    # --- the projector's writes ---------------------------------------------------------------------
    def owner(self, tenant: str, entity_type: str, entity_id: str) -> Owner | None:
        """An entity's owner pointer (consistent read), None before its first projection."""
        item = self.client.get_item(
            TableName=self.table, Key=_key(owner_pk(tenant, entity_type, entity_id), OWNER_SK), ConsistentRead=True
        ).get("Item")
        return owner_from_item(item)

    def entity(self, tenant: str, customer_id: str, entity_type: str, entity_id: str) -> dict[str, Any] | None:
        """An entity's ``E#`` item in a view, live or a tombstone (consistent; a Query of its one key: the
        project function queries views, it does not get their items)."""
        items = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk = :sk",
            ExpressionAttributeValues={
                ":pk": {"S": view_pk(tenant, customer_id)},
                ":sk": {"S": entity_sk(entity_type, entity_id)},
            },
            ConsistentRead=True,
        ).get("Items", [])
        return items[0] if items else None

    def refresh(self, entity: dict[str, Any]) -> bool:
        """The same-owner write: the summary put over a live, older item naming the same selectors
        (``sel``). False (nothing written) when it is not so: missing, a tombstone, as new or newer, or
        other selectors; then the projector reads the pointer and decides."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=entity,
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(tombstone) "
                "AND version < :v AND sel = :s",
                ExpressionAttributeValues={":v": entity["version"], ":s": entity["sel"]},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim(self, tenant: str, entity_type: str, entity_id: str, version: int, customer_id: str) -> Owner:
        """A first placement's pointer (conditional on there being none; PointerMoved otherwise)."""
        pointer = {
            **_key(owner_pk(tenant, entity_type, entity_id), OWNER_SK),
            "version": {"N": str(version)},
            "customer_id": {"S": customer_id},
        }
        try:
            self.client.put_item(TableName=self.table, Item=pointer, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _conflict(exc):
                raise PointerMoved(f"{entity_type} {entity_id} was placed meanwhile") from exc
            raise
        return Owner(customer_id, version)

    def put_entity(self, entity: dict[str, Any]) -> None:
        """The summary into the view the pointer names (read or just claimed): over nothing or over a live
        item no newer; PointerMoved over a tombstone (the entity moved out meanwhile) or a newer item."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=entity,
                ConditionExpression="attribute_not_exists(pk) OR (attribute_not_exists(tombstone) AND version <= :v)",
                ExpressionAttributeValues={":v": entity["version"]},
            )
        except ClientError as exc:
            if _conflict(exc):
                raise PointerMoved(f"{entity['sk']['S']} changed meanwhile") from exc
            raise

    def keep_version(self, tenant: str, entity_type: str, entity_id: str, read: Owner, version: int) -> None:
        """An entity in no view: its pointer's version moves on (conditional on it as read)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(owner_pk(tenant, entity_type, entity_id), OWNER_SK),
                UpdateExpression="SET version = :v",
                ConditionExpression="version = :rv AND attribute_not_exists(customer_id)",
                ExpressionAttributeValues={":v": {"N": str(version)}, ":rv": {"N": str(read.version)}},
            )
        except ClientError as exc:
            if _conflict(exc):
                raise PointerMoved(f"{entity_type} {entity_id}'s owner pointer changed meanwhile") from exc
            raise

    def place(
        self,
        tenant: str,
        entity_type: str,
        entity_id: str,
        version: int,
        customer_id: str | None,
        read: Owner,
        current: dict[str, Any] | None,
        entity: dict[str, Any] | None,
    ) -> Owner:
        """Move the entity into ``customer_id``'s view as of ``version`` (None: into no view): the pointer,
        the former owner's ``E#`` item (``current`` as read) turned into a tombstone, and the new owner's
        (``entity``), in one transaction conditional on the pointer being ``read`` and the former item
        ``current``. PointerMoved when either changed (read them again and decide again). Returns the
        pointer written."""
        pk = owner_pk(tenant, entity_type, entity_id)
        former = set(read.former)
        if read.customer_id and read.customer_id != customer_id:
            former.add(read.customer_id)
        former.discard(customer_id or "")
        pointer: dict[str, Any] = {**_key(pk, OWNER_SK), "version": {"N": str(version)}}
        if customer_id:
            pointer["customer_id"] = {"S": customer_id}
        if former:
            pointer["former"] = {"SS": sorted(former)}
        values: dict[str, Any] = {":rv": {"N": str(read.version)}}
        if read.customer_id:
            values[":rc"] = {"S": read.customer_id}
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": pointer,
            "ConditionExpression": "version = :rv AND "
            + ("customer_id = :rc" if read.customer_id else "attribute_not_exists(customer_id)"),
            "ExpressionAttributeValues": values,
        }
        writes: list[dict[str, Any]] = [{"Put": put}]
        if read.customer_id and read.customer_id != customer_id:
            condition, values = _as_read(current)
            tomb = tombstone_item(tenant, read.customer_id, entity_type, entity_id, version, int(time.time()))
            writes.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": tomb,
                        "ConditionExpression": condition,
                        **({"ExpressionAttributeValues": values} if values else {}),
                    }
                }
            )
        if entity is not None:
            writes.append({"Put": {"TableName": self.table, "Item": entity}})
        try:
            self.client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]  # built above
        except ClientError as exc:
            if _conflict(exc):
                raise PointerMoved(f"{entity_type} {entity_id}'s owner pointer changed meanwhile") from exc
            raise
        return Owner(customer_id, version, frozenset(former))

    def point_selectors(
        self,
        entity_type: str,
        entity_id: str,
        version: int,
        customer_id: str | None,
        selectors: Sequence[tuple[str, Sequence[str]]],
    ) -> int:
        """Point each selector's refs ``(pk, refs)`` at a customer's view (none: at no view) as of the
        entity's state ``version``; a selector a newer state of the entity pointed already is left as it
        is. How many were written."""
        written = 0
        for pk, refs in selectors:
            try:
                self.client.update_item(**self._selector_update(pk, refs, customer_id, entity_type, entity_id, version))
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # a newer state of the entity pointed it: it stays
            written += 1
        return written

    def _selector_update(
        self, pk: str, refs: Sequence[str], customer_id: str | None, entity_type: str, entity_id: str, version: int
    ) -> dict[str, Any]:
        """Point a selector's refs at a customer's view (none: at no view), add them to its refs and note
        the state's version (repeating it changes nothing; an older version's is refused)."""
        names = {f"#o{i}": f"{REF_OWNER_PREFIX}{ref}" for i, ref in enumerate(sorted(set(refs)))}
        names["#v"] = f"{REF_VERSION_PREFIX}{entity_type}#{entity_id}"
        values: dict[str, Any] = {":r": {"SS": sorted(set(refs))}, ":v": {"N": str(version)}}
        owners = [n for n in names if n != "#v"]
        if customer_id:
            values[":c"] = {"S": customer_id}
            expression = "SET customer_id = :c, #v = :v, " + ", ".join(f"{n} = :c" for n in owners) + " ADD refs :r"
        else:
            expression = "SET #v = :v REMOVE " + ", ".join(owners) + " ADD refs :r"
        return {
            "TableName": self.table,
            "Key": _key(pk, SELECTOR_SK),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_not_exists(#v) OR #v <= :v",
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
        """Every key of every view of a tenant (``pk``, ``sk``, an alias marker's ``doc``, a tombstone's
        ``tombstone``): the rebuild's sweep, an operator's scan, never on a hot path."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": {":p": {"S": view_pk(tenant, "")}},
            "ProjectionExpression": "pk, sk, #d, tombstone",
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
        are asked again, a few times), the view's keys from the view table and an identity key's from
        the state table in the same call."""
        unique = list(dict.fromkeys(keys))
        if not any(IDENTITY_KEY_MARK in pk for pk, _ in unique):
            return self.batch_get_items([_key(pk, sk) for pk, sk in unique])
        if self.state_table is None:
            raise ValueError("an identity key is read from the state table: this view store was given none")
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_GET_MAX):
            request: dict[str, Any] = {}
            for pk, sk in unique[start : start + BATCH_GET_MAX]:
                table = self.state_table if IDENTITY_KEY_MARK in pk else self.table
                request.setdefault(table, {"Keys": []})["Keys"].append(_key(pk, sk))
            found.extend(self.batch_get_request(request))
        return found

    def entities(self, tenant: str, customer_id: str) -> list[dict[str, Any]]:
        """A view's live ``E#`` items (its customer's card, the alias marker, every entity summary; the
        tombstones of entities that moved out are read, counted, and left out)."""
        return self._query(
            {
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :e)",
                "FilterExpression": "attribute_not_exists(tombstone)",
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
