"""Agents' workload and ticket assignments in the state table, changed only in transactions.

- ``ops#dispatch#<tenant>#agent#<agent>`` / ``LOAD``: the agent's open-ticket count, ``n``;
  ``… / ticket#<entity id>``: one item per ticket the agent holds (a Query lists them at shift end);
- ``ops#dispatch#<tenant>#ticket#<entity id>`` / ``ASSIGNMENT``: who holds the ticket;
- ``ops#dispatch#<tenant>#waiting`` / ``ticket#<entity id>``: tickets nobody could take yet.

An assignment moves the pointer, both agents' counts and their ticket items together, on the
conditions that the ticket is still where the caller saw it and the new agent still has room: two
dispatches racing for one agent's last slot cannot both win, and a retried message changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.type_defs import PutTypeDef, TransactWriteItemTypeDef, UpdateTypeDef

PREFIX = "ops#dispatch#"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


class DynamoWorkload(DynamoTable):
    def _agent_pk(self, tenant: str, agent: str) -> dict[str, str]:
        return _s(f"{PREFIX}{tenant}#agent#{agent}")

    def _pointer(self, tenant: str, ticket: str) -> dict[str, Any]:
        return {"pk": _s(f"{PREFIX}{tenant}#ticket#{ticket}"), "sk": _s("ASSIGNMENT")}

    def _waiting(self, tenant: str, ticket: str) -> dict[str, Any]:
        return {"pk": _s(f"{PREFIX}{tenant}#waiting"), "sk": _s(f"ticket#{ticket}")}

    def loads(self, tenant: str, agents: list[str]) -> dict[str, int]:
        keys = [{"pk": self._agent_pk(tenant, a), "sk": _s("LOAD")} for a in agents]
        found: dict[str, int] = {}
        for start in range(0, len(keys), 100):
            response = self.client.batch_get_item(
                RequestItems={self.table: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            )
            if response.get("UnprocessedKeys"):
                raise RuntimeError("DynamoDB left keys unprocessed; the message will be retried")
            for item in response["Responses"].get(self.table, []):
                found[item["pk"]["S"].rsplit("#agent#", 1)[1]] = int(item["n"]["N"])
        return found

    def holder(self, tenant: str, ticket: str) -> str | None:
        item = self.client.get_item(TableName=self.table, Key=self._pointer(tenant, ticket), ConsistentRead=True)
        return item["Item"]["holder"]["S"] if "Item" in item else None

    def tickets_of(self, tenant: str, agent: str) -> list[str]:
        return self._query(self._agent_pk(tenant, agent))

    def waiting(self, tenant: str) -> list[str]:
        return self._query(_s(f"{PREFIX}{tenant}#waiting"))

    def _query(self, pk: dict[str, str]) -> list[str]:
        found: list[str] = []
        paginator = self.client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :t)",
            ExpressionAttributeValues={":pk": pk, ":t": _s("ticket#")},
            ConsistentRead=True,
        ):
            found.extend(item["sk"]["S"].removeprefix("ticket#") for item in page["Items"])
        return found

    def assign(self, tenant: str, ticket: str, agent: str, capacity: int | None, previous: str | None) -> bool:
        """Move the ticket from ``previous`` (None: nobody) to ``agent``; False when the ticket moved
        meanwhile or the agent is full (``capacity`` None: a person chose, no limit applies)."""
        pointer: PutTypeDef = {"TableName": self.table, "Item": {**self._pointer(tenant, ticket), "holder": _s(agent)}}
        if previous is None:
            pointer["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            pointer["ConditionExpression"] = "holder = :previous"
            pointer["ExpressionAttributeValues"] = {":previous": _s(previous)}
        load: UpdateTypeDef = {
            "TableName": self.table,
            "Key": {"pk": self._agent_pk(tenant, agent), "sk": _s("LOAD")},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
        if capacity is not None:
            load["ConditionExpression"] = "attribute_not_exists(n) OR n < :cap"
            load["ExpressionAttributeValues"] = {":one": {"N": "1"}, ":cap": {"N": str(capacity)}}
        items: list[TransactWriteItemTypeDef] = [
            {"Put": pointer},
            {"Update": load},
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {"pk": self._agent_pk(tenant, agent), "sk": _s(f"ticket#{ticket}")},
                }
            },
            {"Delete": {"TableName": self.table, "Key": self._waiting(tenant, ticket)}},
        ]
        if previous is not None:
            items += self._leave(tenant, ticket, previous)
        return self._transact(items)

    def release(self, tenant: str, ticket: str, agent: str) -> bool:
        """The ticket is solved or closed: the agent's slot is free again."""
        items: list[TransactWriteItemTypeDef] = [
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": self._pointer(tenant, ticket),
                    "ConditionExpression": "holder = :agent",
                    "ExpressionAttributeValues": {":agent": _s(agent)},
                }
            },
            *self._leave(tenant, ticket, agent),
        ]
        return self._transact(items)

    def wait(self, tenant: str, ticket: str) -> None:
        self.client.put_item(TableName=self.table, Item=self._waiting(tenant, ticket))

    def stop_waiting(self, tenant: str, ticket: str) -> None:
        self.client.delete_item(TableName=self.table, Key=self._waiting(tenant, ticket))

    def _leave(self, tenant: str, ticket: str, agent: str) -> list[TransactWriteItemTypeDef]:
        return [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": self._agent_pk(tenant, agent), "sk": _s("LOAD")},
                    "UpdateExpression": "ADD n :minus",
                    "ExpressionAttributeValues": {":minus": {"N": "-1"}},
                }
            },
            {
                "Delete": {
                    "TableName": self.table,
                    "Key": {"pk": self._agent_pk(tenant, agent), "sk": _s(f"ticket#{ticket}")},
                }
            },
        ]

    def _transact(self, items: list[TransactWriteItemTypeDef]) -> bool:
        try:
            self.client.transact_write_items(TransactItems=items)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if any(r.get("Code") not in (None, "None", "ConditionalCheckFailed") for r in reasons):
                raise  # a conflict with another transaction, throttling: retried through the queue
            return False
