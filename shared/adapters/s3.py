"""The archive bucket (S3): raw envelopes and archived audit records."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_s3.client import S3Client


class S3Archive:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @cached_property
    def client(self) -> S3Client:
        return self._client or boto3.client("s3")

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(o["Key"] for o in page.get("Contents", []))
        return found
