"""Per-record costs of every stage, measured with the project's handlers on moto, for the capacity model.

``python -m bench.capacity_inputs`` drives a promo-like order stream (new orders, each from its own
customer, then an update of each) through the real ingest, normalise, sync, publish, project (the
customer view), deliver and audit-archive handlers, and writes ``bench/capacity_inputs.json``, which
``aftersync capacity`` reads (``ops/capacity.py``). Per stage and per record it records:

* CPU (``time.process_time`` of the handler's process; moto runs in another process, and the probe's own
  look-ups below are subtracted);
* AWS calls by operation (botocore ``before-call``), and HTTP calls to targets;
* DynamoDB write and read units per table, from the item sizes the calls carried or found (DynamoDB's
  size rules: 1 KB a write unit, 4 KB a read unit, transactions twice, eventually consistent reads half),
  and the partition key touched most often with its units;
* PutEvents entries, S3 PUTs per top folder with how their keys spread (ascending keys land on one
  partition), S3 GETs, and the bytes each function logs.

The event source mappings' own work (receiving and deleting SQS messages, reading the stream) is done
with a separate boto3 session, so it is not counted against a stage; the model adds it from the batch
sizes. ``measure()`` / ``report()`` follow the bench's module shape; ``build_inputs()`` turns a
measurement into the JSON document; the lead's ``bench/run.py`` may call ``measure()`` and
``write_inputs()``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.lookup import project_reads
from bench.run import ROOT, CallCounter, bench_environment, machine, start_moto_server
from shared.adapters.concurrent_records import makespan
from shared.adapters.dynamo import item_size, read_units, write_units

OUTPUT = ROOT / "bench" / "capacity_inputs.json"
ORDERS = int(os.environ.get("BENCH_CAPACITY_ORDERS", "100"))  # moto deep-copies a table per transaction on it
SIZED_FOR = "prod"  # per-record figures are taken at this environment's batch sizes (per-batch calls divide by them)
DELIVER_TARGET = "crm"  # prod's target: an order webhook, no rate limit
COMMAND = "python -m bench.capacity_inputs"


# ---- the probe: what each call touched ----------------------------------------------------------------
@dataclass
class Touch:
    table: str
    pk: str
    wru: float = 0.0
    rru: float = 0.0


@dataclass
class StageTally:
    records: int = 0
    invocations: int = 0
    cpu: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    touches: list[Touch] = field(default_factory=list)
    entries: int = 0
    s3_keys: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    s3_gets: int = 0
    log_bytes: int = 0
    http: int = 0


class Probe:
    """botocore hooks on the handlers' session: DynamoDB units and partition keys, PutEvents entries and S3
    keys per call. Item sizes it cannot see in a call (an update's result, an overwritten item) it reads
    with its own client, whose calls and CPU are not the stage's."""

    def __init__(self, side: Any, tables: dict[str, str]) -> None:
        self.side = side  # dynamodb client of another session
        self.tables = tables  # physical name -> purpose
        self.keys: dict[str, list[str]] = {}
        self.tally = StageTally()
        self.own_cpu = 0.0

    def _key_names(self, table: str) -> list[str]:
        if table not in self.keys:
            schema = self.side.describe_table(TableName=table)["Table"]["KeySchema"]
            self.keys[table] = [k["AttributeName"] for k in schema]
        return self.keys[table]

    def _stored(self, table: str, key_or_item: dict[str, Any]) -> int:
        key = {k: key_or_item[k] for k in self._key_names(table)}
        return item_size(self.side.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item"))

    def _pk(self, table: str, key_or_item: dict[str, Any]) -> str:
        value = key_or_item[self._key_names(table)[0]]
        return str(next(iter(value.values())))

    def _cpu(self) -> float:
        # this thread's CPU only: sync merges a batch's records on worker threads, and the process's clock
        # would count their work as the probe's while a probe look-up waits on moto
        return time.thread_time()

    def _touch(self, table: str, key: dict[str, Any], wru: float = 0.0, rru: float = 0.0) -> None:
        self.tally.touches.append(Touch(self.tables.get(table, table), self._pk(table, key), wru, rru))

    def _writes(self, params: dict[str, Any], operation: str) -> list[tuple[str, dict[str, Any], int, bool]]:
        """(table, key or item, size now, transactional) of each item a write will change."""
        found = []
        if operation == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (_, body), *_ = entry.items()
                item = body.get("Item") or body.get("Key")
                found.append((body["TableName"], item, self._stored(body["TableName"], item), True))
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    item = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
                    found.append((table, item, self._stored(table, item), False))
        else:
            item = params.get("Item") or params["Key"]
            found.append((params["TableName"], item, self._stored(params["TableName"], item), False))
        return found

    def before(self, event_name: str, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        start = self._cpu()
        _, service, operation = event_name.split(".", 2)
        try:
            if service == "dynamodb" and operation in (
                "PutItem",
                "UpdateItem",
                "DeleteItem",
                "TransactWriteItems",
                "BatchWriteItem",
            ):
                context["capacity_probe"] = (operation, params, self._writes(params, operation))
            elif service == "dynamodb":
                context["capacity_probe"] = (operation, params, [])
            elif service in ("events", "eventbridge") and operation == "PutEvents":
                self.tally.entries += len(params["Entries"])
            elif service == "s3" and operation == "PutObject":
                key = params["Key"]
                self.tally.s3_keys[key.split("/", 1)[0] + "/"].append(key)
            elif service == "s3" and operation == "GetObject":
                self.tally.s3_gets += 1
        finally:
            self.own_cpu += self._cpu() - start

    def after(self, event_name: str, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        start = self._cpu()
        try:
            probe = context.pop("capacity_probe", None)
            if probe is None:
                return
            operation, params, writes = probe
            for table, item, before, transactional in writes:  # the larger of the item before and after
                self._touch(table, item, wru=write_units(max(before, self._stored(table, item)), transactional))
            if operation == "GetItem":
                self._touch(
                    params["TableName"],
                    params["Key"],
                    rru=read_units(item_size(parsed.get("Item")), bool(params.get("ConsistentRead"))),
                )
            elif operation == "BatchGetItem":
                for table, request in params["RequestItems"].items():
                    items = parsed.get("Responses", {}).get(table, [])
                    names = self._key_names(table)
                    by_key = {tuple(json.dumps(i[n], sort_keys=True) for n in names): i for i in items}
                    for key in request["Keys"]:
                        item = by_key.get(tuple(json.dumps(key[n], sort_keys=True) for n in names))
                        self._touch(table, key, rru=read_units(item_size(item), bool(request.get("ConsistentRead"))))
            elif operation == "TransactGetItems":
                for entry, response in zip(params["TransactItems"], parsed.get("Responses", []), strict=False):
                    get = entry["Get"]
                    self._touch(
                        get["TableName"], get["Key"], rru=read_units(item_size(response.get("Item")), True, True)
                    )
            elif operation in ("Query", "Scan"):
                size = sum(item_size(i) for i in parsed.get("Items", []))
                table = params["TableName"]
                units = read_units(size, bool(params.get("ConsistentRead")))
                items = parsed.get("Items") or []
                if items:
                    self._touch(table, items[0], rru=units)
        finally:
            self.own_cpu += self._cpu() - start


# ---- the run ---------------------------------------------------------------------------------------------
def _order_webhook(secret: str, n: int, update: bool) -> dict[str, Any]:
    """A Shopify order webhook; each order has its own customer (a promo's buyers are many people)."""
    from infra.sandbox.http_servers import api_gateway_event
    from infra.sandbox.samples import body_bytes, load_sample
    from shared.sources import shopify

    sample = load_sample("shopify_orders_create")
    body = sample["body"]
    body["id"] = 930000000000000000 + n
    body.update({"name": f"#{100000 + n}", "order_number": 100000 + n})  # each order its own number, as in a shop
    customer = body.get("customer")
    if isinstance(customer, dict):
        customer.update({"id": 7300000000000 + n, "email": f"buyer{n}@example.com", "phone": f"+861380000{n:04d}"})
    body["email"] = f"buyer{n}@example.com"
    if "phone" in body:
        body["phone"] = f"+861380000{n:04d}"
    if update:
        body.update({"updated_at": "2026-11-20T11:00:00+08:00", "fulfillment_status": "fulfilled", "note": f"n{n}"})
        sample["headers"]["X-Shopify-Topic"] = "orders/updated"
    raw = body_bytes(sample)
    headers = {
        **sample["headers"],
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": shopify.sign(secret, raw),
    }
    event: dict[str, Any] = api_gateway_event("POST", "/webhooks/shopify/demo", headers, raw)
    event["_bytes"] = len(raw)
    return event


def measure() -> dict[str, Any]:
    """Run the order stream through every stage; returns the tallies (JSON-ready) and the workload."""
    import boto3

    moto, endpoint = start_moto_server()
    try:
        # logs at INFO as deployed (infra/constructs/compute.py): their bytes count
        bench_environment(endpoint, log_level="INFO")
        counter = CallCounter()
        boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        side = boto3.session.Session()  # the event source mappings' and the probe's calls: not counted
        side_dynamodb, side_sqs = side.client("dynamodb"), side.client("sqs")
        side_streams = side.client("dynamodbstreams")

        from functions.deliver.handler import RECORD_WORKERS as DELIVER_WORKERS
        from functions.deliver.handler import processor as deliver_processor
        from functions.sync.handler import RECORD_WORKERS
        from infra.config import load_environment
        from infra.sandbox.http_servers import FakeTarget, serve
        from infra.sandbox.lambda_runtime import Functions, sqs_record
        from infra.sandbox.resources import create_resources, local_targets
        from infra.wiring import FUNCTIONS, function_environment, queue_batching, stream_batching
        from shared.constants import AUDIT_SK_PREFIX, TTL_PRINCIPAL

        target = FakeTarget()
        serve(target.server)
        secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
        cfg = local_targets(load_environment("dev"), target.url, target.url)
        resources = create_resources(cfg, secrets, visibility_timeout=30)
        for name in FUNCTIONS:
            ports = (target.server.server_port,)
            os.environ.update(function_environment(name, cfg, resources.refs, loopback_ports=ports))
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
        tables = {
            resources.refs.state_table: "state",
            resources.refs.view_table: "view",
            resources.refs.idempotency_table: "idempotency",
        }
        probe = Probe(side_dynamodb, tables)
        session.events.register("before-call", counter)
        session.events.register("before-parameter-build", probe.before)
        session.events.register("after-call", probe.after)

        log_bytes: Counter[str] = Counter()

        class CountingFunctions(Functions):
            def _collect(self, function: str, output: str) -> None:
                log_bytes[function] += len(output.encode())  # what CloudWatch Logs would ingest
                super()._collect(function, output)

        functions = CountingFunctions(cfg.region, cfg.resource("fn"))
        secret = secrets["sources"]["shopify"]["demo"][0]
        tallies: dict[str, StageTally] = defaultdict(StageTally)

        def run(stage: str, function: str, event: dict[str, Any], records: int) -> Any:
            counter.take()
            probe.tally, probe.own_cpu = tallies[stage], 0.0
            before_logs, before_http = log_bytes[function], len(target.accepted(DELIVER_TARGET))
            start = time.process_time()
            result = functions.invoke(function, event)
            tally = tallies[stage]
            tally.cpu += time.process_time() - start - probe.own_cpu
            tally.calls += counter.take()
            tally.records += records
            tally.invocations += 1
            tally.log_bytes += log_bytes[function] - before_logs
            tally.http += len(target.accepted(DELIVER_TARGET)) - before_http
            return result

        sized = load_environment(SIZED_FOR)
        publish_batch = stream_batching(sized, "publish").batch_size
        project_batch = stream_batching(sized, "project").batch_size
        archive_batch = stream_batching(sized, "audit-archive").batch_size

        deliver_groups: list[list[int]] = []  # per deliver batch: its records by group (entity), as it runs them

        def drain(queue: str, function: str, stage: str) -> int:
            """The queue's messages in batches of the sized environment's batch size for it."""
            batch_size = queue_batching(sized, queue).batch_size
            handled = 0
            while True:
                messages: list[dict[str, Any]] = []
                while len(messages) < batch_size:
                    got = side_sqs.receive_message(
                        QueueUrl=resources.queue_urls[queue], MaxNumberOfMessages=min(10, batch_size - len(messages))
                    ).get("Messages", [])
                    if not got:
                        break
                    messages += got
                if not messages:
                    return handled
                records = [sqs_record(m, resources.queue_arns[queue], cfg.region) for m in messages]
                if stage == "deliver":
                    deliver_groups.append([len(g) for g in deliver_processor().groups(records)])
                result = run(stage, function, {"Records": records}, len(records))
                failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
                assert not failed, f"{stage}: {len(failed)} records failed"
                for m in messages:
                    side_sqs.delete_message(QueueUrl=resources.queue_urls[queue], ReceiptHandle=m["ReceiptHandle"])
                handled += len(messages)

        stream_arn = side_dynamodb.describe_table(TableName=resources.refs.state_table)["Table"]["LatestStreamArn"]
        iterators: dict[str, str] = {}

        def stream_records() -> list[dict[str, Any]]:
            shards = side_streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
            found: list[dict[str, Any]] = []
            for shard in shards:
                sid = shard["ShardId"]
                if sid not in iterators:
                    iterators[sid] = side_streams.get_shard_iterator(
                        StreamArn=stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                    )["ShardIterator"]
                while True:
                    response = side_streams.get_records(ShardIterator=iterators[sid], Limit=1000)
                    iterators[sid] = response["NextShardIterator"]
                    found += [{**r, "eventSourceARN": stream_arn} for r in response.get("Records", [])]
                    if not response.get("Records"):
                        break
            return found

        observations: Counter[str] = Counter()
        changes: Counter[str] = Counter()
        audit_inserts: list[dict[str, Any]] = []
        webhooks = body_bytes = view_records = 0
        # warm up (cold start, secret cache, pools): one order through every stage, not counted
        for update in (False, True):
            assert functions.invoke("ingest", _order_webhook(secret, 99999, update))["statusCode"] == 200
        for queue, function in (("inbox", "normalise"), ("orders", "sync")):
            drain(queue, function, "warm-up")
        warm_records = stream_records()
        warm = [r for r in warm_records if r["eventName"] == "INSERT"]
        functions.invoke("publish", {"Records": warm})
        functions.invoke("project", {"Records": [r for r in warm_records if project_reads(r)]})
        drain(f"deliver-{DELIVER_TARGET}", "deliver", "warm-up")
        tallies.pop("warm-up", None)
        for wave in (False, True):  # new orders, then an update of each
            for n in range(ORDERS):
                event = _order_webhook(secret, n, wave)
                body_bytes += event.pop("_bytes")
                answer = run("ingest", "ingest", event, 1)
                assert answer["statusCode"] == 200, answer
                webhooks += 1
            drain("inbox", "normalise", "normalise")
            for domain in ("orders", "after-sales", "logistics", "tickets"):
                seen = drain(domain, "sync", "sync:update" if wave else "sync:new")
                observations[domain] += seen
            records = stream_records()
            inserts = [
                r
                for r in records
                if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"].startswith(AUDIT_SK_PREFIX)
            ]
            audit_inserts += inserts
            for i in range(0, len(inserts), publish_batch):
                batch = inserts[i : i + publish_batch]
                run("publish", "publish", {"Records": batch}, len(batch))
                for record in batch:
                    changes[record["dynamodb"]["Keys"]["pk"]["S"].split("#")[1]] += 1
            # the customer view: what project's event source mapping lets through (states, audit inserts, an
            # identity profile gaining or losing an alias), in the sized environment's batches
            projected = [r for r in records if project_reads(r)]
            view_records += len(projected)
            for i in range(0, len(projected), project_batch):
                batch = projected[i : i + project_batch]
                run("project", "project", {"Records": batch}, len(batch))
            drain(f"deliver-{DELIVER_TARGET}", "deliver", "deliver")
        # audit records expire 90 days later: the same records as the TTL sweeper's REMOVE records, in full
        # batches of the sized environment's (one object per shard, tenant and type a batch: how many
        # records a batch holds decides the PUTs per record). Past the records written, copies of them
        # as other entities' records (an entity id suffix: another shard) fill the batches.
        copies = max(1, -(-2 * archive_batch // max(1, len(audit_inserts))))
        expired = [_expired(r, copy, TTL_PRINCIPAL) for copy in range(copies) for r in audit_inserts][
            : max(len(audit_inserts), 2 * archive_batch)
        ]
        for i in range(0, len(expired), archive_batch):
            batch = expired[i : i + archive_batch]
            run("audit-archive", "audit-archive", {"Records": batch}, len(batch))
        by_type = {"orders": ("order", "customer")}
        waves = {name: _tally_json(tallies.pop(f"sync:{name}")) for name in ("new", "update")}
        tallies["sync"] = _merged(_tally_from(waves["new"]), _tally_from(waves["update"]))
        return {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "orders": ORDERS,
            "webhooks": webhooks,
            "body_bytes": body_bytes // max(1, webhooks),
            "observations": dict(observations),
            "observation_types": {k: list(v) for k, v in by_type.items()},
            "changes": dict(changes),
            "audit_records": len(audit_inserts),
            "view_records": view_records,
            "batch_sizes": {
                "inbox": queue_batching(sized, "inbox").batch_size,
                "orders": queue_batching(sized, "orders").batch_size,
                f"deliver-{DELIVER_TARGET}": queue_batching(sized, f"deliver-{DELIVER_TARGET}").batch_size,
                "publish": publish_batch,
                "project": project_batch,
                "audit-archive": archive_batch,
            },
            "sync_record_workers": RECORD_WORKERS,
            "deliver_record_workers": DELIVER_WORKERS,
            "deliver_batch_groups": deliver_groups,
            "sync_by_wave": waves,
            "stages": {name: _tally_json(tallies[name]) for name in sorted(tallies, key=STAGES.index)},
        }
    finally:
        moto.kill()
        moto.wait(timeout=10)


def _expired(insert: dict[str, Any], copy: int, principal: str) -> dict[str, Any]:
    """The TTL sweeper's REMOVE record of an audit record written (``copy`` > 0: as another entity's)."""
    image = json.loads(json.dumps(insert["dynamodb"]["NewImage"]))
    keys = json.loads(json.dumps(insert["dynamodb"]["Keys"]))
    sequence = insert["dynamodb"]["SequenceNumber"]
    if copy:
        for item in (image, keys):
            item["pk"]["S"] += f"-{copy}"
        sequence = f"{sequence}{copy:04d}"
    return {
        **insert,
        "eventName": "REMOVE",
        "userIdentity": {"type": "Service", "principalId": principal},
        "dynamodb": {"Keys": keys, "OldImage": image, "SequenceNumber": sequence},
    }


def _tally_from(doc: dict[str, Any]) -> StageTally:
    t = StageTally(doc["records"], doc["invocations"], doc["cpu_seconds"], Counter(doc["calls"]))
    t.touches = [Touch(table, x["pk"], x["wru"], x["rru"]) for table, xs in doc["touches"].items() for x in xs]
    t.entries, t.s3_gets, t.log_bytes, t.http = doc["entries"], doc["s3_gets"], doc["log_bytes"], doc["http"]
    t.s3_keys.update({k: list(v) for k, v in doc["s3_keys"].items()})
    return t


def _merged(a: StageTally, b: StageTally) -> StageTally:
    """Two tallies of one stage as one (sync's new orders and their updates)."""
    t = StageTally(a.records + b.records, a.invocations + b.invocations, a.cpu + b.cpu, a.calls + b.calls)
    t.touches = a.touches + b.touches
    t.entries, t.s3_gets = a.entries + b.entries, a.s3_gets + b.s3_gets
    t.log_bytes, t.http = a.log_bytes + b.log_bytes, a.http + b.http
    for source in (a, b):
        for prefix, keys in source.s3_keys.items():
            t.s3_keys[prefix] += keys
    return t


def _tally_json(t: StageTally) -> dict[str, Any]:
    touches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for touch in t.touches:
        touches[touch.table].append({"pk": touch.pk, "wru": touch.wru, "rru": touch.rru})
    return {
        "records": t.records,
        "invocations": t.invocations,
        "cpu_seconds": t.cpu,
        "calls": dict(t.calls),
        "touches": dict(touches),
        "entries": t.entries,
        "s3_keys": dict(t.s3_keys),
        "s3_gets": t.s3_gets,
        "log_bytes": t.log_bytes,
        "http": t.http,
    }


# ---- measurement -> bench/capacity_inputs.json --------------------------------------------------------------
def _prefix_use(keys: list[str], records: int) -> dict[str, Any]:
    ascending = sum(1 for a, b in itertools.pairwise(keys) if b > a) / max(1, len(keys) - 1)
    common = os.path.commonprefix(keys)  # noqa: RUF071 - a character prefix is what S3 partitions on
    buckets = Counter(k[: len(common) + 2] for k in keys)
    return {
        "puts_per_record": round(len(keys) / records, 4),
        "ascending_share": round(ascending, 3),
        "hottest_prefix_share": round(max(buckets.values()) / len(keys), 4),
    }


def _table_use(touches: list[dict[str, Any]], records: int) -> dict[str, Any]:
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for touch in touches:
        by_key[touch["pk"]].append(touch)
    hottest, on_it = max(by_key.items(), key=lambda kv: (len(kv[1]), kv[0]))
    return {
        "wru_per_record": round(sum(t["wru"] for t in touches) / records, 4),
        "rru_per_record": round(sum(t["rru"] for t in touches) / records, 4),
        "hottest_key": hottest,
        "hottest_key_share": round(len(on_it) / records, 4),
        "hottest_key_wru_per_record": round(sum(t["wru"] for t in on_it) / records, 4),
        "hottest_key_rru_per_record": round(sum(t["rru"] for t in on_it) / records, 4),
        "wru_per_touch": round(sum(t["wru"] for t in on_it) / len(on_it), 4),
        "rru_per_touch": round(sum(t["rru"] for t in on_it) / len(on_it), 4),
    }


STAGES = [
    "ingest",
    "normalise",
    "sync",
    "publish",
    "project",
    "deliver",
    "audit-archive",
]  # the order the document lists them
FUNCTION_OF = {"ingest": "ingest", "normalise": "normalise", "sync": "sync", "publish": "publish", "project": "project"}


def build_inputs(measured: dict[str, Any]) -> dict[str, Any]:
    """The ``bench/capacity_inputs.json`` document (schema 1, read by ``ops.capacity.load_inputs``)."""
    webhooks = measured["webhooks"]
    batches = measured["batch_sizes"]
    # sync merges a batch's records on RECORD_WORKERS threads: a batch of B waits ceil(B / workers) records'
    # calls one after another, so B / ceil(B / workers) records' calls overlap
    sync_batch = batches["orders"]
    overlap = {"sync": sync_batch / math.ceil(sync_batch / measured["sync_record_workers"])}
    # deliver runs a batch's groups (one entity's changes) on its workers, each group's records one after
    # another: from the batches it was given, records over the records' waits on the busiest worker
    groups = measured.get("deliver_batch_groups") or []
    if groups:
        workers = measured["deliver_record_workers"]
        overlap["deliver"] = sum(map(sum, groups)) / sum(makespan(g, workers) for g in groups)
    stages: dict[str, Any] = {}
    for name, t in measured["stages"].items():
        records = max(1, t["records"])
        calls = {k: round(v / records, 4) for k, v in sorted(t["calls"].items())}
        if t["http"]:
            calls["http:target"] = round(t["http"] / records, 4)
        stages[name] = {
            "function": FUNCTION_OF.get(name, name),
            "records": t["records"],
            "invocations": t["invocations"],
            "cpu_ms_per_record": round(t["cpu_seconds"] * 1000 / records, 3),
            "calls_per_record": calls,
            "parallel_calls": round(overlap.get(name, 1.0), 3),
            "dynamodb": {table: _table_use(touches, records) for table, touches in sorted(t["touches"].items())},
            "put_events_entries_per_record": round(t["entries"] / records, 4),
            "s3_puts": {prefix: _prefix_use(keys, records) for prefix, keys in sorted(t["s3_keys"].items())},
            "s3_gets_per_record": round(t["s3_gets"] / records, 4),
            "log_bytes_per_record": round(t["log_bytes"] / records, 1),
        }
    observations_by_type: dict[str, float] = {}
    for domain, seen in measured["observations"].items():
        types = measured["observation_types"].get(domain)
        if seen and types:  # the domain's queue carries its types; attribute them to its first type
            observations_by_type[types[0]] = observations_by_type.get(types[0], 0.0) + seen / webhooks
    return {
        "schema_version": 1,
        "measured_at": measured["measured_at"],
        "command": COMMAND,
        "machine": measured["machine"],
        "notes": [
            f"batches of {SIZED_FOR}'s sizes: inbox {batches['inbox']}, orders {batches['orders']}, "
            f"deliver-{DELIVER_TARGET} {batches[f'deliver-{DELIVER_TARGET}']} records; stream: publish "
            f"{batches['publish']}, project {batches.get('project', 100)}, audit-archive {batches['audit-archive']}; "
            "per-record figures are at those batch sizes (a call made once a batch counts 1 / batch size a record)",
            f"sync: a batch's records merged on {measured['sync_record_workers']} threads; parallel_calls is how many "
            "records' calls overlap at the orders batch size",
            f"deliver: a batch's records delivered on {measured.get('deliver_record_workers', 1)} threads, one "
            "entity's changes one after another; parallel_calls is the records of the batches it was given over "
            "the records' waits on their busiest thread",
            "CPU is the handler process's on the bench machine, all its threads (moto answers from another "
            "process; the probe's own look-ups are subtracted per thread)",
            f"deliveries measured to the '{DELIVER_TARGET}' target (an envelope webhook, no rate limit)",
            "audit-archive: the audit records written, replayed as the TTL sweeper's REMOVE records; copies of them as "
            "other entities' records fill two full batches",
            "project: the stream records its event source mapping's filters pass (states, audit inserts); its "
            "writes (view summaries, timeline entries, selectors, owner pointers) are in the view table, its "
            "reads of states and of the identity index in the state table",
            "automate: not exercised (orders are not automated); the model leaves it out for this workload",
        ],
        "workload": {
            "description": (
                f"{measured['orders']} Shopify orders/create webhooks (each order its own customer) and then one "
                f"orders/updated webhook for each: {webhooks} webhooks of {measured['body_bytes']} bytes on average"
            ),
            "webhooks": webhooks,
            "body_bytes": measured["body_bytes"],
            "observations_per_webhook": {k: round(v, 4) for k, v in observations_by_type.items()},
            "changes_per_webhook": {k: round(v / webhooks, 4) for k, v in sorted(measured["changes"].items())},
            "audit_records_per_webhook": round(measured["audit_records"] / webhooks, 4),
            "view_records_per_webhook": round(measured.get("view_records", 0) / webhooks, 4),
        },
        "sync_by_wave": {
            name: {
                "records": w["records"],
                "calls_per_record": {k: round(v / max(1, w["records"]), 4) for k, v in sorted(w["calls"].items())},
                "wru_per_record": round(
                    sum(x["wru"] for xs in w["touches"].values() for x in xs) / max(1, w["records"]), 4
                ),
                "rru_per_record": round(
                    sum(x["rru"] for xs in w["touches"].values() for x in xs) / max(1, w["records"]), 4
                ),
            }
            for name, w in measured["sync_by_wave"].items()
        },
        "stages": stages,
    }


def write_inputs(measured: dict[str, Any], path: Path = OUTPUT) -> dict[str, Any]:
    document = build_inputs(measured)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return document


def report(result: dict[str, Any]) -> list[str]:
    """Markdown lines for bench/RESULTS.md: per-record costs by stage."""
    inputs = build_inputs(result)
    lines = [
        "## Capacity-model inputs: per-record costs by stage",
        "",
        f"`{COMMAND}` -> `bench/capacity_inputs.json` ({inputs['workload']['description']}); read by "
        f"`aftersync capacity`. Measured {inputs['measured_at']} on {inputs['machine']}.",
        "",
        "| stage | records | CPU ms / record | AWS calls / record | WRU / record | RRU / record | PutEvents entries "
        "/ record | S3 PUT / record | log bytes / record |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in inputs["stages"].items():
        calls = sum(v for k, v in s["calls_per_record"].items() if not k.startswith("http:"))
        lines.append(
            f"| {name} | {s['records']} | {s['cpu_ms_per_record']:.2f} | {calls:.2f} | "
            f"{sum(t['wru_per_record'] for t in s['dynamodb'].values()):.2f} | "
            f"{sum(t['rru_per_record'] for t in s['dynamodb'].values()):.2f} | "
            f"{s['put_events_entries_per_record']:.2f} | "
            f"{sum(p['puts_per_record'] for p in s['s3_puts'].values()):.2f} | {s['log_bytes_per_record']:.0f} |"
        )
    overlapping = [f"{name} {s['parallel_calls']:g}" for name, s in inputs["stages"].items() if s["parallel_calls"] > 1]
    lines += ["", f"Records whose calls overlap (a batch's records on threads): {', '.join(overlapping) or 'none'}."]
    lines.append("")
    return lines


def main() -> int:
    measured = measure()
    write_inputs(measured)
    print("\n".join(report(measured)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
