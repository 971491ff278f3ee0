"""Every AWS call and every DynamoDB capacity unit one order costs, across all stages.

New orders go through the real handlers the way the Lambda service would drive them: webhooks into
ingest, then the inbox, the orders queue, the state table's stream and two targets' delivery queues
drained in batches as the event source mappings do (SQS batches of 10, stream batches of 100). The
functions' own calls are counted on the default boto3 session; what the event source mappings spend
(SQS receive/delete, stream reads) runs on a separate session and is reported apart, because it is
not the functions' work (SQS receives are billed, stream reads by Lambda are not).

DynamoDB capacity is computed from the items themselves, by DynamoDB's published rules: a standard
write costs 1 WRU per KB of the item (the larger of before and after for an update), a transactional
write 2 per KB; a strongly consistent read 1 RRU per 4 KB (an eventually consistent one half), a
transactional read 2. Item size is the sum of attribute name and value sizes (strings and binary by
length, numbers about one byte per two digits plus one, maps and lists 3 bytes plus one per element).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.adapters.dynamo import item_size, read_units, write_units

BEFORE = Path(__file__).resolve().parent / "baselines" / "order_path_before.json"


def _key_of(table: str, item: dict[str, Any]) -> tuple[str, str]:
    """The item's primary key as one string (``pk`` / ``sk`` or the idempotency table's ``id``)."""
    parts = [str(next(iter(item[k].values()))) for k in ("pk", "sk", "id") if k in item]
    return table, " / ".join(parts) or json.dumps(item, sort_keys=True)[:60]


class Meter:
    """Counts calls by operation and DynamoDB capacity by table and partition key.

    ``peek(table, key)`` reads an item outside the count (for an update's size after the write)."""

    def __init__(self) -> None:
        self.peek: Callable[[str, dict[str, Any]], dict[str, Any] | None] = lambda table, key: None
        self.active = False
        self.lock = threading.Lock()
        self.reset()

    def register(self, session: Any) -> None:
        """On the session before any client is made: a client copies the session's handlers when created."""
        session.events.register("before-parameter-build", self.before)
        session.events.register("after-call", self.after)

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.wru: Counter[str] = Counter()
        self.rru: defaultdict[str, float] = defaultdict(float)
        self.key_writes: Counter[tuple[str, str]] = Counter()
        self.put_events_entries: list[int] = []
        self.s3_put_keys: list[str] = []
        self.pending: dict[int, tuple[str, dict[str, Any]]] = {}

    def before(self, event_name: str, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """``before-parameter-build``: the operation's own parameters (``before-call`` sees the wire form)."""
        if not self.active:
            return
        _, service, operation = event_name.split(".", 2)
        with self.lock:
            self.calls[f"{service}:{operation}"] += 1
            if service in ("events", "eventbridge") and operation == "PutEvents":
                self.put_events_entries.append(len(params.get("Entries", [])))
            if service == "s3" and operation == "PutObject":
                self.s3_put_keys.append(str(params.get("Key", "")))
        if service == "dynamodb":
            context["bench_params"] = (operation, params)

    def after(self, event_name: str, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if not self.active or "bench_params" not in context or "Error" in parsed:
            return
        operation, params = context.pop("bench_params")
        units = self._units(operation, params, parsed)
        with self.lock:
            for table, key, write, read in units:
                self.wru[table] += write
                self.rru[table] += read
                if write:
                    self.key_writes[(table, key)] += 1

    def _units(
        self, operation: str, params: dict[str, Any], parsed: dict[str, Any]
    ) -> list[tuple[str, str, int, float]]:
        out: list[tuple[str, str, int, float]] = []
        if operation == "PutItem":
            t = params["TableName"]
            out.append((t, _key_of(t, params["Item"])[1], write_units(item_size(params["Item"])), 0))
        elif operation in ("UpdateItem", "DeleteItem"):
            t = params["TableName"]
            size = item_size(self.peek(t, params["Key"])) if operation == "UpdateItem" else 0
            out.append((t, _key_of(t, params["Key"])[1], write_units(size), 0))
        elif operation == "BatchWriteItem":
            for t, requests in params["RequestItems"].items():
                for r in requests:
                    item = r.get("PutRequest", {}).get("Item") or r.get("DeleteRequest", {}).get("Key", {})
                    out.append((t, _key_of(t, item)[1], write_units(item_size(item)), 0))
        elif operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                t = body["TableName"]
                if kind == "Put":
                    out.append((t, _key_of(t, body["Item"])[1], write_units(item_size(body["Item"]), True), 0))
                else:
                    size = item_size(self.peek(t, body["Key"])) if kind == "Update" else 0
                    out.append((t, _key_of(t, body["Key"])[1], write_units(size, True), 0))
        elif operation == "GetItem":
            t = params["TableName"]
            out.append((t, "", 0, read_units(item_size(parsed.get("Item")), bool(params.get("ConsistentRead")))))
        elif operation == "BatchGetItem":
            for t, request in params["RequestItems"].items():
                consistent = bool(request.get("ConsistentRead"))
                found = parsed.get("Responses", {}).get(t, [])
                # every key asked is read (a missing item still costs the minimum)
                sizes = [item_size(i) for i in found] + [0] * max(0, len(request["Keys"]) - len(found))
                out.extend((t, "", 0, read_units(s, consistent)) for s in sizes)
        elif operation in ("Query", "Scan"):
            t = params["TableName"]
            size = sum(item_size(i) for i in parsed.get("Items", []))
            out.append((t, "", 0, read_units(size, bool(params.get("ConsistentRead")))))
        return out

    def take(self) -> dict[str, Any]:
        with self.lock:
            taken = {
                "calls": dict(sorted(self.calls.items())),
                "wru": dict(sorted(self.wru.items())),
                "rru": dict(sorted(self.rru.items())),
                "key_writes": self.key_writes.copy(),
                "put_events_entries": list(self.put_events_entries),
                "s3_put_keys": list(self.s3_put_keys),
            }
            self.reset()
        return taken


def measure_order_path(
    meter: Meter,
    functions: Any,
    resources: Any,
    cfg: Any,
    make_webhook: Callable[[int], dict[str, Any]],
    ids: range,
    purge: bool = True,
) -> dict[str, Any]:
    """New orders, webhook to two targets (``crm``, ``erp``), every stage in batches as on AWS."""
    import boto3

    from infra.sandbox.lambda_runtime import sqs_record

    mapping = boto3.session.Session()  # the event source mappings' own calls: not counted
    sqs = mapping.client("sqs")
    streams = mapping.client("dynamodbstreams")
    peek_client = mapping.client("dynamodb")

    def peek(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return peek_client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    meter.peek = peek
    meter.active = True
    esm_calls: Counter[str] = Counter()
    try:
        # Start reading the stream where it is now: earlier benches' records are not this run's.
        stream_arn = resources.stream_arn
        iterators = {
            shard["ShardId"]: streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
            for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        }
        stages: dict[str, dict[str, Any]] = {}
        for url in resources.queue_urls.values() if purge else ():  # what earlier benches left is not this run's
            sqs.purge_queue(QueueUrl=url)  # (at most once a minute per queue)
        meter.take()
        for n in ids:
            assert functions.invoke("ingest", make_webhook(n))["statusCode"] == 200
        stages["ingest"] = meter.take()

        def drain(queue: str, function: str) -> dict[str, Any]:
            """Until the queue holds nothing, delayed messages included (a rate limit defers some)."""
            url, arn = resources.queue_urls[queue], resources.queue_arns[queue]
            deadline = time.monotonic() + 120
            while True:
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
                )
                esm_calls["sqs:ReceiveMessage"] += 1
                batch = messages.get("Messages", [])
                if not batch:
                    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                    left = sum(
                        int(attributes[a])
                        for a in (
                            "ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesDelayed",
                            "ApproximateNumberOfMessagesNotVisible",
                        )
                    )
                    if not left or time.monotonic() > deadline:
                        return meter.take()
                    continue
                result = functions.invoke(function, {"Records": [sqs_record(m, arn, cfg.region) for m in batch]})
                assert not (result or {}).get("batchItemFailures"), result
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
                )
                esm_calls["sqs:DeleteMessageBatch"] += 1

        stages["normalise"] = drain("inbox", "normalise")
        stages["sync"] = drain("orders", "sync")
        records: list[dict[str, Any]] = []
        for iterator in iterators.values():
            while iterator:
                response = streams.get_records(ShardIterator=iterator, Limit=1000)
                got = response.get("Records", [])
                records += [{**r, "eventSourceARN": stream_arn} for r in got]
                iterator = response.get("NextShardIterator") if got else None
        for start in range(0, len(records), 100):
            result = functions.invoke("publish", {"Records": records[start : start + 100]})
            assert not (result or {}).get("batchItemFailures"), result
        stages["publish"] = meter.take()
        for target in ("crm", "erp"):
            stages[f"deliver-{target}"] = drain(f"deliver-{target}", "deliver")
    finally:
        meter.active = False
    orders = len(ids)
    return {"orders": orders, "stages": stages, "esm_calls": dict(esm_calls), "stream_records": len(records)}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Per order: calls by stage and operation, WRU and RRU by table, the hottest written key."""
    orders = result["orders"]
    per_stage: dict[str, dict[str, Any]] = {}
    total_calls = 0.0
    total_wru: Counter[str] = Counter()
    total_rru: defaultdict[str, float] = defaultdict(float)
    hottest: Counter[tuple[str, str]] = Counter()
    entries: list[int] = []
    for stage, taken in result["stages"].items():
        calls = {k: v / orders for k, v in taken["calls"].items()}
        per_stage[stage] = {
            "calls": calls,
            "wru": {k: v / orders for k, v in taken["wru"].items()},
            "rru": {k: v / orders for k, v in taken["rru"].items()},
            "s3_puts": len(taken["s3_put_keys"]) / orders,
            "put_events_calls": len(taken["put_events_entries"]) / orders,
        }
        total_calls += sum(taken["calls"].values())
        total_wru.update(taken["wru"])
        for k, v in taken["rru"].items():
            total_rru[k] += v
        hottest.update(taken["key_writes"])
        entries += taken["put_events_entries"]
    (hot_key, hot_writes), *_ = hottest.most_common(1) or [(("", ""), 0)]
    return {
        "orders": orders,
        "stages": per_stage,
        "calls_per_order": total_calls / orders,
        "wru_per_order": {k: v / orders for k, v in sorted(total_wru.items())},
        "rru_per_order": {k: v / orders for k, v in sorted(total_rru.items())},
        "hottest_key": {"table": hot_key[0], "key": hot_key[1], "writes_per_order": hot_writes / orders},
        "put_events_entries_per_call": (sum(entries) / len(entries)) if entries else 0.0,
        "esm_calls_per_order": {k: v / orders for k, v in sorted(result["esm_calls"].items())},
    }


def report(summaries: dict[str, dict[str, Any]], table_names: dict[str, str]) -> list[str]:
    """``summaries``: ``{"new": ..., "update": ...}`` from ``summarise``."""
    new, update = summaries["new"], summaries["update"]
    lines = [
        "## One order, every stage: AWS calls and DynamoDB capacity",
        "",
        f"{new['orders']} new Shopify orders, each webhook to its delivery at two targets (`crm`: an envelope "
        "webhook; `erp`: a mapped API with a rate limit of 20/s), then an update of each (fulfilled, a note), "
        "through the real handlers in batches as the event source mappings build them (SQS 10, stream 100). "
        "Issue 15's goals: ≤ 10 AWS calls per order delivered to two targets, ≤ 4 WRU per order update.",
        "",
        "| per order | AWS calls, all stages | DynamoDB WRU | DynamoDB RRU | EventBridge entries per PutEvents call |",
        "|---|---:|---:|---:|---:|",
    ]
    before = json.loads(BEFORE.read_text()) if BEFORE.exists() else None
    for label, key, s in (("new order", "new", new), ("order update", "update", update)):
        now = (s["calls_per_order"], sum(s["wru_per_order"].values()), sum(s["rru_per_order"].values()))
        lines.append(
            f"| {label} | {now[0]:.2f} | {now[1]:.2f} | {now[2]:.2f} | {s['put_events_entries_per_call']:.2f} |"
        )
        if before:
            b = before[key]
            was = (b["calls_per_order"], b["wru_per_order"], b["rru_per_order"])
            lines.append(
                f"| {label}, before (`{before['commit']}`) | {was[0]:.2f} | {was[1]:.2f} | {was[2]:.2f} | "
                f"{b['put_events_entries_per_call']:.2f} |"
            )
            lines.append(
                f"| {label}, now / before | {now[0] / was[0]:.2f} | {now[1] / was[1]:.2f} | {now[2] / was[2]:.2f} | |"
            )
    lines += [
        "",
        "The 'before' rows are this same measurement run on the code before issue 15 "
        "(`bench/baselines/order_path_before.json`); call and capacity counts do not depend on the machine.",
        "",
    ]
    for label, s in (("A new order", new), ("An order update", update)):
        lines += _stages(label, s, table_names)
    return lines


def _stages(label: str, summary: dict[str, Any], table_names: dict[str, str]) -> list[str]:
    def calls(table: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in table.items() if v) or "none"

    def name(table: str) -> str:
        return table_names.get(table, table)

    lines = [
        f"{label}, by stage (the functions' own calls, per order):",
        "",
        "| stage | AWS calls (the function's own) | DynamoDB WRU | DynamoDB RRU |",
        "|---|---|---:|---:|",
    ]
    for stage, s in summary["stages"].items():
        lines.append(f"| {stage} | {calls(s['calls'])} | {sum(s['wru'].values()):.2f} | {sum(s['rru'].values()):.2f} |")
    total_wru = sum(summary["wru_per_order"].values())
    lines += [
        f"| **all stages** | **{summary['calls_per_order']:.2f} calls** | **{total_wru:.2f}** | "
        f"**{sum(summary['rru_per_order'].values()):.2f}** |",
        "",
        "WRU by table: "
        + ", ".join(f"{name(k)} {v:.2f}" for k, v in summary["wru_per_order"].items())
        + f". EventBridge entries per PutEvents call: {summary['put_events_entries_per_call']:.2f} (10 at most). "
        f"The most written key: `{summary['hottest_key']['key'] or 'none'}` in "
        f"{name(summary['hottest_key']['table'])}, "
        f"{summary['hottest_key']['writes_per_order']:.3f} writes per order (an item written by every order would "
        "show 1.000 or more). The event source mappings' own calls per order (not the functions'): "
        + calls(summary["esm_calls_per_order"])
        + ".",
        "",
    ]
    return lines


def webhook_maker(secret: str, base: int, update: bool = False) -> Callable[[int], dict[str, Any]]:
    from bench.run import webhook

    return lambda n: webhook(secret, base + n, update=update)[0]
