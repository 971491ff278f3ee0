"""How a target's limits are sized from its config: its queue's concurrency and the slots a container
leases at once (``TargetConfig.queue_concurrency`` / ``token_block``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from infra.wiring import targets_json
from shared.delivery.targets import TargetConfig


def target(**fields: Any) -> TargetConfig:
    return TargetConfig.model_validate(
        {"name": "erp", "url": "https://erp.example.com/changes", "entity_types": ["order"], **fields}
    )


@pytest.mark.parametrize(
    ("fields", "concurrency", "block"),
    [
        ({}, None, 0),  # no limit: no cap, no slots to lease
        ({"max_concurrency": 8}, 8, 0),  # a cap without a limit
        ({"rate_limit_per_second": 20}, 2, 10),  # 10 a container: 2, each leasing half a second's slots
        ({"rate_limit_per_second": 5}, 2, 3),  # SQS's floor of 2 containers; blocks rounded up
        ({"rate_limit_per_second": 1000}, 100, 10),
        ({"rate_limit_per_second": 10000}, 1000, 10),
        ({"rate_limit_per_second": 25, "max_concurrency": 4}, 4, 7),  # the target's own cap wins
        ({"rate_limit_per_second": 20, "max_concurrency": 20}, 20, 1),  # one slot a lease: the old write per send
    ],
)
def test_a_rate_limited_targets_queue_and_blocks_are_sized_from_its_limit(
    fields: dict[str, Any], concurrency: int | None, block: int
) -> None:
    config = target(**fields)
    assert (config.queue_concurrency(), config.token_block()) == (concurrency, block)


def test_max_concurrency_is_for_targets_with_a_queue_and_within_what_sqs_allows() -> None:
    with pytest.raises(ValidationError, match="max_concurrency: only for a target with a queue of changes"):
        target(push_changes=False, max_concurrency=4)
    for wrong in (1, 1001):
        with pytest.raises(ValidationError, match="max_concurrency"):
            target(max_concurrency=wrong)


def test_the_circuit_cache_is_configurable_and_travels_to_the_function() -> None:
    config = target(rate_limit_per_second=20, max_concurrency=4, circuit={"cache_seconds": 0})
    [back] = [TargetConfig.model_validate(t) for t in json.loads(targets_json([config]))]
    assert back == config and back.circuit.cache_seconds == 0
    assert target().circuit.cache_seconds == 5  # the default: 5 s
    with pytest.raises(ValidationError, match="cache_seconds"):
        target(circuit={"cache_seconds": 61})
