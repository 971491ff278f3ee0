"""Event sends and archive writes per event, batched against one per record (issue 15, parts 3 and 4).

``python -m bench.archive_events`` drives events through the real normalise, sync, publish and
audit-archive handlers, AWS on a moto server in another process, and counts with botocore hooks:

* Send calls and messages per call, per 100 events: normalise's SendMessageBatch to the domain queues
  and publish's SendMessageBatch to the queues each change's routes pick (neither goes through the bus
  any more; publish sends a change once per queue that takes it). Baseline, in the same run: the same
  events put the way the handlers did before issue 15, one PutEvents call per record (``EventBus.put``
  with one record's events), counted the same way.
* S3 PUTs per event for the raw archive (normalise: one object per inbox batch) and for the audit
  archive (one object per stream batch, entity shard, tenant and type). Baseline: one object per
  envelope and per audit record, as written before — the envelopes and records archived in this run.

Two streams: Shopify orders (one observation per delivery, the common case) and WMS stock batches
(four observations per delivery). Inbox batches are 10 messages (the event source mapping's batch
size), stream batches 100 records.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bench.run import ROOT, bench_environment, machine, start_moto_server, webhook

INBOX_BATCH = 10
STREAM_BATCH = 100
EVENTS = 100  # per stream


class Recorder:
    """Every PutEvents or SendMessageBatch call (its entries) and every S3 PutObject (its key), by the
    function making it."""

    def __init__(self) -> None:
        self.stage = "setup"
        self.put_events: dict[str, list[int]] = {}
        self.put_objects: dict[str, list[str]] = {}
        self.seen_sequences: set[str] = set()

    def __call__(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        if event_name.endswith((".PutEvents", ".SendMessageBatch")):  # (emitted as eventbridge.PutEvents)
            self.put_events.setdefault(self.stage, []).append(len(params["Entries"]))
        elif event_name.endswith(".PutObject"):
            self.put_objects.setdefault(self.stage, []).append(str(params["Key"]))

    def take_events(self, stage: str) -> list[int]:
        return self.put_events.pop(stage, [])

    def take_objects(self, stage: str) -> list[str]:
        return self.put_objects.pop(stage, [])

    @contextmanager
    def counting(self, stage: str) -> Iterator[None]:
        self.stage = stage
        try:
            yield
        finally:
            self.stage = "other"


def wms_webhook(secret: str, n: int, movements: int) -> dict[str, Any]:
    from infra.sandbox.http_servers import api_gateway_event
    from infra.sandbox.samples import signed

    body = {
        "warehouse": "SH-01",
        "batch_no": f"RK-{n}",
        "moved_at": "2026-11-23 10:20:00",
        "movements": [
            {"id": f"MV-{n}-{m}", "item": {"code": f"SKU-{n}-{m}", "name": "滤芯"}, "qty": 1, "type": "RET"}
            for m in range(movements)
        ],
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    hook = signed("wms_stock_movements", secret, body=raw, **{"webhook-id": f"msg_{uuid.uuid4().hex}"})
    return api_gateway_event("POST", "/webhooks/wms/demo", hook.headers, hook.body)


def measure() -> dict[str, Any]:
    import boto3

    moto, endpoint = start_moto_server()
    try:
        bench_environment(endpoint)
        recorder = Recorder()
        boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("provide-client-params.events.PutEvents", recorder)
        session.events.register("provide-client-params.sqs.SendMessageBatch", recorder)
        session.events.register("provide-client-params.s3.PutObject", recorder)

        from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

        from functions.publish.handler import change
        from infra.config import load_environment
        from infra.sandbox.lambda_runtime import Functions, sqs_record
        from infra.sandbox.resources import create_resources
        from infra.wiring import FUNCTIONS, function_environment
        from shared.adapters.events import EventBus
        from shared.adapters.s3 import S3Archive
        from shared.constants import (
            AUDIT_BATCH_PREFIX,
            DETAIL_ENTITY_CHANGED,
            DETAIL_OBSERVED,
            EVENT_SOURCE,
            RAW_BATCH_PREFIX,
        )
        from shared.intake.normalise import normalise_message
        from shared.models import InboxMessage
        from shared.settings import NormaliseSettings

        secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
        cfg = load_environment("dev")
        resources = create_resources(cfg, secrets, visibility_timeout=30)
        for name in FUNCTIONS:
            os.environ.update(function_environment(name, cfg, resources.refs))
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
        functions = Functions(cfg.region, cfg.resource("fn"))
        sqs = boto3.client("sqs")
        # The baseline's events go to a bus of their own with no rules: counted, delivered nowhere.
        boto3.client("events").create_event_bus(Name="bench-baseline")
        baseline_bus = EventBus("bench-baseline")
        field_maps = NormaliseSettings.from_env().field_maps
        archive = S3Archive(resources.refs.archive_bucket)

        def batches(purpose: str, size: int = INBOX_BATCH) -> Iterator[list[dict[str, Any]]]:
            """The queue's messages as the event source mapping hands them over, deleted after."""
            while True:
                got = sqs.receive_message(
                    QueueUrl=resources.queue_urls[purpose], MaxNumberOfMessages=size, VisibilityTimeout=60
                ).get("Messages", [])
                if not got:
                    return
                yield [sqs_record(m, resources.queue_arns[purpose], cfg.region) for m in got]
                for m in got:
                    sqs.delete_message(QueueUrl=resources.queue_urls[purpose], ReceiptHandle=m["ReceiptHandle"])

        streams: dict[str, tuple[int, Callable[[int], dict[str, Any]]]] = {
            "Shopify orders, 1 event a delivery": (
                EVENTS,
                lambda n: webhook(secrets["sources"]["shopify"]["demo"][0], n)[0],
            ),
            "WMS stock batches, 4 events a delivery": (
                EVENTS // 4,
                lambda n: wms_webhook(secrets["sources"]["wms"]["demo"][0], n, 4),
            ),
        }
        results: dict[str, Any] = {}
        for label, (deliveries, make) in streams.items():
            for n in range(deliveries):
                assert functions.invoke("ingest", make(n))["statusCode"] == 200
            records: list[dict[str, Any]] = []
            with recorder.counting("normalise"):
                for batch in batches("inbox"):
                    assert functions.invoke("normalise", {"Records": batch}) == {"batchItemFailures": []}
                    records += batch
            with recorder.counting("normalise baseline"):  # the same events, one call per record
                for record in records:
                    message = InboxMessage.model_validate_json(record["body"])
                    events = normalise_message(message, archive, field_maps)
                    baseline_bus.put(
                        EVENT_SOURCE,
                        [
                            (DETAIL_OBSERVED.format(entity_type=e.entity_type), e.model_dump_json(exclude_unset=True))
                            for e in events
                        ],
                    )
            raw_keys = [k for k in recorder.take_objects("normalise") if k.startswith(RAW_BATCH_PREFIX)]
            results[label] = {
                "deliveries": deliveries,
                "inbox_batches": math.ceil(deliveries / INBOX_BATCH),
                "normalise": recorder.take_events("normalise"),
                "normalise_baseline": recorder.take_events("normalise baseline"),
                "raw_puts": len(raw_keys),
                "raw_shards": len({k[len(RAW_BATCH_PREFIX)] for k in raw_keys}),
            }
            # sync: the observations become state and audit records (the stream's audit inserts)
            for purpose in ("orders", "after-sales"):
                for batch in batches(purpose):
                    functions.invoke("sync", {"Records": batch})
            inserts = audit_inserts(boto3.client("dynamodbstreams"), resources.stream_arn)
            inserts = [r for r in inserts if r["dynamodb"]["SequenceNumber"] not in recorder.seen_sequences]
            recorder.seen_sequences.update(r["dynamodb"]["SequenceNumber"] for r in inserts)
            with recorder.counting("publish"):
                for start in range(0, len(inserts), STREAM_BATCH):
                    batch = inserts[start : start + STREAM_BATCH]
                    assert functions.invoke("publish", {"Records": batch}) == {"batchItemFailures": []}
            with recorder.counting("publish baseline"):  # the same changes, one call per record
                for record in inserts:
                    changed = change(DynamoDBRecord(record))
                    assert changed is not None
                    baseline_bus.put(EVENT_SOURCE, [(DETAIL_ENTITY_CHANGED, changed.model_dump_json())])
            with recorder.counting("audit-archive"):  # the same records expiring 90 days on
                removals = [ttl_removal(r) for r in inserts]
                for start in range(0, len(removals), STREAM_BATCH):
                    batch = removals[start : start + STREAM_BATCH]
                    assert functions.invoke("audit-archive", {"Records": batch}) == {"batchItemFailures": []}
            audit_keys = [k for k in recorder.take_objects("audit-archive") if k.startswith(AUDIT_BATCH_PREFIX)]
            results[label].update(
                {
                    "audit_records": len(inserts),
                    "publish": recorder.take_events("publish"),
                    "publish_baseline": recorder.take_events("publish baseline"),
                    "audit_puts": len(audit_keys),
                }
            )
        return {"machine": machine(), "when": datetime.now(UTC).isoformat(timespec="seconds"), "streams": results}
    finally:
        moto.kill()  # the stand-in holds no state worth a graceful shutdown
        moto.wait(timeout=10)


