"""The AWS stand-in's speed fixes (infra/sandbox/moto_fidelity.py): each does what moto did, answers
as moto answered, and no longer repeats the work that made it slow under load (listing moto's package
directory per request, building a JSONPath parser per event, computing every queue attribute per
message received)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import backends, mock_aws
from moto.core import utils as moto_utils
from moto.core.responses import BaseResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import create_backend_app
from moto.sqs import models as sqs_models
from moto.sqs.responses import SQSResponse

from infra.sandbox import moto_fidelity
from infra.sandbox.resources import create_pk_sk_table

REGION = "eu-west-1"


@pytest.fixture(autouse=True)
def applied() -> None:
    moto_fidelity.apply()


def _refused(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the work was done again")


def test_the_service_packages_are_the_ones_moto_lists() -> None:
    listed = list(moto_fidelity._original_list_of_moto_modules())
    assert list(backends.list_of_moto_modules()) == listed
    assert {"dynamodb", "dynamodbstreams", "events", "iam", "s3", "sqs", "sts"} <= set(listed)
    assert "__pycache__" not in listed and "core" in listed  # moto's own filter: directories, no dunders


def test_routing_a_request_does_not_list_the_package_directory_again(monkeypatch: pytest.MonkeyPatch) -> None:
    backends.list_of_moto_modules()  # (the first call lists it, once per process)
    monkeypatch.setattr(backends.os, "listdir", _refused)
    dispatcher = DomainDispatcherApplication(create_backend_app)
    for _ in range(3):
        assert dispatcher.get_backend_for_host("sqs") == "sqs"
        assert dispatcher.get_backend_for_host("dynamodb") == "dynamodb"
    # a host that is no package name still goes on to moto's URL patterns
    assert dispatcher.get_backend_for_host("sqs.eu-west-1.amazonaws.com") == "sqs"


def test_a_response_class_methods_are_listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core import responses

    names = responses.method_names_from_class(SQSResponse)
    assert set(names) == set(moto_utils.method_names_from_class(SQSResponse))
    assert "receive_message" in names and "send_message" in names
    monkeypatch.setattr(moto_fidelity, "_original_method_names", _refused)
    assert responses.method_names_from_class(SQSResponse) == names


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def test_an_input_transformer_path_is_parsed_once_and_still_transforms(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="r", EventPattern=json.dumps({"source": ["shop"]}))
    events.put_targets(
        Rule="r",
        Targets=[
            {
                "Id": "t",
                "Arn": arn,
                "InputTransformer": {
                    "InputPathsMap": {"order": "$.detail.order", "kind": "$.detail-type"},
                    "InputTemplate": '{"order": "<order>", "kind": "<kind>"}',
                },
            }
        ],
    )
    moto_fidelity._jsonpath_parsed_once.cache_clear()
    parsed: list[str] = []
    original = moto_fidelity._original_jsonpath_parse

    def counting(path: str) -> Any:
        parsed.append(path)
        return original(path)

    monkeypatch.setattr(moto_fidelity, "_original_jsonpath_parse", counting)
    for n in (1, 2, 3):
        entry = {"Source": "shop", "DetailType": "order changed", "Detail": json.dumps({"order": f"o{n}"})}
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
    bodies = []
    while len(bodies) < 3:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        assert messages
        bodies += [json.loads(m["Body"]) for m in messages]
    assert sorted(b["order"] for b in bodies) == ["o1", "o2", "o3"]
    assert {b["kind"] for b in bodies} == {"order changed"}
    assert sorted(parsed) == ["$.detail-type", "$.detail.order"]  # once each, for three events


def test_receive_reads_the_retention_period_alone_and_still_drops_expired_messages(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="kept", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="new")
    sqs.send_message(QueueUrl=url, MessageBody="old")
    queue = sqs_models.sqs_backends["123456789012"][REGION].queues["kept"]
    old = next(m for m in queue._messages if m.body == "old")
    old.sent_timestamp -= 61_000  # sent 61 s ago: past the queue's retention
    # computing the queue's attributes (a pass over its messages per count) is no longer part of a receive
    monkeypatch.setattr(sqs_models.Queue, "attributes", property(_refused))
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["new"]


def test_sqs_clock_is_the_epoch_time_moto_computes() -> None:
    import time

    before = time.time()
    now = sqs_models.unix_time()
    assert before <= now <= time.time()
    assert abs(sqs_models.unix_time_millis() - moto_fidelity._original_sqs_unix_time_millis()) < 1_000
    assert abs(now - moto_fidelity._original_sqs_unix_time()) < 1


def _iterator(streams: Any, arn: str) -> str:
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator: str = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    return iterator


def test_stream_records_read_as_moto_serialized_them(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    create_pk_sk_table(dynamodb, "t", stream=True)
    arn = dynamodb.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    item = {
        "pk": {"S": "a"},
        "sk": {"S": "1"},
        "n": {"N": "12.50"},
        "b": {"B": b"\x00\xffbytes"},
        "flag": {"BOOL": True},
        "none": {"NULL": True},
        "m": {"M": {"l": {"L": [{"S": "x"}, {"N": "1"}, {"SS": ["p", "q"]}]}, "bs": {"BS": [b"\x01"]}}},
        "text": {"S": "Zoë 🧾 \u2028"},
    }
    dynamodb.put_item(TableName="t", Item=item)
    dynamodb.update_item(
        TableName="t",
        Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
        UpdateExpression="SET n = :n REMOVE flag",
        ExpressionAttributeValues={":n": {"N": "13"}},
    )
    dynamodb.delete_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "1"}})

    first, second = _iterator(streams, arn), _iterator(streams, arn)
    with monkeypatch.context() as patched:
        patched.setattr(BaseResponse, "serialized", _refused)  # (moto's shape walk: not for GetRecords)
        written_directly = streams.get_records(ShardIterator=first)["Records"]
    monkeypatch.setattr(DynamoDBStreamsHandler, "get_records", moto_fidelity._original_get_records)
    serialized_by_moto = streams.get_records(ShardIterator=second)["Records"]

    assert [r["eventName"] for r in written_directly] == ["INSERT", "MODIFY", "REMOVE"]
    assert written_directly == serialized_by_moto
    assert written_directly[0]["dynamodb"]["NewImage"] == item
    assert written_directly[1]["dynamodb"]["OldImage"] == item


def test_an_empty_stream_read_hands_back_an_iterator_that_reads_on(aws: None) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    dynamodb.create_table(
        TableName="e",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    arn = dynamodb.describe_table(TableName="e")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    empty = streams.get_records(ShardIterator=iterator, Limit=5)
    assert empty["Records"] == []
    dynamodb.put_item(TableName="e", Item={"pk": {"S": "k"}})
    got = streams.get_records(ShardIterator=empty["NextShardIterator"], Limit=5)["Records"]
    assert [r["dynamodb"]["Keys"] for r in got] == [{"pk": {"S": "k"}}]


def test_batch_get_answers_as_moto_serialized_them(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.responses import DynamoHandler

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for name in ("one", "two"):
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    item = {
        "pk": {"S": "a"},
        "n": {"N": "1.5"},
        "b": {"B": b"\x00\xff"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "m": {"M": {"l": {"L": [{"S": "x"}, {"NULL": True}, {"BOOL": False}]}, "ns": {"NS": ["1", "2"]}}},
        "text": {"S": "Zoë 🧾"},
    }
    dynamodb.put_item(TableName="one", Item=item)
    dynamodb.put_item(TableName="two", Item={"pk": {"S": "z"}, "v": {"S": "w"}})
    request = {
        "one": {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "missing"}}]},
        "two": {"Keys": [{"pk": {"S": "z"}}], "ProjectionExpression": "v"},
    }

    with monkeypatch.context() as patched:
        patched.setattr(BaseResponse, "serialized", _refused)  # (moto's shape walk: not for BatchGetItem)
        written_directly = dynamodb.batch_get_item(RequestItems=request)
    monkeypatch.setattr(DynamoHandler, "batch_get_item", moto_fidelity._original_batch_get_item)
    serialized_by_moto = dynamodb.batch_get_item(RequestItems=request)

    for answer in (written_directly, serialized_by_moto):
        answer.pop("ResponseMetadata")
    assert written_directly == serialized_by_moto
    assert written_directly["Responses"] == {"one": [item], "two": [{"v": {"S": "w"}}]}


UPDATE_EXPRESSIONS = [
    "SET #s = :pending, #o = :owner, lease_until = :until ADD attempts :one",
    "SET customer_id = :c, #v = :v, #o0 = :c, #o1 = :c ADD refs :r",
    "SET n = n + :one, l = list_append(if_not_exists(l, :empty), :more), m.deep = :v, l[0] = :v",
    "REMOVE gone, m.other, l[1] SET m.added = :v",
    "ADD counter :one DELETE tags :t",
]


def _tree(node: Any) -> Any:
    """A parsed expression tree as plain data: each node's class and children, and whether each child
    names its node as its parent."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if not isinstance(node, Node):
        return node
    children = [(_tree(c), c.parent is node if isinstance(c, Node) else None) for c in node.children or []]
    return (type(node).__name__, node.type, children)


