"""The action ledger on moto: a claim is a lease, exclusive while it is live, and what happens when
it runs out depends on whether the receiver dedupes a repeated call."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto import mock_aws

from infra.sandbox import moto_fidelity
from shared.adapters.action_ledger import ActionClaim, DynamoActionLedger

T0 = 1_800_000_000.0


@pytest.fixture
def ledger() -> Iterator[DynamoActionLedger]:
    moto_fidelity.apply()
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoActionLedger("state")


def item(ledger: DynamoActionLedger, key: str) -> dict[str, str]:
    found = ledger.client.get_item(TableName="state", Key=ledger._key("t", key), ConsistentRead=True)["Item"]
    return {name: next(iter(value.values())) for name, value in found.items()}


@pytest.mark.parametrize("rerun_after_crash", [True, False], ids=["http call", "sms or e-mail"])
def test_of_twenty_concurrent_claims_on_one_key_exactly_one_runs(
    ledger: DynamoActionLedger, rerun_after_crash: bool
) -> None:
    start = threading.Barrier(20)

    def claim(_: int) -> str:
        start.wait()
        return ledger.claim("t", "refund:1", T0, 30, rerun_after_crash).outcome

    with ThreadPoolExecutor(20) as pool:
        outcomes = Counter(pool.map(claim, range(20)))
    assert outcomes == {"run": 1, "busy": 19}


def test_a_busy_claim_says_until_when_and_a_done_action_is_never_run_again(ledger: DynamoActionLedger) -> None:
    first = ledger.claim("t", "k", T0, 30, True)
    assert ledger.claim("t", "k", T0 + 5, 30, True) == ActionClaim("busy", until=T0 + 30)
    ledger.done("t", "k", first.owner, "HTTP 200")
    assert ledger.claim("t", "k", T0 + 5, 30, True).outcome == "done"
    assert ledger.claim("t", "k", T0 + 3600, 30, True).outcome == "done"
    assert (item(ledger, "k")["status"], item(ledger, "k")["outcome"]) == ("done", "HTTP 200")


def test_an_expired_lease_on_a_call_the_receiver_dedupes_is_taken_over_and_the_late_owner_cannot_finish(
    ledger: DynamoActionLedger,
) -> None:
    crashed = ledger.claim("t", "k", T0, 30, True)
    assert ledger.claim("t", "k", T0 + 29, 30, True).outcome == "busy"
    takeover = ledger.claim("t", "k", T0 + 31, 30, True)
    assert takeover.outcome == "run" and takeover.owner != crashed.owner
    ledger.done("t", "k", crashed.owner, "HTTP 200 (late)")  # the first worker was only slow: ignored
    assert item(ledger, "k")["status"] == "pending"
    ledger.done("t", "k", takeover.owner, "HTTP 200")
    assert (item(ledger, "k")["status"], item(ledger, "k")["outcome"], item(ledger, "k")["attempts"]) == (
        "done",
        "HTTP 200",
        "2",
    )


def test_an_expired_lease_on_an_sms_is_never_sent_again_but_marked_uncertain_once(ledger: DynamoActionLedger) -> None:
    ledger.claim("t", "sms", T0, 30, False)  # the worker died during the send: was it sent?
    outcomes = [ledger.claim("t", "sms", T0 + 31 + n, 30, False).outcome for n in range(3)]
    assert outcomes == ["uncertain", "done", "done"]
    assert item(ledger, "sms")["status"] == "uncertain"


@pytest.mark.parametrize("rerun_after_crash", [True, False], ids=["http call", "sms or e-mail"])
def test_a_released_claim_runs_at_once_on_the_next_copy(ledger: DynamoActionLedger, rerun_after_crash: bool) -> None:
    first = ledger.claim("t", "k", T0, 30, rerun_after_crash)
    ledger.release("t", "k", first.owner, "HTTP 503")
    again = ledger.claim("t", "k", T0 + 1, 30, rerun_after_crash)
    assert again.outcome == "run"
    assert item(ledger, "k")["attempts"] == "2"


@pytest.mark.parametrize(("rerun_after_crash", "outcome"), [(True, "run"), (False, "uncertain")])
def test_a_claim_left_pending_by_the_previous_ledger_counts_as_a_lease_run_out(
    ledger: DynamoActionLedger, rerun_after_crash: bool, outcome: str
) -> None:
    # Before leases, a claim was {"status": "pending"} alone: its worker may have died after the call
    ledger.client.put_item(TableName="state", Item={**ledger._key("t", "old"), "status": {"S": "pending"}})
    assert ledger.claim("t", "old", T0, 30, rerun_after_crash).outcome == outcome
