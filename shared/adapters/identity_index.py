"""The identity index in the state table (same table, its own item types, partitioned by tenant).

- ``{tenant}#idkey#{hash}`` / ``KEY``: the customers holding a key (one for a strong key, a family
  for a phone); claimed with a condition so two writers cannot give one strong key to two customers;
- ``{tenant}#idprofile#{id}`` / ``PROFILE``: normalised names and strong-key hashes by kind, and
  ``alias_of`` (with ``absorbed_on``, the evidence, and ``absorbed_at``) once the customer was found
  to be another one and absorbed into it;
- ``{tenant}#merge#{a}|{b}`` / ``CANDIDATE``: a possible merge for a person to decide.

One instance serves one resolution: it reads the owners' profiles in one batch and reuses them.
The profile of the customer a record most likely names (``expect``) and the states the record will
merge into (a ``ReadAhead``) ride along with the first batch read, so resolving a known customer and
loading the states costs one BatchGetItem and no write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from shared.adapters.state_store import ReadAhead
from shared.identity.resolver import STRONG, CustomerProfile, KeyKind

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef


class DynamoIdentityIndex:
    def __init__(
        self, table: str, tenant: str, client: DynamoDBClient | None = None, read_ahead: ReadAhead | None = None
    ) -> None:
        self.table = table
        self.tenant = tenant
        self._client = client
        self._profiles: dict[str, dict[str, Any]] = {}
        self._expected: set[str] = set()
        self.read_ahead = read_ahead

    def expect(self, customer_id: str) -> None:
        """Read this customer's profile with the next batch read (the customer a record most likely
        names: the one its own source id created)."""
        if customer_id not in self._profiles:
            self._expected.add(customer_id)

    @cached_property
    def client(self) -> DynamoDBClient:
        return self._client or boto3.client("dynamodb")

    def _key(self, h: str) -> dict[str, Any]:
        return {"pk": {"S": f"{self.tenant}#idkey#{h}"}, "sk": {"S": "KEY"}}

    def _profile_key(self, customer_id: str) -> dict[str, Any]:
        return {"pk": {"S": f"{self.tenant}#idprofile#{customer_id}"}, "sk": {"S": "PROFILE"}}

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of ``keys``; the expected profiles and the read-ahead keys are read in the same call."""
        expected = sorted(self._expected - set(self._profiles))
        self._expected.clear()
        ahead = self.read_ahead.take_wanted() if self.read_ahead else []
        asked = {(k["pk"]["S"], k["sk"]["S"]): k for k in [*keys, *map(self._profile_key, expected), *ahead]}
        every = list(asked.values())
        items: list[dict[str, Any]] = []
        for start in range(0, len(every), 100):
            response = self.client.batch_get_item(
                RequestItems={self.table: {"Keys": every[start : start + 100], "ConsistentRead": True}}
            )
            if response.get("UnprocessedKeys"):
                raise RuntimeError("identity lookup throttled; the message will be retried")
            items.extend(response["Responses"].get(self.table, []))
        wanted = {(k["pk"]["S"], k["sk"]["S"]) for k in keys}
        ahead_ids = {(k["pk"]["S"], k["sk"]["S"]) for k in ahead}
        if self.read_ahead is not None:
            self.read_ahead.received(ahead, [i for i in items if (i["pk"]["S"], i["sk"]["S"]) in ahead_ids])
        for customer_id in expected:
            self._profiles.setdefault(customer_id, {})
        for item in items:
            if item["sk"]["S"] == "PROFILE" and (item["pk"]["S"], "PROFILE") not in wanted:
                self._profiles[item["pk"]["S"].split("#idprofile#", 1)[1]] = item
        return [i for i in items if (i["pk"]["S"], i["sk"]["S"]) in wanted]

    def _load_profiles(self, customer_ids: Iterable[str]) -> None:
        missing = sorted(set(customer_ids) - set(self._profiles))
        while missing:
            for customer_id in missing:
                self._profiles[customer_id] = {}
            for item in self._batch_get([self._profile_key(c) for c in missing]):
                self._profiles[item["pk"]["S"].split("#idprofile#", 1)[1]] = item
            aliases = {i["alias_of"]["S"] for i in self._profiles.values() if "alias_of" in i}
            missing = sorted(aliases - set(self._profiles))  # follow aliases (rare) in the next round

    def canonical(self, customer_id: str) -> str:
        for _ in range(10):  # alias chains are short; the bound guards against a cycle
            self._load_profiles([customer_id])
            alias = self._profiles[customer_id].get("alias_of")
            if alias is None:
                return customer_id
            customer_id = alias["S"]
        return customer_id

    def owners(self, hashes: Sequence[str]) -> dict[str, set[str]]:
        raw: dict[str, list[str]] = {}
        for item in self._batch_get([self._key(h) for h in hashes]):
            raw[item["pk"]["S"].rsplit("#", 1)[1]] = item.get("customers", {}).get("SS", [])
        self._load_profiles(c for ids in raw.values() for c in ids)
        return {h: {self.canonical(c) for c in ids} for h, ids in raw.items()}

    def profile(self, customer_id: str) -> CustomerProfile:
        item = self._profiles.get(self.canonical(customer_id), {})
        profile = CustomerProfile(
            names=set(item.get("names", {}).get("SS", [])), apart=set(item.get("apart", {}).get("SS", []))
        )
        for attribute, value in item.items():
            if attribute.startswith("kind_"):
                profile.strong_kinds[attribute[5:]] = set(value["SS"])
        return profile

    def claim(self, customer_id: str, keys: Sequence[tuple[str, KeyKind]], name: str | None) -> None:
        customer_id = self.canonical(customer_id)
        won: list[tuple[str, KeyKind]] = []
        for h, kind in keys:
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "Key": self._key(h),
                "UpdateExpression": "ADD customers :c",
                "ExpressionAttributeValues": {":c": {"SS": [customer_id]}},
            }
            if kind in STRONG:
                kwargs["ConditionExpression"] = "attribute_not_exists(customers) OR contains(customers, :id)"
                kwargs["ExpressionAttributeValues"][":id"] = {"S": customer_id}
            try:
                self.client.update_item(**kwargs)
                won.append((h, kind))
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise  # a lost race for a strong key: it stays with the other customer
        self._add_to_profile(customer_id, won, {name} if name else set())

    def _add_to_profile(
        self, customer_id: str, keys: Iterable[tuple[str, str]], names: set[str], apart: Iterable[str] = ()
    ) -> None:
        additions: dict[str, set[str]] = {}
        for h, kind in keys:
            if kind in STRONG:
                additions.setdefault(f"kind_{kind}", set()).add(h)
        if names:
            additions["names"] = names
        if apart:
            additions["apart"] = set(apart)
        if not additions:
            return
        self.client.update_item(
            TableName=self.table,
            Key=self._profile_key(customer_id),
            UpdateExpression="ADD " + ", ".join(f"#a{i} :v{i}" for i in range(len(additions))),
            ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(additions)},
            ExpressionAttributeValues={f":v{i}": {"SS": sorted(v)} for i, v in enumerate(additions.values())},
        )
        self._profiles.pop(customer_id, None)  # changed: read again when next needed

    def absorb(self, alias: str, customer_id: str, evidence: Sequence[str]) -> None:
        alias, customer_id = self.canonical(alias), self.canonical(customer_id)
        if alias == customer_id:
            return
        gone = self.profile(alias)
        self._add_to_profile(
            customer_id,
            [(h, kind) for kind, hashes in gone.strong_kinds.items() for h in hashes],
            gone.names,
            gone.apart - {customer_id},
        )
        # The alias pointer and a check that the survivor is not itself absorbed, together: two workers
        # joining the same pair from opposite ends cannot make each other's alias (a cycle).
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._profile_key(alias),
                            "UpdateExpression": "SET alias_of = :c, absorbed_on = :e, absorbed_at = :t",
                            "ConditionExpression": "attribute_not_exists(alias_of) OR alias_of = :c",
                            "ExpressionAttributeValues": {
                                ":c": {"S": customer_id},
                                ":e": {"SS": sorted(set(evidence)) or ["unknown"]},
                                ":t": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
                            },
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": self._profile_key(customer_id),
                            "ConditionExpression": "attribute_not_exists(alias_of)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            self._profiles.clear()
            raise RuntimeError(
                f"customer {alias} or {customer_id} was absorbed meanwhile; the message will be retried"
            ) from exc
        self._profiles.pop(alias, None)

    def merge_candidate(self, customer_ids: Iterable[str], evidence: Sequence[str]) -> None:
        ids = sorted(customer_ids)
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"{self.tenant}#merge#{'|'.join(ids)}"},
                    "sk": {"S": "CANDIDATE"},
                    "customers": {"SS": ids},
                    "evidence": {"SS": sorted(set(evidence)) or ["unknown"]},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # --- a person's decisions (``aftersync customers``) ------------------------------------------------
    def keep_apart(self, customer_ids: Sequence[str]) -> None:
        """These are different people: no resolution will join them, whatever a later record says."""
        ids = sorted({self.canonical(c) for c in customer_ids})
        for customer_id in ids:
            self._add_to_profile(customer_id, [], set(), set(ids) - {customer_id})

    def candidates(self) -> list[dict[str, Any]]:
        """Every merge candidate of the tenant, open or decided: an operator's scan, never on a hot path."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk = :c AND begins_with(pk, :p)",
            "ExpressionAttributeValues": {":c": {"S": "CANDIDATE"}, ":p": {"S": f"{self.tenant}#merge#"}},
        }
        while True:
            page = self.client.scan(**kwargs)
            for item in page.get("Items", []):
                found.append(
                    {
                        "customers": sorted(item["customers"]["SS"]),
                        "evidence": sorted(item["evidence"]["SS"]),
                        "status": item.get("status", {}).get("S", "open"),
                        **{k: item[k]["S"] for k in ("decided_by", "decided_at", "survivor") if k in item},
                    }
                )
            if "LastEvaluatedKey" not in page:
                return sorted(found, key=lambda c: (c["status"] != "open", c["customers"]))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def decide(self, customer_ids: Sequence[str], merge: bool, by: str) -> str:
        """A person's answer to a candidate (or to any two customers): merge them into the first id, or
        keep them apart for good. The candidate keeps the answer, so it is not raised again."""
        survivor, *others = customer_ids
        if merge:
            for other in others:
                self.absorb(other, survivor, ("confirmed by a person",))
        else:
            self.keep_apart(customer_ids)
        ids = sorted(customer_ids)
        status = "merged" if merge else "kept_apart"
        values: dict[str, AttributeValueTypeDef] = {
            ":ids": {"SS": ids},
            ":s": {"S": status},
            ":by": {"S": by},
            ":at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
            ":ev": {"SS": ["decided by a person"]},
        }
        if merge:
            values[":sv"] = {"S": survivor}
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"{self.tenant}#merge#{'|'.join(ids)}"}, "sk": {"S": "CANDIDATE"}},
            UpdateExpression="SET customers = :ids, #s = :s, decided_by = :by, decided_at = :at"
            + (", survivor = :sv" if merge else "")
            + " ADD evidence :ev",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        return status
