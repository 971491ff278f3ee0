"""The sandbox's moto server keeps connections open (infra/sandbox/moto_server.py): a botocore client's
calls share one TCP connection, each request's body ends where its length says (the next request on the
connection is read whole), and moto answers exactly as its own server does."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from infra.sandbox import moto_server
from infra.sandbox.moto_server import KeepAliveMotoServer, KeepAliveRequestHandler

REGION = "eu-west-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The client address of every connection the servers accept (the keep-alive one's and moto's own)."""
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()
    for handler in (KeepAliveRequestHandler, moto_server.MotoRequestHandler):
        original = handler.setup

        def setup(self: Any, original: Any = original) -> None:
            with lock:
                seen.append(tuple(self.client_address))
            original(self)

        monkeypatch.setattr(handler, "setup", setup)
    return seen


@pytest.fixture
def kept_open() -> Iterator[str]:
    server = KeepAliveMotoServer("127.0.0.1", _free_port()).start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_own() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer("127.0.0.1", port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _client(service: str, endpoint: str) -> Any:
    config = Config(retries={"max_attempts": 1})
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]


def test_two_calls_of_one_client_share_one_connection(kept_open: str, connections: list[tuple[str, int]]) -> None:
    sqs = _client("sqs", kept_open)
    url = sqs.create_queue(QueueName="keepalive-two-calls")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    sqs.send_message(QueueUrl=url, MessageBody="two")
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])
    assert bodies == ["one", "two"]
    assert len(connections) == 1  # four calls, one connection


def test_moto_own_server_opens_a_connection_per_call(moto_own: str, connections: list[tuple[str, int]]) -> None:
    sqs = _client("sqs", moto_own)
    url = sqs.create_queue(QueueName="keepalive-moto-own")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="one")
    assert len(connections) == 2  # (what the keep-alive server changes: werkzeug closes every connection)


def _raw(endpoint: str, requests: list[tuple[str, dict[str, str], bytes]]) -> list[tuple[int, dict[str, str], bytes]]:
    """Each request on one connection of its own; the status, the headers that do not vary, the body."""
    host, port = endpoint.removeprefix("http://").split(":")
    answers = []
    for path, headers, body in requests:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        varying = {"date", "connection", "server", "x-amzn-requestid", "x-amz-crc32"}
        kept = {k.lower(): v for k, v in response.getheaders() if k.lower() not in varying}
        answers.append((response.status, kept, response.read()))
        connection.close()
    return answers


def _dynamodb(target: str, payload: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20261203/{REGION}/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    }
    return "/", headers, json.dumps(payload).encode()


def test_answers_are_the_ones_moto_own_server_gives(kept_open: str, moto_own: str) -> None:
    table = {
        "TableName": "keepalive-same-answers",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    _raw(moto_own, [_dynamodb("CreateTable", table)])  # (moto's backends are the process's: one table)
    item = {"pk": {"S": "a"}, "n": {"N": "1.5"}, "text": {"S": "Zoë 🧾"}}
    key = {"TableName": table["TableName"], "Key": {"pk": {"S": "a"}}}
    requests = [
        _dynamodb("PutItem", {"TableName": table["TableName"], "Item": item}),
        _dynamodb("GetItem", key),
        _dynamodb("GetItem", {"TableName": "keepalive-no-such-table", "Key": {"pk": {"S": "a"}}}),  # a 400
        _dynamodb(
            "UpdateItem", {"TableName": table["TableName"], "Key": {"pk": {"S": "a"}}, "UpdateExpression": "SET"}
        ),
    ]
    ours, theirs = _raw(kept_open, requests), _raw(moto_own, requests)
    assert ours == theirs
    assert [status for status, _, _ in ours] == [200, 200, 400, 400]
    assert json.loads(ours[1][2]) == {"Item": item}


def _read_answer(stream: Any) -> tuple[int, str | None, str]:
    """One HTTP/1.1 answer off a stream (status, its Connection header, body by its Content-Length)."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline().decode()) not in ("\r\n", ""):
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers.get("connection"), stream.read(int(headers["content-length"])).decode()


def test_requests_on_one_connection_are_read_to_their_length(kept_open: str) -> None:
    """Two requests written back to back before either answer is read (the second could be mistaken
    for the rest of the first's body): each is answered, in order, on the same connection."""
    host, port = kept_open.removeprefix("http://").split(":")
    queue = "keepalive-back-to-back"
    wire = b""
    for body in (f"Action=CreateQueue&QueueName={queue}", f"Action=GetQueueUrl&QueueName={queue}"):
        wire += (
            f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Authorization: AWS4-HMAC-SHA256 Credential=testing/20261203/{REGION}/sqs/aws4_request, "
            f"SignedHeaders=host, Signature=0\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(wire)
        stream = raw.makefile("rb")
        answers = [_read_answer(stream) for _ in range(2)]
    assert [status for status, _, _ in answers] == [200, 200]
    assert [connection for _, connection, _ in answers] == [None, None]  # no "Connection: close"
    assert "<CreateQueueResponse" in answers[0][2] and "<GetQueueUrlResponse" in answers[1][2]
    assert f"/{queue}</QueueUrl>" in answers[1][2]


def test_an_object_with_expect_continue_round_trips(kept_open: str, connections: list[tuple[str, int]]) -> None:
    s3 = _client("s3", kept_open)
    s3.create_bucket(Bucket="keepalive-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    body = bytes(range(256)) * 400
    s3.put_object(Bucket="keepalive-bucket", Key="k", Body=io.BytesIO(body))  # a file: sent after "100 Continue"
    assert s3.get_object(Bucket="keepalive-bucket", Key="k")["Body"].read() == body
    assert len(connections) == 1


def test_answers_are_sent_without_waiting_for_an_acknowledgement(
    kept_open: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer's head and body go out in separate sends: on a kept-open connection Nagle's algorithm
    would hold the body until the client acknowledged the head (which clients delay), so it is off."""
    no_delay: list[int] = []
    original = KeepAliveRequestHandler.setup

    def setup(self: Any) -> None:
        original(self)
        no_delay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(KeepAliveRequestHandler, "setup", setup)
    _client("sqs", kept_open).list_queues()
    assert len(no_delay) == 1 and no_delay[0] != 0
