"""Ingest dedupe on the platform's event id with Powertools idempotency in DynamoDB.

The first delivery of a dedupe key runs the action (archive + enqueue) and stores its result; a
retry or duplicate of the same key returns the stored result without running it again. The same
key with a different body is a conflict (Powertools payload validation on ``body_sha256``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from shared.errors import DuplicateConflict

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_dynamodb.client import DynamoDBClient

DUPLICATE_FLAG = "duplicate"


def _mark_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, DUPLICATE_FLAG: True}


class IdempotentOnce:
    def __init__(self, table: str, ttl_seconds: int, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.config = IdempotencyConfig(
            event_key_jmespath="dedupe_key",
            payload_validation_jmespath="body_sha256",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=ttl_seconds,
            response_hook=_mark_duplicate,
        )
        self._client = client

    @cached_property
    def persistence(self) -> DynamoDBPersistenceLayer:
        return DynamoDBPersistenceLayer(table_name=self.table, boto3_client=self._client or boto3.client("dynamodb"))

    def register_context(self, context: Any) -> None:
        """Lets Powertools bound an in-progress record by the invocation's remaining time."""
        self.config.register_lambda_context(context)

    def run(self, envelope: dict[str, Any], action: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
        """Run ``action`` once per ``envelope['dedupe_key']``; returns ``(result, was_duplicate)``."""

        @idempotent_function(data_keyword_argument="envelope", persistence_store=self.persistence, config=self.config)
        def store_once(envelope: dict[str, Any]) -> dict[str, Any]:
            return action()

        try:
            result = store_once(envelope=envelope)
        except IdempotencyValidationError as exc:
            raise DuplicateConflict(
                f"event {envelope['dedupe_key']!r} was already received with a different body"
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise DuplicateConflict(
                f"event {envelope['dedupe_key']!r} is being processed right now; retry later"
            ) from exc
        return result, bool(result.pop(DUPLICATE_FLAG, False))
