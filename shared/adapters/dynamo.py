"""A DynamoDB table by name, its client made on first use: the base of the table adapters."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:  # the stubs are a dev dependency: types only, nothing at run time
    from types_boto3_dynamodb.client import DynamoDBClient


class DynamoTable:
    """A DynamoDB table by name, its client made on first use (or given, in tests)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self._client = client

    @cached_property
    def client(self) -> DynamoDBClient:
        return self._client or boto3.client("dynamodb")
