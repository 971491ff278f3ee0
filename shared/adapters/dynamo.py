"""A DynamoDB table by name, its client made on first use: the base of the table adapters."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3


class DynamoTable:
    """A DynamoDB table by name, its client made on first use (or given, in tests)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @cached_property
    def client(self) -> Any:
        return self._client or boto3.client("dynamodb")