@pytest.mark.parametrize("expression", UPDATE_EXPRESSIONS)
def test_an_update_expression_tree_is_copied_as_deepcopy_copies_it(expression: str) -> None:
    import copy

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parsed = moto_fidelity._original_update_expression_make(UpdateExpressionParser, expression)
    copied = moto_fidelity.copy_expression_tree(parsed)
    assert _tree(copied) == _tree(copy.deepcopy(parsed)) == _tree(parsed)
    assert copied.parent is None

    def nodes(node: Any) -> list[Any]:
        return [node] + [n for c in node.children or [] if hasattr(c, "children") for n in nodes(c)]

    assert not {id(n) for n in nodes(copied)} & {id(n) for n in nodes(parsed)}  # no node shared


def test_a_tree_that_is_not_plain_is_deep_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parsed = moto_fidelity._original_update_expression_make(UpdateExpressionParser, "SET a = :a, b = :b")
    parsed.children[0].parent = None  # (a parent that is not the node holding it)
    deep: list[Any] = []
    deepcopy = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", lambda v, *a: deep.append(v) or deepcopy(v, *a))
    copied = moto_fidelity.copy_expression_tree(parsed)
    assert deep[0] is parsed
    assert _tree(copied) == _tree(parsed)


def _updates(dynamodb: Any) -> list[Any]:
    """A run of UpdateItems (new item, placeholders, arithmetic, list_append, nested paths, removes,
    sets, a failed condition, malformed expressions): each call's answer, or its error."""
    create_pk_sk_table(dynamodb, "u")
    key = {"pk": {"S": "a"}, "sk": {"S": "1"}}
    values = {
        ":pending": {"S": "pending"},
        ":owner": {"S": "me"},
        ":until": {"N": "10"},
        ":one": {"N": "1"},
        ":c": {"S": "cust"},
        ":v": {"N": "7"},
        ":r": {"SS": ["x", "y"]},
        ":empty": {"L": []},
        ":more": {"L": [{"S": "m1"}, {"S": "m2"}]},
        ":t": {"SS": ["x"]},
    }
    names = {"#s": "status", "#o": "owner", "#v": "version", "#o0": "o0", "#o1": "o1"}
    calls = [
        ("SET m = :empty_map", {}),
        ("SET #s = :pending, #o = :owner, lease_until = :until ADD attempts :one", {}),
        ("SET customer_id = :c, #v = :v, #o0 = :c, #o1 = :c ADD refs :r", {}),
        ("SET n = :one, l = list_append(if_not_exists(l, :empty), :more), m.deep = :v", {}),
        ("SET n = n + :one, l[0] = :v", {}),
        ("SET n = n + :one, l[0] = :v", {}),  # (the same text again: parsed once)
        ("REMOVE #o1, m.deep, l[1] SET m.added = :v", {}),
        ("ADD tally :one DELETE refs :t", {}),
        ("SET #s = :c", {"ConditionExpression": "#s = :owner"}),  # fails its condition
        ("SET #s = :nope", {}),  # a value not given
        ("SET = :v", {}),  # not an expression
        ("SET a = :v, a = :one", {}),  # two updates of one path
        ("ADD attempts :c", {}),  # ADD of a string
    ]
    answers: list[Any] = []
    for expression, extra in calls:
        used = set(re.findall(r"[#:]\w+", expression + " " + extra.get("ConditionExpression", "")))
        used_names = {k: v for k, v in names.items() if k in used}
        used_values = {k: v for k, v in {**values, ":empty_map": {"M": {}}}.items() if k in used}
        request: dict[str, Any] = {"TableName": "u", "Key": key, "UpdateExpression": expression, **extra}
        request["ReturnValues"] = "ALL_NEW"
        if used_names:
            request["ExpressionAttributeNames"] = used_names
        if used_values:
            request["ExpressionAttributeValues"] = used_values
        try:
            answer = dynamodb.update_item(**request)
            answer.pop("ResponseMetadata")
            answers.append(answer)
        except dynamodb.exceptions.ClientError as error:
            answers.append((error.response["Error"]["Code"], error.response["Error"]["Message"]))
    answers.append(dynamodb.get_item(TableName="u", Key=key)["Item"])
    return answers


