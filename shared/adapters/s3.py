"""The archive bucket (S3): raw envelopes and archived audit records.

Batch objects are gzip JSON Lines: one document per line, written in one PutObject per batch."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_s3.client import S3Client

GZIP_MAGIC = b"\x1f\x8b"


def encode_lines(lines: Sequence[str]) -> bytes:
    """Gzip JSON Lines. ``mtime=0``: the same lines give the same bytes (a retried batch rewrites its
    object identically)."""
    for line in lines:
        if "\n" in line or "\r" in line:
            raise ValueError("a JSON Lines document must be one line")
    return gzip.compress("".join(f"{line}\n" for line in lines).encode("utf-8"), mtime=0)


def decode_lines(body: bytes) -> list[str]:
    text = (gzip.decompress(body) if body[:2] == GZIP_MAGIC else body).decode("utf-8")
    return [line for line in text.split("\n") if line]


class S3Archive:
    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @cached_property
    def client(self) -> S3Client:
        return self._client or boto3.client("s3")

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def put_lines(self, key: str, lines: Sequence[str]) -> None:
        """One batch object: ``lines`` (JSON documents) as gzip JSON Lines."""
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=encode_lines(lines),
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
        )

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def lines(self, key: str) -> list[str]:
        """The documents of a batch object (gzip JSON Lines; a plain one reads too)."""
        return decode_lines(self.get(key))

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(o["Key"] for o in page.get("Contents", []))
        return found