def audit_inserts(streams: Any, stream_arn: str) -> list[dict[str, Any]]:
    """Every audit insert on the state table's stream, as the event source mapping hands them over."""
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            got = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += got["Records"]
            iterator = got.get("NextShardIterator") if got["Records"] else None
    return [
        {**r, "eventSourceARN": stream_arn, "dynamodb": {**r["dynamodb"], "ApproximateCreationDateTime": 0}}
        for r in records
        if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"].startswith("AUDIT#")
    ]


def ttl_removal(insert: dict[str, Any]) -> dict[str, Any]:
    """The stream record DynamoDB's TTL sweeper makes when the inserted item expires."""
    stream = insert["dynamodb"]
    return {
        **insert,
        "eventName": "REMOVE",
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {**stream, "OldImage": stream["NewImage"], "NewImage": None},
    }


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}×" if baseline else "-"


def report(result: dict[str, Any]) -> list[str]:
    """Markdown lines for bench/RESULTS.md."""
    lines = [
        "## Event sends and archive writes per event (`python -m bench.archive_events`)",
        "",
        f"Real normalise, sync, publish and audit-archive handlers, AWS on a moto server; {result['machine']}, "
        f"{result['when']}. Inbox batches of {INBOX_BATCH} messages, stream batches of {STREAM_BATCH} records. "
        "Baselines measured in the same run: the same events put one PutEvents call per record (as the "
        "handlers did before), and one S3 object per envelope or audit record (as written before).",
        "",
        "| stream | stage | events | SendMessageBatch calls | messages a call (publish: one per queue a change "
        "goes to) | baseline PutEvents calls (one per record) | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in result["streams"].items():
        for stage in ("normalise", "publish"):
            calls, baseline = r[stage], r[f"{stage}_baseline"]
            events = sum(baseline)  # the baseline put each event once
            per_100 = 100 * len(calls) / events
            lines.append(
                f"| {label} | {stage} | {events} | {len(calls)} ({per_100:.0f} per 100 events) | "
                f"{sum(calls) / len(calls) if calls else 0:.1f} | {len(baseline)} "
                f"({100 * len(baseline) / events:.0f} per 100) | "
                f"{ratio(len(calls), len(baseline))} |"
            )
    lines += [
        "",
        "| stream | archive | written | S3 PUTs | PUTs per event | baseline PUTs (one per object before) | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in result["streams"].items():
        events = sum(r["normalise"])
        lines.append(
            f"| {label} | raw (normalise) | {r['deliveries']} envelopes, {events} events | {r['raw_puts']} "
            f"(over {r['raw_shards']} shard prefixes) | {r['raw_puts'] / events:.3f} | {r['deliveries']} | "
            f"{ratio(r['raw_puts'], r['deliveries'])} |"
        )
        lines.append(
            f"| {label} | audit (audit-archive) | {r['audit_records']} records | {r['audit_puts']} | "
            f"{r['audit_puts'] / r['audit_records']:.3f} | {r['audit_records']} | "
            f"{ratio(r['audit_puts'], r['audit_records'])} |"
        )
    lines += [
        "",
        "publish sends a change to every queue whose route takes it: an order to the two order targets "
        "(two messages), a stock movement to none (no target of this environment takes stock), so its calls "
        "can be 0.",
        "",
        "Raw: one object per inbox batch (per hour of receipt). Audit: one object per stream batch, entity "
        "shard (16), tenant and type — so at most 16 per batch for one tenant and type; the deployed stream "
        "batch for audit-archive is 1,000 records (then at most 16 PUTs per tenant and type per 1,000 "
        "records; not measured here).",
        "",
    ]
    return lines


def main() -> int:
    print("\n".join(report(measure())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
