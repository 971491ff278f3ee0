"""What a peak costs in CloudWatch Logs (issue 15): no log line per record at INFO, and one metrics
document per dimension value an invocation saw, not one per record. A sampled invocation (Powertools'
``POWERTOOLS_LOGGER_SAMPLE_RATE``, the environment's ``debug_log_sample_rate``) logs each record.

The real handlers on moto, ten new Shopify orders through every stage to the targets."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from infra.sandbox.demo import generated_order
from tests.integration.conftest import Stack

ORDERS = 10
PER_RECORD = {"webhook accepted", "merged", "delivery"}


def _run(stack: Stack, secret: str, log: Path) -> tuple[Counter[str], Counter[str]]:
    """The orders through the pipeline; the log lines by message, and the deliveries by target."""
    stack.functions.log_file = log
    for n in range(ORDERS):
        create, _, _ = generated_order(n, secret)
        assert stack.post(create)["statusCode"] == 200
    stack.run_until_quiet()
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []  # no file: nothing logged
    messages = Counter(json.loads(line).get("message") for line in lines)
    delivered = Counter(r["target"] for r in stack.target.received if r["status"] == 200)
    return messages, delivered


def _by_target(stack: Stack) -> list[dict[str, Any]]:
    return [doc for doc in stack.functions.emf if doc["function"] == "deliver" and "target" in doc]


def test_a_peak_logs_no_line_per_record_and_one_count_per_target_and_invocation(
    stack: Stack, shopify_secret: str, tmp_path: Path
) -> None:
    messages, delivered = _run(stack, shopify_secret, tmp_path / "functions.log")

    assert delivered["crm"] == ORDERS  # every order reached the CRM
    assert {m: messages[m] for m in PER_RECORD} == {m: 0 for m in PER_RECORD}
    by_target = _by_target(stack)
    totals: Counter[str] = Counter()
    for doc in by_target:
        totals[doc["target"]] += doc["DeliverySucceeded"]
    assert totals == delivered  # the counts add up to the deliveries, target by target
    # one document per target and invocation: as many as the invocations that delivered
    emf = stack.functions.emf
    invocations = [doc for doc in emf if doc["function"] == "deliver" and "target" not in doc and "Freshness" in doc]
    assert len(by_target) == len(invocations)
    assert len(by_target) < sum(delivered.values())  # batches of several deliveries: fewer documents than records


def test_a_sampled_invocation_logs_each_record(
    stack: Stack, shopify_secret: str, tmp_path: Path, sampled: None
) -> None:
    messages, delivered = _run(stack, shopify_secret, tmp_path / "functions.log")

    assert messages["webhook accepted"] == ORDERS
    assert messages["delivery"] == sum(delivered.values())
    lines = [json.loads(line) for line in (tmp_path / "functions.log").read_text(encoding="utf-8").splitlines()]
    merged = Counter(line["entity_type"] for line in lines if line.get("message") == "merged")
    assert merged["order"] == ORDERS
