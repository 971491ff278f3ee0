"""The action ledger: each after-sales action claimed exclusively (a lease) before its call, kept in the
state table (``ops#action#…``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable

Claim = Literal["run", "done", "busy", "uncertain"]


@dataclass(frozen=True)
class ActionClaim:
    """What a claim found: ``run`` (this worker holds the lease and makes the call), ``done`` (the action
    ran, or may have: nothing to do), ``busy`` (another worker holds a live lease until ``until``),
    ``uncertain`` (this claim found a crashed at-most-once action and marked it: nothing to do)."""

    outcome: Claim
    owner: str = ""
    until: float = 0.0


class DynamoActionLedger(DynamoTable):
    """Once per idempotency key, exclusively: ``ops#action#<tenant>#<key>`` is claimed with a lease
    before an action's call and marked done after it; a concurrent copy of the same change finds the
    lease live and comes back later (by then the action is done).

    A lease lasts as long as the claiming invocation can (its remaining time): when it has run out, the
    worker died between its claim and its mark. What happens then depends on the action:
    - ``rerun_after_crash`` (a call whose receiver dedupes on our ``Idempotency-Key``): the next copy
      takes the lease over and calls again; the receiver absorbs a repeat.
    - otherwise (an SMS or an e-mail, which nobody dedupes): the claim itself was the record "about to
      send", so an expired one is marked ``uncertain`` and never sent again; operators see it in the
      item's outcome and the ``ActionUncertain`` metric.
    A worker that knows its call did not happen (the target refused it, the provider raised) releases
    the claim, so a retry can run at once."""

    @staticmethod
    def _key(tenant: str, key: str) -> dict[str, Any]:
        return {"pk": {"S": f"ops#action#{tenant}#{key}"}, "sk": {"S": "ACTION"}}

    def claim(self, tenant: str, key: str, now: float, lease_seconds: float, rerun_after_crash: bool) -> ActionClaim:
        owner, until = uuid.uuid4().hex, now + max(1.0, lease_seconds)
        lease = {":owner": {"S": owner}, ":until": {"N": f"{until:.3f}"}, ":pending": {"S": "pending"}}
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **self._key(tenant, key),
                    "status": {"S": "pending"},
                    "owner": {"S": owner},
                    "lease_until": {"N": f"{until:.3f}"},
                    "rerun_after_crash": {"BOOL": rerun_after_crash},
                    "attempts": {"N": "1"},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
            return ActionClaim("run", owner, until)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        # Released by a worker whose call did not happen, or a lease that ran out on a call that may repeat
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant, key),
                UpdateExpression="SET #s = :pending, #o = :owner, lease_until = :until ADD attempts :one",
                # (a claim from before leases has no lease_until nor rerun_after_crash: its lease ran out,
                # and the caller says whether the action may run again)
                ConditionExpression=(
                    "#s = :released OR (#s = :pending"
                    " AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                    " AND (rerun_after_crash = :yes OR (attribute_not_exists(rerun_after_crash) AND :rerun = :yes)))"
                ),
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues={
                    **lease,
                    ":released": {"S": "released"},
                    ":now": {"N": f"{now:.3f}"},
                    ":rerun": {"BOOL": rerun_after_crash},
                    ":yes": {"BOOL": True},
                    ":one": {"N": "1"},
                },
            )
            return ActionClaim("run", owner, until)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self.client.get_item(TableName=self.table, Key=self._key(tenant, key), ConsistentRead=True)["Item"]
        status, held_until = item["status"]["S"], float(item.get("lease_until", {}).get("N", "0"))
        if status == "pending" and held_until >= now:
            return ActionClaim("busy", until=held_until)
        if status == "released":  # given back between our two tries: its owner's retry claims it again
            return ActionClaim("busy", until=now)
        if status == "pending" and self._mark_uncertain(tenant, key, now):
            return ActionClaim("uncertain")
        return ActionClaim("done")  # done, or uncertain: never run again

    def _mark_uncertain(self, tenant: str, key: str, now: float) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant, key),
                UpdateExpression="SET #s = :uncertain, outcome = :outcome",
                ConditionExpression="#s = :pending AND (attribute_not_exists(lease_until) OR lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":uncertain": {"S": "uncertain"},
                    ":pending": {"S": "pending"},
                    ":now": {"N": f"{now:.3f}"},
                    ":outcome": {"S": "the worker that claimed it stopped before recording a result; not sent again"},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False  # another worker marked it first
        return True

    def done(self, tenant: str, key: str, owner: str, outcome: str) -> None:
        """Record the call's result (only while this worker still holds the claim)."""
        self._finish(tenant, key, owner, "done", outcome)

    def release(self, tenant: str, key: str, owner: str, why: str) -> None:
        """Give the claim back: the call did not happen, and a retry may make it."""
        self._finish(tenant, key, owner, "released", why)

    def _finish(self, tenant: str, key: str, owner: str, status: str, outcome: str) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(tenant, key),
                UpdateExpression="SET #s = :status, outcome = :outcome",
                ConditionExpression="#o = :owner",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":outcome": {"S": outcome[:500]},
                    ":owner": {"S": owner},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
