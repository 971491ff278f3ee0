"""Customer messages: SMS through SNS, e-mail through SES v2, one request per send."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.errors import ConfigurationError, NotSent

if TYPE_CHECKING:  # the boto3 stubs are a dev dependency: types only
    from types_boto3_sesv2.client import SESV2Client
    from types_boto3_sns.client import SNSClient
    from types_boto3_sns.type_defs import MessageAttributeValueTypeDef

ONE_TRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


class CustomerMessages:
    """SMS through SNS (transactional) and e-mail through SES v2, from the target's sender.

    Nobody dedupes a text message, so a send is one request: botocore's retries would repeat a request
    whose first try may have gone out (a 5xx or a dropped connection does not say it did not). Only a
    4xx says the provider refused it: ``NotSent``. Anything else raised leaves the outcome unknown."""

    @cached_property
    def sns(self) -> SNSClient:
        return boto3.client("sns", config=ONE_TRY)

    @cached_property
    def ses(self) -> SESV2Client:
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
            attributes: dict[str, MessageAttributeValueTypeDef] = {
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
            }
            if sender:
                attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": sender}
            published = self.sns.publish(
                PhoneNumber=notification.to, Message=notification.text, MessageAttributes=attributes
            )
            return str(published["MessageId"])
        if not sender:  # the config refuses an e-mail target without one; SES would refuse it too
            raise ConfigurationError("an e-mail is sent from its target's sender, and this target has none")
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
