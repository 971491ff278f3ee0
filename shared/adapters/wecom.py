"""WeCom robot over HTTPS (through the SSRF guard) and the per-robot minute counter in DynamoDB."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from shared.adapters.aws import DynamoTable
from shared.adapters.http import SafeHttp
from shared.wecom import BUSY, MESSAGES_PER_MINUTE


class WeComRobotHttp:
    """POST to ``<base>/cgi-bin/webhook/send?key=<key>`` through ``SafeHttp`` like every outbound call:
    an API base resolving to a metadata, private or otherwise non-public address raises
    ``TargetRefused`` before anything is sent. The key is the credential: it is never logged, and
    neither is the URL that contains it. ``deadline`` (``time.monotonic()`` based; see ``within``)
    bounds each send besides ``timeout``; no whole answer in time counts as busy."""

    def __init__(
        self, base_url: str, timeout: float = 5.0, http: SafeHttp | None = None, deadline: float | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = http if http is not None else SafeHttp()
        self.deadline = deadline

    def within(self, deadline: float | None) -> WeComRobotHttp:
        """The same client (and connections), every send also ending by ``deadline``."""
        return WeComRobotHttp(self.base_url, self.timeout, self.http, deadline)

    def send(self, key: str, payload: dict[str, Any]) -> int:
        response = self.http.post(
            f"{self.base_url}/cgi-bin/webhook/send?key={quote(key, safe='')}",
            json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            {"Content-Type": "application/json"},
            self.timeout,
            deadline=self.deadline,
        )
        if response.status != 200:
            return BUSY
        try:
            return int(json.loads(response.text).get("errcode", BUSY))
        except (ValueError, AttributeError):
            return BUSY


class DynamoMinuteSlots(DynamoTable):
    """At most ``limit`` messages per robot per clock minute: one conditional counter item per minute
    in the state table (``ops#wecom#<robot>`` / ``WINDOW#<minute>``), expired by the table's TTL."""

    def __init__(self, table: str, limit: int = MESSAGES_PER_MINUTE, client: Any = None) -> None:
        super().__init__(table, client)
        self.limit = limit

    def take(self, robot: str, now: datetime) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": f"ops#wecom#{robot}"}, "sk": {"S": f"WINDOW#{now:%Y%m%d%H%M}"}},
                UpdateExpression="ADD sent :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(sent) OR sent < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(self.limit)},
                    ":expires": {"N": str(int((now + timedelta(hours=1)).timestamp()))},
                },
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