def test_updates_answer_as_moto_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    moto_fidelity._update_expression_parsed_once.cache_clear()
    with mock_aws():
        patched = _updates(boto3.client("dynamodb", region_name=REGION))
    with monkeypatch.context() as undone:
        undone.setattr(UpdateExpressionParser, "make", classmethod(moto_fidelity._original_update_expression_make))
        undone.setattr(validators.Validator, "__init__", moto_fidelity._original_validator_init)
        with mock_aws():
            moto_own = _updates(boto3.client("dynamodb", region_name=REGION))
    assert patched == moto_own
    assert not any(isinstance(a, tuple) for a in patched[:8])  # the well-formed ones applied
    assert patched[-1] == {
        **{"pk": {"S": "a"}, "sk": {"S": "1"}, "status": {"S": "pending"}, "owner": {"S": "me"}},
        **{"lease_until": {"N": "10"}, "attempts": {"N": "1"}, "customer_id": {"S": "cust"}, "version": {"N": "7"}},
        **{"o0": {"S": "cust"}, "refs": {"SS": ["y"]}, "n": {"N": "3"}, "tally": {"N": "1"}},
        **{"l": {"L": [{"N": "7"}]}, "m": {"M": {"added": {"N": "7"}}}},
    }
    assert [a[0] for a in patched[8:13]] == [
        "ConditionalCheckFailedException",
        "ValidationException",
        "ValidationException",
        "ValidationException",
        "ValidationException",
    ]


def test_an_update_expression_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    moto_fidelity._update_expression_parsed_once.cache_clear()
    parsed: list[str] = []
    original = moto_fidelity._original_update_expression_make

    def counting(cls: Any, text: str) -> Any:
        parsed.append(text)
        return original(cls, text)

    monkeypatch.setattr(moto_fidelity, "_original_update_expression_make", counting)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_pk_sk_table(dynamodb, "p")
        for n in range(3):
            dynamodb.update_item(
                TableName="p",
                Key={"pk": {"S": f"k{n}"}, "sk": {"S": "1"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
        items = dynamodb.scan(TableName="p")["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["k0", "k1", "k2"] and {i["n"]["N"] for i in items} == {"1"}
    assert parsed == ["ADD n :one"]  # three calls, each parsing it twice in moto: once here
    assert UpdateExpressionParser.make("ADD n :one") is UpdateExpressionParser.make("ADD n :one")
