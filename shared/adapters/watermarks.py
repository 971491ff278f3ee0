"""Scheduled pulls' watermarks, kept in the state table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.adapters.dynamo import DynamoTable


class ReconcileWatermarks(DynamoTable):
    """The newest change time each (source, tenant) pull has seen, in the state table
    (``ops#reconcile#<source>#<tenant>`` / ``watermark``), with the counts of the run that moved it."""

    @staticmethod
    def key(source: str, tenant: str) -> dict[str, Any]:
        return {"pk": {"S": f"ops#reconcile#{source}#{tenant}"}, "sk": {"S": "watermark"}}

    def load(self, source: str, tenant: str) -> datetime | None:
        item = self.client.get_item(TableName=self.table, Key=self.key(source, tenant), ConsistentRead=True).get("Item")
        return datetime.fromisoformat(item["newest"]["S"]) if item else None

    def last_run(self, source: str, tenant: str) -> dict[str, Any] | None:
        """What operators see of the last run that saved: ``newest``, ``saved_at`` and its counts."""
        item = self.client.get_item(TableName=self.table, Key=self.key(source, tenant), ConsistentRead=True).get("Item")
        if not item:
            return None
        counts = {k: int(v["N"]) for k, v in item["run"]["M"].items()}
        return {"newest": item["newest"]["S"], "saved_at": item["saved_at"]["S"], **counts}

    def save(self, source: str, tenant: str, newest: datetime, run: dict[str, int]) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                **self.key(source, tenant),
                "newest": {"S": newest.isoformat()},
                "saved_at": {"S": datetime.now(UTC).isoformat()},
                "run": {"M": {k: {"N": str(v)} for k, v in run.items()}},
            },
        )
