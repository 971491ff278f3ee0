"""WeCom robot over HTTPS and the per-robot minute counter in DynamoDB."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import quote

import urllib3
from botocore.exceptions import ClientError

from shared.adapters.aws import DynamoTable
from shared.wecom import BUSY, MESSAGES_PER_MINUTE


class WeComRobotHttp:
    """POST to ``<base>/cgi-bin/webhook/send?key=<key>``. The key is the credential: it is never
    logged, and neither is the URL that contains it."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    @cached_property
    def pool(self) -> urllib3.PoolManager:
        return urllib3.PoolManager(retries=False)

    def send(self, key: str, payload: dict[str, Any]) -> int:
        try:
            response = self.pool.request(
                "POST",
                f"{self.base_url}/cgi-bin/webhook/send?key={quote(key, safe='')}",
                body=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(total=self.timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError:
            return BUSY
        if response.status != 200:
            return BUSY
        try:
            return int(json.loads(response.data).get("errcode", BUSY))
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
