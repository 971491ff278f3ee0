"""Thin boto3 adapters: archive (S3), queues (SQS), bus (EventBridge), secrets (Secrets Manager)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.errors import ConfigurationError, NotSent


class DynamoTable:
    """A DynamoDB table by name, its client made on first use (or given, in tests)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self._client = client

    @cached_property
    def client(self) -> Any:
        return self._client or boto3.client("dynamodb")


class S3Archive:
    def __init__(self, bucket: str, client: Any = None) -> None:
        self.bucket = bucket
        self._client = client

    @cached_property
    def client(self) -> Any:
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


# Characters SQS refuses in a message body (InvalidMessageContents): outside XML's #x9 | #xA | #xD |
# #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. In a JSON document they can only stand inside strings,
# where a \uXXXX escape means the same character: escaped, the document reads back unchanged.
_NOT_CARRIED = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def carriable_json(document: str) -> str:
    """A JSON document SQS (and EventBridge's SQS targets) can carry: the characters it refuses escaped."""
    return _NOT_CARRIED.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


class SqsQueue:
    """Sends JSON documents (``carriable_json``: nothing SQS refuses reaches it)."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._client = client

    @cached_property
    def client(self) -> Any:
        return self._client or boto3.client("sqs")

    def send(self, body: str, attributes: dict[str, str] | None = None) -> str:
        kwargs: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": carriable_json(body)}
        if attributes:
            kwargs["MessageAttributes"] = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
        return self.client.send_message(**kwargs)["MessageId"]


class EventBus:
    """PutEvents in chunks of 10; any failed entry raises so the caller's message is retried."""

    def __init__(self, name: str, client: Any = None) -> None:
        self.name = name
        self._client = client

    @cached_property
    def client(self) -> Any:
        return self._client or boto3.client("events")

    def put(self, source: str, entries: Sequence[tuple[str, str]]) -> None:
        """``entries`` are ``(detail_type, detail_json)`` pairs."""
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            result = self.client.put_events(
                Entries=[
                    {"EventBusName": self.name, "Source": source, "DetailType": dt, "Detail": carriable_json(detail)}
                    for dt, detail in chunk
                ]
            )
            if result.get("FailedEntryCount"):
                errors = {e.get("ErrorCode") for e in result["Entries"] if e.get("ErrorCode")}
                raise RuntimeError(f"EventBridge rejected {result['FailedEntryCount']} entries: {sorted(errors)}")


class SecretReader:
    """JSON secrets through Powertools parameters, cached for ``max_age`` seconds."""

    def __init__(self, max_age: int, client: Any = None) -> None:
        self.max_age = max_age
        self._client = client

    @cached_property
    def provider(self) -> SecretsProvider:
        return SecretsProvider(boto3_client=self._client or boto3.client("secretsmanager"))

    def get_json(self, name: str) -> dict[str, Any] | None:
        """The secret's JSON object, or ``None`` when no such secret exists."""
        try:
            value = self.provider.get(name, max_age=self.max_age, transform="json")
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__  # Powertools re-raises without `from`
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {name!r} must hold a JSON object")
        return value


ONE_TRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


class CustomerMessages:
    """SMS through SNS (transactional) and e-mail through SES v2, from the target's sender.

    Nobody dedupes a text message, so a send is one request: botocore's retries would repeat a request
    whose first try may have gone out (a 5xx or a dropped connection does not say it did not). Only a
    4xx says the provider refused it: ``NotSent``. Anything else raised leaves the outcome unknown."""

    @cached_property
    def sns(self) -> Any:
        return boto3.client("sns", config=ONE_TRY)

    @cached_property
    def ses(self) -> Any:
        return boto3.client("sesv2", config=ONE_TRY)

    def send(self, notification: Any, sender: str | None) -> str:
        try:
            return self._send(notification, sender)
        except ClientError as exc:
            if int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)) < 500:
                raise NotSent(f"{notification.channel}: {exc.response['Error'].get('Code', 'refused')}") from exc
            raise

    def _send(self, notification: Any, sender: str | None) -> str:
        if notification.channel == "sms":
            attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
            if sender:
                attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender}
            response = self.sns.publish(
                PhoneNumber=notification.to, Message=notification.text, MessageAttributes=attributes
            )
        else:
            response = self.ses.send_email(
                FromEmailAddress=sender,
                Destination={"ToAddresses": [notification.to]},
                Content={
                    "Simple": {
                        "Subject": {"Data": notification.subject, "Charset": "UTF-8"},
                        "Body": {"Text": {"Data": notification.text, "Charset": "UTF-8"}},
                    }
                },
            )
        return str(response["MessageId"])


class MessageVisibility:
    """Hides a received SQS message for a while: a consumer's own retry delay (backoff, an open
    circuit), instead of sleeping in the function. Capped at SQS's 12 hours."""

    MAX_SECONDS = 43_200

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._urls: dict[str, str] = {}

    @cached_property
    def client(self) -> Any:
        return self._client or boto3.client("sqs")

    def hide(self, queue_arn: str, receipt_handle: str, seconds: float) -> int:
        """The seconds the message now stays hidden."""
        if queue_arn not in self._urls:
            *_, account, name = queue_arn.split(":")
            self._urls[queue_arn] = self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        wait = max(1, min(self.MAX_SECONDS, round(seconds)))
        self.client.change_message_visibility(
            QueueUrl=self._urls[queue_arn], ReceiptHandle=receipt_handle, VisibilityTimeout=wait
        )
        return wait


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
