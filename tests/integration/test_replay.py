"""Replay from the archive: a quarantined delivery is re-fed; an applied one changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from infra.sandbox.samples import signed
from ops.replay import ReplaySelection, replay
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from tests.integration.conftest import Stack

ORDER = "shopify:820982911946154508"


def test_replaying_applied_deliveries_changes_nothing(stack: Stack, shopify_secret: str) -> None:
    stack.post(signed("shopify_orders_create", shopify_secret))
    stack.post(signed("shopify_orders_updated", shopify_secret))
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    before, _ = store.load("demo", "order", ORDER)
    now = datetime.now(UTC)
    selection = ReplaySelection("shopify", "demo", now - timedelta(hours=1), now + timedelta(minutes=1), ORDER)
    replayed = replay(
        selection, S3Archive(stack.resources.refs.archive_bucket), SqsQueue(stack.resources.queue_urls["inbox"])
    )
    assert sorted(replayed) == sorted(
        [
            "shopify:demo:98880550-7158-44d4-b7cd-2c97c8a091b5",
            "shopify:demo:5f1c9a38-2d1e-4b7f-9d0a-7f0d3c1e2b44",
        ]
    )
    stack.run_until_quiet()
    after, _ = store.load("demo", "order", ORDER)
    assert after == before
    assert [d["target"] for d in stack.target.accepted()] == ["crm", "erp"]  # once each; nothing again


def test_a_time_range_with_nothing_archived_replays_nothing(stack: Stack) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    selection = ReplaySelection("shopify", "demo", past, past + timedelta(hours=2))
    assert (
        replay(selection, S3Archive(stack.resources.refs.archive_bucket), SqsQueue(stack.resources.queue_urls["inbox"]))
        == []
    )
