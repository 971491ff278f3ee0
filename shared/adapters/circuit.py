"""Per-target circuit breakers and rate limits, kept in the state table (``ops#circuit#…``, ``ops#rate#…``).

Circuit: consecutive failures count up; at the policy's threshold the circuit opens for a while
(doubling with every reopening, up to the retry policy's longest wait), deliveries to that target
wait in its queue meanwhile, and after the pause one delivery decides: success closes it, failure
reopens it. Rate limit: a counter per target and clock second, taken before each request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.delivery.targets import TargetConfig


@dataclass(frozen=True)
class CircuitState:
    failures: int = 0
    open_until: float = 0.0
    opens: int = 0

    def open_for(self, now: float) -> float:
        return max(0.0, self.open_until - now)


class DynamoGuards(DynamoTable):
    @staticmethod
    def _key(kind: str, target: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": f"ops#{kind}#{target}"}, "sk": {"S": sk}}

    def circuit(self, target: str) -> CircuitState:
        item = self.client.get_item(TableName=self.table, Key=self._key("circuit", target, "CIRCUIT")).get("Item")
        if not item:
            return CircuitState()
        return CircuitState(
            failures=int(item.get("failures", {}).get("N", "0")),
            open_until=float(item.get("open_until", {}).get("N", "0")),
            opens=int(item.get("opens", {}).get("N", "0")),
        )

    def failed(self, target: TargetConfig, now: float) -> CircuitState:
        """Count a failure; open the circuit when the threshold is reached. The new state."""
        updated = self.client.update_item(
            TableName=self.table,
            Key=self._key("circuit", target.name, "CIRCUIT"),
            UpdateExpression="ADD failures :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        failures = int(updated["failures"]["N"])
        opens = int(updated.get("opens", {}).get("N", "0"))
        if failures < target.circuit.failures_to_open:
            return CircuitState(failures, float(updated.get("open_until", {}).get("N", "0")), opens)
        pause = min(target.circuit.open_seconds * 2**opens, max(target.retry.max_seconds, target.circuit.open_seconds))
        self.client.update_item(
            TableName=self.table,
            Key=self._key("circuit", target.name, "CIRCUIT"),
            UpdateExpression="SET open_until = :until ADD opens :one",
            ExpressionAttributeValues={":until": {"N": str(now + pause)}, ":one": {"N": "1"}},
        )
        return CircuitState(failures, now + pause, opens + 1)

    def succeeded(self, target: str) -> None:
        """Close the circuit (only written when there was something to reset)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key("circuit", target, "CIRCUIT"),
                UpdateExpression="SET failures = :zero, opens = :zero, open_until = :zero",
                ConditionExpression="failures > :zero",
                ExpressionAttributeValues={":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def take(self, target: TargetConfig, now: float) -> bool:
        """A slot in the target's current second, or False when its rate limit is used up."""
        if target.rate_limit_per_second is None:
            return True
        second = int(now)
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key("rate", target.name, f"SECOND#{second}"),
                UpdateExpression="ADD sent :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(sent) OR sent < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(target.rate_limit_per_second)},
                    ":expires": {"N": str(second + 3600)},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
