"""A text message or an e-mail to a customer is sent at most once: nobody dedupes them.

The provider's client makes one request per send (botocore's retries would repeat a Publish whose
first try may have gone out), and only an answer that says nothing was sent (a 4xx) gives the claim
back for a retry; a 5xx, a timeout or a crash leaves the outcome unknown, and it is never repeated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError

from shared.adapters.messaging import CustomerMessages
from shared.automation.notifications import Notification
from shared.errors import NotSent
from tests.fakes import copy_of_the_change, stage_approved_refund
from tests.integration.conftest import Stack

SMS = Notification(channel="sms", to="+8613800138000", subject="", text="hello", template="t")


class ErrorEndpoint:
    """An SNS endpoint that answers every request with the same error, counting the requests."""

    def __init__(self, status: int, code: str) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                body = (
                    f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>no</Message></Error>"
                    "<RequestId>r</RequestId></ErrorResponse>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"


@pytest.fixture
def failing_sns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The adapter as it is built, its SNS endpoint pointed at an endpoint that fails."""
    servers: list[ErrorEndpoint] = []

    def make(status: int, code: str) -> tuple[ErrorEndpoint, CustomerMessages]:
        endpoint = ErrorEndpoint(status, code)
        servers.append(endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", endpoint.url)
        return endpoint, CustomerMessages()

    yield make
    for server in servers:
        server.server.shutdown()


def test_a_send_the_provider_answers_with_a_5xx_is_one_request_and_its_outcome_stays_unknown(
    failing_sns: Any,
) -> None:
    endpoint, messages = failing_sns(500, "InternalError")
    with pytest.raises(ClientError) as raised:
        messages.send(SMS, None)
    assert not isinstance(raised.value, NotSent)
    assert endpoint.requests == 1  # no retry: the first try may have gone out


def test_a_send_the_provider_refuses_with_a_4xx_was_not_sent(failing_sns: Any) -> None:
    endpoint, messages = failing_sns(400, "Throttling")
    with pytest.raises(NotSent, match="sms: Throttling"):
        messages.send(SMS, None)
    assert endpoint.requests == 1


class Messages:
    """The customer-message port of the automate function, answering as told (the provider's part is
    tested above); it records what would have gone out."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.sent: list[str] = []

    def send(self, notification: Notification, sender: str | None) -> str:
        if self.error is not None:
            raise self.error
        self.sent.append(notification.channel)
        return f"m-{len(self.sent)}"


def _ledger_status(stack: Stack, channel: str) -> str:
    key = f"ops#action#demo#customer-notify:929361463:approved:customer-{channel}"
    item = boto3.client("dynamodb").get_item(
        TableName=stack.resources.refs.state_table, Key={"pk": {"S": key}, "sk": {"S": "ACTION"}}, ConsistentRead=True
    )["Item"]
    return str(item["status"]["S"])


@pytest.mark.parametrize(
    ("error", "status_after", "sent_on_retry"),
    [
        (
            ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}}, "Publish"),
            "uncertain",
            [],
        ),
        (NotSent("sms: Throttling"), "released", ["sms"]),
    ],
    ids=["5xx: unknown, never again", "4xx: not sent, sent on retry"],
)
def test_an_sms_whose_send_failed_is_retried_only_when_it_surely_did_not_go_out(
    stack: Stack,
    shopify_secret: str,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status_after: str,
    sent_on_retry: list[str],
) -> None:
    stage_approved_refund(stack, shopify_secret)
    stack.functions.handler("automate")
    from functions.automate import handler as automate

    failing = Messages(error)
    monkeypatch.setattr(automate, "messages", lambda: failing)
    with pytest.raises(type(error)):
        automate.record_handler(SQSRecord(copy_of_the_change(stack)))
    # The worker is gone; later, past its lease, a copy of the change comes back
    working = Messages(None)
    monkeypatch.setattr(automate, "messages", lambda: working)
    later = automate.time.time() + automate.MAX_LEASE_SECONDS + 1
    monkeypatch.setattr(automate.time, "time", lambda: later)
    automate.record_handler(SQSRecord(copy_of_the_change(stack)))
    assert [c for c in working.sent if c == "sms"] == sent_on_retry
    assert _ledger_status(stack, "sms") == ("done" if sent_on_retry else status_after)
