"""The identity index in the state table (same table, its own item types, partitioned by tenant).

- ``{tenant}#idkey#{hash}`` / ``KEY``: the customers holding a key (one for a strong key, a family
  for a phone); claimed with a condition so two writers cannot give one strong key to two customers;
- ``{tenant}#idprofile#{id}`` / ``PROFILE``: the name hashes (``name_keys``, ``name_forms``,
  ``name_written``: salted HMACs, see ``shared.identity.names``) and strong-key hashes by kind, and
  ``alias_of`` (with ``absorbed_on``, the evidence, ``absorbed_at``, ``absorbed_by`` and ``lent``: what
  the absorption added to the survivor, so it can be undone) once the customer was found to be another
  one and absorbed into it. A profile written before names were keyed across scripts holds its names in
  clear (``names``) until ``aftersync customers relink`` rewrites them;
- ``{tenant}#merge#{a}|{b}`` / ``CANDIDATE``: a possible merge for a person to decide;
- ``{tenant}#relink#{run}`` / ``RUN`` and ``JOIN#{n}``: an ``aftersync customers relink`` run and its
  joins, in order (the journal an undo replays backwards).

One instance serves one resolution: it reads the owners' profiles in one batch and reuses them.
The profile of the customer a record most likely names (``expect``) and the states the record will
merge into (a ``ReadAhead``) ride along with the first batch read, so resolving a known customer and
loading the states costs one BatchGetItem and no write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from shared.adapters.state_store import ReadAhead
from shared.identity.names import NameHashes
from shared.identity.resolver import STRONG, CustomerProfile, KeyKind

NAME_ATTRIBUTES = {"name_keys": "names", "name_forms": "forms", "name_written": "written"}

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import AttributeValueTypeDef


class JoinRaced(RuntimeError):
    """An absorption found one side absorbed or kept apart since it was read: read again and retry."""


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

    def forget(self) -> None:
        """Drop the profiles read so far (a long-running operator command reads them again)."""
        self._profiles.clear()

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
            names=set(item.get("name_keys", {}).get("SS", [])),
            apart=set(item.get("apart", {}).get("SS", [])),
            forms=set(item.get("name_forms", {}).get("SS", [])),
            written=set(item.get("name_written", {}).get("SS", [])),
            legacy_names=set(item.get("names", {}).get("SS", [])),
        )
        for attribute, value in item.items():
            if attribute.startswith("kind_"):
                profile.strong_kinds[attribute[5:]] = set(value["SS"])
        return profile

    def claim(self, customer_id: str, keys: Sequence[tuple[str, KeyKind]], names: NameHashes | None) -> None:
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
        self._add_to_profile(customer_id, _additions(won, names or NameHashes()))

    def _add_to_profile(self, customer_id: str, additions: dict[str, set[str]]) -> None:
        additions = {attribute: values for attribute, values in additions.items() if values}
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

    def absorb(self, alias: str, customer_id: str, evidence: Sequence[str], by: str | None = None) -> None:
        alias, customer_id = self.canonical(alias), self.canonical(customer_id)
        if alias == customer_id:
            return
        gone, kept = self._profiles.get(alias, {}), self._profiles.get(customer_id, {})
        # What the survivor gains (and only that): kept with the alias, so the join can be undone.
        lent = {
            attribute: sorted(set(value["SS"]) - set(kept.get(attribute, {}).get("SS", [])))
            for attribute, value in gone.items()
            if _lendable(attribute) and "SS" in value
        }
        lent = {attribute: values for attribute, values in lent.items() if values}
        apart = set(lent.pop("apart", [])) - {customer_id}
        self._add_to_profile(customer_id, {**{a: set(v) for a, v in lent.items()}, "apart": apart})
        if apart:
            lent["apart"] = sorted(apart)
        # Names a profile from before the upgrade holds in clear are lent but not recorded: the record
        # of a join holds no name (a split leaves them with the survivor until relink rewrites them).
        lent.pop("names", None)
        # The alias pointer and a check that the survivor is not itself absorbed, together: two workers
        # joining the same pair from opposite ends cannot make each other's alias (a cycle).
        values: dict[str, AttributeValueTypeDef] = {
            ":c": {"S": customer_id},
            ":e": {"SS": sorted(set(evidence)) or ["unknown"]},
            ":t": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
            ":l": {"S": json.dumps(lent, sort_keys=True)},
        }
        by_clause = ""
        if by:
            values[":b"] = {"S": by}
            by_clause = ", absorbed_by = :b"
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._profile_key(alias),
                            "UpdateExpression": "SET alias_of = :c, absorbed_on = :e, absorbed_at = :t, "
                            "lent = if_not_exists(lent, :l)" + by_clause,
                            # A person's keep-apart wins, even one decided after this join was planned.
                            "ConditionExpression": "(attribute_not_exists(alias_of) OR alias_of = :c) "
                            "AND NOT contains(apart, :c)",
                            "ExpressionAttributeValues": values,
                        }
                    },
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": self._profile_key(customer_id),
                            "ConditionExpression": "attribute_not_exists(alias_of) AND NOT contains(apart, :a)",
                            "ExpressionAttributeValues": {":a": {"S": alias}},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            self._profiles.clear()
            raise JoinRaced(
                f"customer {alias} or {customer_id} was absorbed or kept apart meanwhile; the message will be retried"
            ) from exc
        self._profiles.pop(alias, None)

    def split(self, alias: str, survivor_was: str | None = None, absorbed_by: str | None = None) -> str:
        """Undo an absorption: ``alias`` answers for itself again, and what the join lent is given back —
        by the survivor, and by every customer the survivor was absorbed into since, as far as it travelled
        on with the survivor's own (``lent`` of each step). Their own keys and names stay. One
        transaction, conditional on every alias pointer read. Returns the survivor it was absorbed into.

        ValueError, and nothing changes, when it is not absorbed; or when it is absorbed into another
        than ``survivor_was`` or by another than ``absorbed_by`` (a relink's undo splits only its own)."""
        self._profiles.clear()
        self._load_profiles([alias])
        item = self._profiles[alias]
        if "alias_of" not in item:
            raise ValueError(f"customer {alias} was not absorbed into another one")
        survivor = item["alias_of"]["S"]
        if survivor_was is not None and survivor != survivor_was:
            raise ValueError(f"customer {alias} is absorbed into {survivor}, not {survivor_was}")
        if absorbed_by is not None and item.get("absorbed_by", {}).get("S") != absorbed_by:
            raise ValueError(f"customer {alias} was absorbed by another decision since")
        carried = {a: set(v) for a, v in json.loads(item.get("lent", {}).get("S", "{}")).items() if v}
        writes: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": self._profile_key(alias),
                    "UpdateExpression": "REMOVE alias_of, absorbed_on, absorbed_at, absorbed_by, lent",
                    "ConditionExpression": "alias_of = :s",
                    "ExpressionAttributeValues": {":s": {"S": survivor}},
                }
            }
        ]
        holder = survivor
        for _ in range(10):  # alias chains are short; the bound guards against a cycle
            self._load_profiles([holder])
            held = self._profiles[holder]
            onward = held.get("alias_of", {}).get("S")
            update: dict[str, Any] = {"TableName": self.table, "Key": self._profile_key(holder)}
            values: dict[str, Any] = {}
            clauses: list[str] = []
            names: dict[str, str] = {}
            if carried:
                clauses.append("DELETE " + ", ".join(f"#a{i} :v{i}" for i in range(len(carried))))
                names.update({f"#a{i}": a for i, a in enumerate(carried)})
                values.update({f":v{i}": {"SS": sorted(v)} for i, v in enumerate(carried.values())})
            if onward is None:
                update["ConditionExpression"] = "attribute_exists(pk) AND attribute_not_exists(alias_of)"
            else:
                update["ConditionExpression"] = "alias_of = :next"
                values[":next"] = {"S": onward}
                lent_on = {a: set(v) for a, v in json.loads(held.get("lent", {}).get("S", "{}")).items()}
                # What this holder passed on with its own when it was absorbed: no longer its to pass on.
                remaining = {a: sorted(v - carried.get(a, set())) for a, v in lent_on.items()}
                clauses.append("SET lent = :lent")
                values[":lent"] = {"S": json.dumps({a: v for a, v in remaining.items() if v}, sort_keys=True)}
                carried = {a: v & lent_on.get(a, set()) for a, v in carried.items()}
                carried = {a: v for a, v in carried.items() if v}
            if names:
                update["ExpressionAttributeNames"] = names
            if values:
                update["ExpressionAttributeValues"] = values
            if clauses:
                update["UpdateExpression"] = " ".join(clauses)
                writes.append({"Update": update})
            else:
                writes.append({"ConditionCheck": update})
            if onward is None:
                break
            holder = onward
        self.client.transact_write_items(TransactItems=writes)  # type: ignore[arg-type]  # built above
        self._profiles.clear()
        return survivor

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
            self._add_to_profile(customer_id, {"apart": set(ids) - {customer_id}})

    def _lift_apart(self, customer_ids: Sequence[str]) -> None:
        ids = sorted({self.canonical(c) for c in customer_ids})
        for customer_id in ids:
            self.client.update_item(
                TableName=self.table,
                Key=self._profile_key(customer_id),
                UpdateExpression="DELETE apart :others",
                ExpressionAttributeValues={":others": {"SS": sorted(set(ids) - {customer_id})}},
            )
        self._profiles.clear()

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
            self._lift_apart(customer_ids)  # a person's merge overrides an earlier keep-apart of these
            for other in others:
                self.absorb(other, survivor, ("confirmed by a person",), by=by)
        else:
            self.keep_apart(customer_ids)
        return self.record_decision(customer_ids, merge, by, ("decided by a person",))

    def record_decision(self, customer_ids: Sequence[str], merge: bool, by: str, evidence: Sequence[str]) -> str:
        """Keep a decision on these customers with their candidate (created if none was raised), so it is
        listed by ``aftersync customers candidates --all`` and not raised again."""
        ids = sorted(customer_ids)
        status = "merged" if merge else "kept_apart"
        values: dict[str, AttributeValueTypeDef] = {
            ":ids": {"SS": ids},
            ":s": {"S": status},
            ":by": {"S": by},
            ":at": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
            ":ev": {"SS": sorted(set(evidence)) or ["unknown"]},
        }
        if merge:
            values[":sv"] = {"S": customer_ids[0]}
        self.client.update_item(
            TableName=self.table,
            Key={"pk": {"S": f"{self.tenant}#merge#{'|'.join(ids)}"}, "sk": {"S": "CANDIDATE"}},
            UpdateExpression="SET customers = :ids, #s = :s, decided_by = :by, decided_at = :at"
            + (", survivor = :sv" if merge else " REMOVE survivor")
            + " ADD evidence :ev",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        return status

    # --- re-resolution of what is stored (``aftersync customers relink``) -----------------------------
    def _scan(
        self, filter_expression: str, values: dict[str, Any], projection: str | None = None, **names: str
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": filter_expression,
            "ExpressionAttributeValues": values,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = {f"#{k}": v for k, v in names.items()}
        if projection:
            kwargs["ProjectionExpression"] = projection
        while True:
            page = self.client.scan(**kwargs)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def shared_keys(self) -> list[set[str]]:
        """The customers of every key held by more than one (a strong key is held by one at most, so
        these are phones a family or one person's partial records share): an operator's scan."""
        items = self._scan(
            "sk = :k AND begins_with(pk, :p) AND size(customers) > :one",
            {":k": {"S": "KEY"}, ":p": {"S": f"{self.tenant}#idkey#"}, ":one": {"N": "1"}},
            "customers",
        )
        return [set(i["customers"]["SS"]) for i in items]

    def legacy_profiles(self) -> dict[str, set[str]]:
        """Customers whose own profile still holds names in clear (written before names were hashed),
        with those names (an absorbed customer's own, not its survivor's)."""
        items = self._scan(
            "sk = :p AND begins_with(pk, :t) AND attribute_exists(#names)",
            {":p": {"S": "PROFILE"}, ":t": {"S": f"{self.tenant}#idprofile#"}},
            "pk, #names",
            names="names",
        )
        return {i["pk"]["S"].split("#idprofile#", 1)[1]: set(i["names"]["SS"]) for i in items}

    def rewrite_legacy_names(self, customer_id: str, clear: set[str], hashing: Callable[[str], NameHashes]) -> bool:
        """Replace the clear names of a profile with their hashes, only if they are still those names
        (a concurrent run or absorption changed them: read again and retry). False: none left."""
        for _ in range(5):
            hashes = NameHashes()
            for name in clear:
                hashes |= hashing(name)
            additions = {a: v for a, v in _additions([], hashes).items() if v}
            sets = ", ".join(f"#a{i} :v{i}" for i in range(len(additions)))
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=self._profile_key(customer_id),
                    UpdateExpression=(f"ADD {sets} " if additions else "") + "REMOVE #names",
                    ConditionExpression="#names = :clear",
                    ExpressionAttributeNames={"#names": "names", **{f"#a{i}": a for i, a in enumerate(additions)}},
                    ExpressionAttributeValues={
                        ":clear": {"SS": sorted(clear)},
                        **{f":v{i}": {"SS": sorted(v)} for i, v in enumerate(additions.values())},
                    },
                )
                self._profiles.pop(customer_id, None)
                return True
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
            item = self.client.get_item(
                TableName=self.table, Key=self._profile_key(customer_id), ConsistentRead=True
            ).get("Item", {})
            if "names" not in item:
                return False  # rewritten meanwhile (another run)
            clear = set(item["names"]["SS"])
        raise RuntimeError(f"customer {customer_id}'s names kept changing; run relink again")

    def record_run(self, run: str, header: dict[str, Any]) -> None:
        """A relink run's header (who, when, counts; rewritten as the run goes and when it is undone)."""
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"{self.tenant}#relink#{run}"},
                "sk": {"S": "RUN"},
                "record": {"S": json.dumps(header, sort_keys=True)},
            },
        )

    def record_join(self, run: str, n: int, join: dict[str, Any]) -> None:
        """A join of a relink run, recorded before it is made: an undo replays them backwards (and skips
        one a crash left unmade)."""
        self.client.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": f"{self.tenant}#relink#{run}"},
                "sk": {"S": f"JOIN#{n:06d}"},
                "record": {"S": json.dumps(join, sort_keys=True)},
            },
        )

    def run_journal(self, run: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """A relink run's header and its joins in order; (None, []) for no such run."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{self.tenant}#relink#{run}"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        header = next((json.loads(i["record"]["S"]) for i in items if i["sk"]["S"] == "RUN"), None)
        joins = [
            json.loads(i["record"]["S"]) for i in sorted(items, key=lambda i: i["sk"]["S"]) if i["sk"]["S"] != "RUN"
        ]
        return header, joins


def _lendable(attribute: str) -> bool:
    return attribute.startswith("kind_") or attribute in {*NAME_ATTRIBUTES, "names", "apart"}


def _additions(keys: Iterable[tuple[str, str]], names: NameHashes) -> dict[str, set[str]]:
    additions: dict[str, set[str]] = {}
    for h, kind in keys:
        if kind in STRONG:
            additions.setdefault(f"kind_{kind}", set()).add(h)
    additions["name_keys"], additions["name_forms"], additions["name_written"] = (
        set(names.keys),
        set(names.forms),
        set(names.written),
    )
    return additions
