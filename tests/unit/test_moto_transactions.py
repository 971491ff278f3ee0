"""The sandbox's DynamoDB transactions (infra/sandbox/moto_fidelity.py): a transaction whose condition
fails leaves every item as it was and its stream without the records it began, as moto's whole-table
copy did, while keeping the live table (no copy of it) and the writes of other requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.sandbox import moto_fidelity
from infra.sandbox.resources import create_pk_sk_table


@pytest.fixture
def table() -> Iterator[Any]:
    moto_fidelity.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_pk_sk_table(client, "t", stream=True)
        yield client


def _stream(client: Any) -> tuple[Any, str]:
    streams = boto3.client("dynamodbstreams", region_name="eu-west-1")
    arn = client.describe_table(TableName="t")["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return streams, iterator["ShardIterator"]


def _items(client: Any) -> dict[str, str]:
    return {i["pk"]["S"] + "/" + i["sk"]["S"]: i["v"]["S"] for i in client.scan(TableName="t")["Items"]}


def test_a_failed_transaction_puts_back_its_items_and_its_stream_records(table: Any) -> None:
    table.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"S": "old"}})
    table.put_item(TableName="t", Item={"pk": {"S": "b"}, "sk": {"S": "1"}, "v": {"S": "kept"}})
    streams, iterator = _stream(table)
    with pytest.raises(table.exceptions.TransactionCanceledException):
        table.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                        "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"S": "new"}},
                    }
                },
                {"Put": {"TableName": "t", "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}, "v": {"S": "added"}}}},
                {"Delete": {"TableName": "t", "Key": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "z"}, "sk": {"S": "9"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert _items(table) == {"a/1": "old", "b/1": "kept"}
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [("INSERT", "a"), ("INSERT", "b")]
    # the iterator handed out before the failure still reads the live stream
    table.put_item(TableName="t", Item={"pk": {"S": "d"}, "sk": {"S": "1"}, "v": {"S": "after"}})
    following = streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in following][-1] == ("INSERT", "d")


def test_a_committed_transaction_writes_every_item_and_its_stream_records(table: Any) -> None:
    table.put_item(TableName="t", Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "v": {"S": "old"}})
    table.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                    "UpdateExpression": "SET v = :v",
                    "ConditionExpression": "v = :o",
                    "ExpressionAttributeValues": {":v": {"S": "new"}, ":o": {"S": "old"}},
                }
            },
            {
                "Put": {
                    "TableName": "t",
                    "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}, "v": {"S": "added"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
    )
    assert _items(table) == {"a/1": "new", "c/1": "added"}
    streams, iterator = _stream(table)
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records] == [
        ("INSERT", "a"),
        ("MODIFY", "a"),
        ("INSERT", "c"),
    ]


def test_the_transaction_does_not_copy_the_table() -> None:
    from moto.dynamodb import models

    moto_fidelity.apply()
    sentinel = models.Table.__new__(models.Table)
    assert models.copy.deepcopy(sentinel) is sentinel
    value = {"a": [1]}
    copied = models.copy.deepcopy(value)
    assert copied == value
    assert copied["a"] is not value["a"]
