"""Secrets Manager through Powertools parameters: JSON secrets, cached.

Safe for a container's threads (a batch's records on threads): the reads of one secret take its lock,
so the threads that find it missing or expired wait for one read instead of each making their own.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from shared.errors import ConfigurationError

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_secretsmanager.client import SecretsManagerClient


class SecretReader:
    """JSON secrets through Powertools parameters, cached for ``max_age`` seconds."""

    def __init__(self, max_age: int, client: SecretsManagerClient | None = None) -> None:
        self.max_age = max_age
        self._client = client
        self._locks: dict[str, threading.Lock] = {}  # secret name -> its lock

    @cached_property
    def provider(self) -> SecretsProvider:
        return SecretsProvider(boto3_client=self._client or boto3.client("secretsmanager"))

    def get_json(self, name: str) -> dict[str, Any] | None:
        """The secret's JSON object, or ``None`` when no such secret exists."""
        try:
            with self._locks.setdefault(name, threading.Lock()):  # a cached read holds it for microseconds
                value = self.provider.get(name, max_age=self.max_age, transform="json")
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__  # Powertools re-raises without `from`
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {name!r} must hold a JSON object")
        return value
