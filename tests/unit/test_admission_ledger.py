"""The admission record on moto's DynamoDB: who owns a delivery, by one conditional PutItem."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

import shared.adapters.idempotency as ledger_module
from shared.adapters.idempotency import AdmissionLedger, Claim
from shared.errors import DuplicateConflict

TABLE = "admissions"
T0 = 1_800_000_000.0


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[AdmissionLedger]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setattr(ledger_module, "now", lambda: T0)
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield AdmissionLedger(TABLE, ttl_seconds=3600, client=client, lease_seconds=3)


def at(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(ledger_module, "now", lambda: T0 + seconds)


def test_the_first_claim_owns_the_rest_within_the_lease_are_duplicates(ledger: AdmissionLedger) -> None:
    first = ledger.claim("shopify:demo:e1", "a" * 64)
    assert (first.owned, first.seen_before) == (True, False)
    assert ledger.claim("shopify:demo:e1", "a" * 64) == Claim("shopify:demo:e1", owned=False, seen_before=True)
    item = ledger.client.get_item(TableName=TABLE, Key={"id": {"S": "shopify:demo:e1"}})["Item"]
    assert (item["lease_until"]["N"], item["expiration"]["N"]) == (str(int(T0 * 1000) + 3000), str(int(T0) + 3600))


def test_after_the_lease_the_same_body_is_taken_over_and_another_body_is_still_a_conflict(
    ledger: AdmissionLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.claim("k", "a" * 64)
    at(monkeypatch, 3.001)
    with pytest.raises(DuplicateConflict, match="'k' was already received with a different body"):
        ledger.claim("k", "b" * 64)
    again = ledger.claim("k", "a" * 64)
    assert (again.owned, again.seen_before) == (True, True)


def test_past_its_ttl_a_record_is_as_good_as_gone(ledger: AdmissionLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger.claim("k", "a" * 64)
    at(monkeypatch, 3601)  # TTL deletes lazily: the item may still be there
    fresh = ledger.claim("k", "b" * 64)
    assert (fresh.owned, fresh.seen_before) == (True, False)


def test_a_lease_never_outlives_the_invocation(ledger: AdmissionLedger) -> None:
    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 1200

    ledger.register_context(Context())
    ledger.claim("k", "a" * 64)
    item = ledger.client.get_item(TableName=TABLE, Key={"id": {"S": "k"}})["Item"]
    assert item["lease_until"]["N"] == str(int(T0 * 1000) + 1200)


def test_release_deletes_only_its_own_claim(ledger: AdmissionLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = ledger.claim("k", "a" * 64)
    at(monkeypatch, 4)
    theirs = ledger.claim("k", "a" * 64)  # taken over after the lease
    ledger.release(mine)
    assert ledger.client.get_item(TableName=TABLE, Key={"id": {"S": "k"}})["Item"]["owner"]["S"] == theirs.owner
    ledger.release(theirs)
    assert "Item" not in ledger.client.get_item(TableName=TABLE, Key={"id": {"S": "k"}})


def test_release_when_dynamodb_is_unreachable_does_not_hide_the_send_failure() -> None:
    unreachable = boto3.client(
        "dynamodb",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(connect_timeout=0.2, retries={"total_max_attempts": 1}),
    )
    AdmissionLedger(TABLE, 3600, client=unreachable).release(Claim("k", owned=True, seen_before=False, owner="o"))
