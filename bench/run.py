"""Aftersync benchmarks: ``make bench`` (``python -m bench.run``) -> ``bench/RESULTS.md``.

Every figure is a ratio against a baseline measured in the same run, on the same machine:

1. Ingest CPU per webhook (the real handler, AWS on a moto server in *another* process so its
   CPU is not counted) against a floor: HMAC-SHA256 verify + ``json.loads`` of the same body.
2. AWS API calls per webhook on the ingest path, per state change on the sync path, and per
   delivery, counted with a botocore ``before-call`` hook.
3. Import time of each handler module minus the import time of its third-party libraries alone,
   each measured in fresh interpreters (median of several runs).

Then the sections of ``SECTIONS``, each measured by its own module in a fresh interpreter (``lookup``:
DynamoDB calls per lookup and the projector's cost per update), and identity resolution.
``python -m bench.run <section> [...]`` (or ``identity``) re-measures those sections alone and rewrites
only them in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import end_to_end

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
WEBHOOKS = int(os.environ.get("BENCH_WEBHOOKS", "300"))
ORDER_PATH_ORDERS = int(os.environ.get("BENCH_ORDER_PATH_ORDERS", "200"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running moto's server module
        [sys.executable, "-m", "infra.sandbox.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


def bench_environment(endpoint: str | None, log_level: str = "ERROR") -> None:
    """The process environment a bench drives the handlers in: the stand-in's endpoint (``None``: moto
    in process), dummy credentials, the region, Powertools as deployed without tracing."""
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Aftersync",
            "POWERTOOLS_LOG_LEVEL": log_level,
        }
    )
    if endpoint is not None:
        os.environ["AWS_ENDPOINT_URL"] = endpoint


class CallCounter:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        # event_name: before-call.<service>.<Operation>
        _, service, operation = event_name.split(".", 2)
        self.calls[f"{service}:{operation}"] += 1

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def cpu_per_call(fn: Callable[[], Any], n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def webhook(secret: str, n: int, update: bool = False) -> tuple[dict[str, Any], bytes]:
    from infra.sandbox.http_servers import api_gateway_event
    from infra.sandbox.samples import body_bytes, load_sample
    from shared.sources import shopify

    sample = load_sample("shopify_orders_create")
    sample["body"]["id"] = 900000000000000000 + n
    if update:  # the demo's update: fulfilled, with a delivery note, later
        sample["body"].update(
            {"updated_at": "2026-11-20T11:00:00+08:00", "fulfillment_status": "fulfilled", "note": f"batch {n}"}
        )
        sample["headers"]["X-Shopify-Topic"] = "orders/updated"
    body = body_bytes(sample)
    headers = {
        **sample["headers"],
        "X-Shopify-Event-Id": str(uuid.uuid4()),
        "X-Shopify-Hmac-Sha256": shopify.sign(secret, body),
    }
    return api_gateway_event("POST", "/webhooks/shopify/demo", headers, body), body


def entity_changed_record(resources: Any, cfg: Any, target: str, state: Any) -> dict[str, Any]:
    """The SQS record the deliver function gets for a state: an EventBridge entity.changed event."""
    from infra.sandbox.lambda_runtime import sqs_record
    from shared.constants import DETAIL_ENTITY_CHANGED, EVENT_SOURCE

    detail = {
        "tenant": state.tenant,
        "entity_type": state.entity_type,
        "entity_id": state.entity_id,
        "version": state.version,
        "event_id": f"bench-{state.version}",
        "origin_source": "shopify",
        "occurred_at": "2026-11-20T03:00:00Z",
        "changed": {},
    }
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_ENTITY_CHANGED,
        "source": EVENT_SOURCE,
        "account": "123456789012",
        "time": "2026-11-20T03:00:00Z",
        "region": cfg.region,
        "resources": [],
        "detail": detail,
    }
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "bench", "Body": json.dumps(event)}
    return sqs_record(message, resources.queue_arns[f"deliver-{target}"], cfg.region)


RECORD_API = {"method": "PATCH", "path": "/orders/{order_id}", "body": "changes", "wrap": "order"}


def with_record_api_crm(cfg: Any) -> Any:
    """The environment plus ``crm-records``: the same CRM reached as a REST API of records (PATCH
    /orders/{order_id} with the changed fields), the other way targets take changes."""
    crm = next(t for t in cfg.targets if t.name == "crm")
    records = type(crm).model_validate({**crm.model_dump(), "name": "crm-records", **RECORD_API})
    return cfg.model_copy(update={"targets": (*cfg.targets, records)})


def measure_delivery(
    functions: Any, resources: Any, cfg: Any, secret: str, target: Any, drain: Any, counter: Any
) -> dict[str, Any]:
    """Deliveries of the demo's order stream to the CRM, as an envelope webhook (``crm``) and as a
    REST API of records (``crm-records``): bytes with change-only pushes against the full snapshots a
    naive sync would send, and AWS calls per delivery."""
    from urllib.parse import urlsplit

    from shared.adapters.state_store import DynamoStateStore
    from shared.delivery.targets import canonical_json

    store = DynamoStateStore(resources.refs.state_table)
    ids = [f"shopify:{900000000000000000 + n}" for n in range(20, WEBHOOKS + 20)]
    records_target = next(t for t in cfg.targets if t.name == "crm-records")

    def size(value: Any) -> int:
        return len(canonical_json(value).encode())

    def deliver_all(name: str) -> dict[str, Any]:
        sent_before = len(target.accepted(name))
        states = [store.load("demo", "order", entity_id)[0] for entity_id in ids]  # not counted below
        counter.take()
        for state in states:
            functions.invoke("deliver", {"Records": [entity_changed_record(resources, cfg, name, state)]})
        calls = counter.take()
        sent = target.accepted(name)[sent_before:]
        assert len(sent) == len(states), f"{name}: {len(sent)} of {len(states)} deliveries arrived"
        out: dict[str, Any] = {"calls": calls}
        if name == "crm":  # the envelope goes to one URL whatever the strategy: the body is the difference
            full = [
                {
                    "tenant": s.tenant,
                    "entity_type": s.entity_type,
                    "entity_id": s.entity_id,
                    "version": s.version,
                    "changes": s.fields,
                }
                for s in states
                if s is not None
            ]
            out["sent"] = sum(size(r["body"]) for r in sent)
            out["full"] = sum(size(f) for f in full)
            out["sent_changes"] = sum(size(r["body"]["changes"]) for r in sent)
            out["full_changes"] = sum(size(f["changes"]) for f in full)
        else:  # the record's id travels in the request path: counted for both (PATCH the changes, PUT all)
            paths = [urlsplit(r["path"]).path.removeprefix(f"/{name}") for r in sent]
            out["sent"] = sum(len(p.encode()) + size(r["body"]) for p, r in zip(paths, sent, strict=True))
            out["full"] = sum(
                len(records_target.endpoint(s.entity_id, s.fields).removeprefix(str(records_target.url)).encode())
                + size({records_target.wrap: records_target.render(s.fields)})
                for s in states
                if s is not None
            )
        return out

    first = {name: deliver_all(name) for name in ("crm", "crm-records")}  # version 1: every field is new
    for n in range(20, WEBHOOKS + 20):
        functions.invoke("ingest", webhook(secret, n, update=True)[0])
    drain("inbox", "normalise")
    drain("orders", "sync")
    update = {name: deliver_all(name) for name in ("crm", "crm-records")}
    calls = update["crm"]["calls"]
    return {
        "delivery_first": first,
        "delivery_update": update,
        "delivery_calls": {k: v / len(ids) for k, v in sorted(calls.items())},
        "delivery_count": len(ids),
    }


def measure_reconcile(functions: Any, resources: Any, cfg: Any, shop: Any, counter: Any) -> dict[str, Any]:
    """AWS calls of the scheduled pull per order it lists: orders the state already reflects (the
    bench's 300, as the shop lists them after their update) against orders no webhook brought (the
    baseline: what a pull that fed in everything would spend on every order)."""
    import boto3

    from infra.sandbox.lambda_runtime import sqs_record
    from infra.sandbox.samples import load_sample
    from shared.adapters.watermarks import ReconcileWatermarks

    dynamodb = boto3.client("dynamodb")  # (the fed-in orders wait in the inbox; they are not processed here)
    base = load_sample("shopify_orders_create")["body"]
    update = {"updated_at": "2026-11-20T11:00:00+08:00", "fulfillment_status": "fulfilled"}

    def run(orders: list[dict[str, Any]]) -> Counter[str]:
        shop.orders.clear()
        shop.put(*orders)
        dynamodb.delete_item(TableName=resources.refs.state_table, Key=ReconcileWatermarks.key("shopify", "demo"))
        body = json.dumps({"source": "shopify", "tenant": "demo"})
        message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "bench", "Body": body}
        counter.take()
        result = functions.invoke(
            "reconcile", {"Records": [sqs_record(message, resources.queue_arns["reconcile"], cfg.region)]}
        )
        assert result == {"batchItemFailures": []}, result
        calls = counter.take()
        return calls

    known = [{**base, "id": 900000000000000000 + n, "note": f"batch {n}", **update} for n in range(20, WEBHOOKS + 20)]
    missed = [{**base, "id": 910000000000000000 + n, **update} for n in range(WEBHOOKS)]
    known_calls, missed_calls = run(known), run(missed)
    return {
        "reconcile_known": {k: v / len(known) for k, v in sorted(known_calls.items())},
        "reconcile_missed": {k: v / len(missed) for k, v in sorted(missed_calls.items())},
        "reconcile_orders": len(known),
    }


def measure_pipeline() -> dict[str, Any]:
    import boto3

    moto, endpoint = start_moto_server()
    try:
        bench_environment(endpoint)
        counter = CallCounter()
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register("before-call", counter)  # type: ignore[union-attr]
        meter = end_to_end.Meter()
        meter.register(boto3.DEFAULT_SESSION)

        from infra.config import load_environment
        from infra.sandbox.http_servers import FakeShop, FakeTarget, serve
        from infra.sandbox.lambda_runtime import Functions, sqs_record
        from infra.sandbox.resources import create_resources, local_shop, local_targets
        from infra.wiring import FUNCTIONS, function_environment

        target = FakeTarget()
        serve(target.server)
        secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
        shop = FakeShop(secrets["pull"]["shopify"]["demo"]["access_token"])
        serve(shop.server)
        # (no ticket reaches the robot here); the pull looks back far enough for the bench's dates
        cfg = local_targets(with_record_api_crm(load_environment("dev")), target.url, target.url)
        jobs = tuple(j.model_copy(update={"first_lookback_hours": 24 * 60}) for j in cfg.reconcile)
        cfg = local_shop(cfg.model_copy(update={"reconcile": jobs}), {"shopify": shop.url})
        secrets["targets"]["crm-records"] = secrets["targets"]["crm"]  # the same CRM, its record API
        resources = create_resources(cfg, secrets, visibility_timeout=30)
        for name in FUNCTIONS:
            fakes = (target.server.server_port, shop.server.server_port)  # the only loopback ports to call
            os.environ.update(function_environment(name, cfg, resources.refs, loopback_ports=fakes))
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
        functions = Functions(cfg.region, cfg.resource("fn"))
        secret = secrets["sources"]["shopify"]["demo"][0]

        events = [webhook(secret, n) for n in range(WEBHOOKS + 20)]
        for event, _ in events[:20]:  # warm up: cold start, secret cache, connection pools
            functions.invoke("ingest", event)
        counter.take()
        wall: list[float] = []
        start = time.process_time()
        for event, _ in events[20:]:
            t = time.perf_counter()
            assert functions.invoke("ingest", event)["statusCode"] == 200
            wall.append(time.perf_counter() - t)
        ingest_cpu = (time.process_time() - start) / WEBHOOKS
        ingest_calls = counter.take()

        duplicate_event = events[-1][0]
        for _ in range(WEBHOOKS // 10):
            functions.invoke("ingest", duplicate_event)
        duplicate_calls = counter.take()

        body = events[-1][1]
        signature = base64.b64decode(duplicate_event["headers"]["X-Shopify-Hmac-Sha256"])

        def floor() -> None:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
            assert hmac.compare_digest(digest, signature)
            json.loads(body)

        floor_cpu = min(cpu_per_call(floor, 20_000) for _ in range(3))

        # Sync path: normalise the inbox into the orders queue, then count sync's calls per change.
        sqs = boto3.client("sqs")

        def drain(queue: str, function: str) -> int:
            handled = 0
            while True:
                messages = sqs.receive_message(QueueUrl=resources.queue_urls[queue], MaxNumberOfMessages=10).get(
                    "Messages", []
                )
                if not messages:
                    return handled
                functions.invoke(
                    function, {"Records": [sqs_record(m, resources.queue_arns[queue], cfg.region) for m in messages]}
                )
                for m in messages:
                    sqs.delete_message(QueueUrl=resources.queue_urls[queue], ReceiptHandle=m["ReceiptHandle"])
                handled += len(messages)

        drain("inbox", "normalise")
        counter.take()
        # One message per invocation so the per-change count is not flattered by batching.
        changes = 0
        sync_calls: Counter[str] = Counter()
        while True:
            messages = sqs.receive_message(QueueUrl=resources.queue_urls["orders"], MaxNumberOfMessages=1).get(
                "Messages", []
            )
            if not messages:
                break
            counter.take()
            functions.invoke("sync", {"Records": [sqs_record(messages[0], resources.queue_arns["orders"], cfg.region)]})
            sync_calls += counter.take()
            sqs.delete_message(QueueUrl=resources.queue_urls["orders"], ReceiptHandle=messages[0]["ReceiptHandle"])
            changes += 1

        delivery = measure_delivery(functions, resources, cfg, secret, target, drain, counter)
        reconciled = measure_reconcile(functions, resources, cfg, shop, counter)
        order_path: dict[str, Any] = {
            scenario: end_to_end.summarise(
                end_to_end.measure_order_path(
                    meter,
                    functions,
                    resources,
                    cfg,
                    end_to_end.webhook_maker(secret, 30_000_000, update=scenario == "update"),
                    range(ORDER_PATH_ORDERS),
                    purge=scenario == "new",
                )
            )
            for scenario in ("new", "update")
        }
        order_path["table_names"] = {
            resources.refs.state_table: "state table",
            resources.refs.view_table: "view table",
            resources.refs.idempotency_table: "idempotency table",
        }
        return {
            "order_path": order_path,
            **delivery,
            **reconciled,
            "ingest_cpu": ingest_cpu,
            "floor_cpu": floor_cpu,
            "wall_p50": statistics.median(wall),
            "wall_p99": sorted(wall)[int(0.99 * (len(wall) - 1))],
            "ingest_calls": {k: v / WEBHOOKS for k, v in sorted(ingest_calls.items())},
            "duplicate_calls": {k: v / (WEBHOOKS // 10) for k, v in sorted(duplicate_calls.items())},
            "sync_calls": {k: v / changes for k, v in sorted(sync_calls.items())},
            "changes": changes,
            "body_bytes": len(body),
        }
    finally:
        moto.kill()  # the stand-in holds no state worth a graceful shutdown
        moto.wait(timeout=10)


IDENTITY_SEEDS = (1, 2, 3)
IDENTITY_BASELINE = ROOT / "bench" / "baselines" / "identity_before_18.json"


def measure_identity() -> list[Any]:
    from bench.identity_dataset import evaluate, generate

    people = int(os.environ.get("BENCH_IDENTITY_PEOPLE", "10000"))
    return [evaluate(generate(people, seed=seed)) for seed in IDENTITY_SEEDS]


def identity_figures(scores: list[Any]) -> dict[str, Any]:
    """The figures of a run, as the baseline file keeps them."""
    return {
        "people": scores[0].people,
        "seeds": {str(seed): s.figures() for seed, s in zip(IDENTITY_SEEDS, scores, strict=True)},
    }


# (label, key in the figures, format, the goal)
IDENTITY_METRICS = (
    ("records", "records", "{:d}", ""),
    ("precision", "precision", "{:.4%}", "100 %"),
    ("recall, all same-person pairs", "recall", "{:.2%}", ""),
    ("person-linkable share of those (ceiling)", "linkable_share", "{:.2%}", ""),
    ("recall, person-linkable pairs", "linkable_recall", "{:.2%}", "≥ 99 %"),
    ("recall, cross-script pairs", "cross_script_recall", "{:.2%}", ""),
    ("recall, pairs only phone + name joins", "phone_recall", "{:.2%}", ""),
    ("merge candidates", "merge_candidates", "{:d}", ""),
)


def identity_report(scores: list[Any], baseline_path: Path = IDENTITY_BASELINE) -> list[str]:
    from bench import identity_dataset as d

    now = identity_figures(scores)
    # the share of people given 张伟, the first of the commonest names (composed ones add a little)
    zhang_wei = d.COMMON_NAME_SHARE * (1 - d.FAMILY_SHARE) / sum(1 / r for r in range(1, len(d.COMMON_NAMES) + 1))
    baseline = json.loads(baseline_path.read_text(encoding="utf-8")) if baseline_path.exists() else None
    before = baseline["seeds"] if baseline else {}
    header = (
        "| metric | goal | " + " | ".join(f"seed {seed}: before | seed {seed}: now" for seed in IDENTITY_SEEDS) + " |"
    )
    lines = [
        "## Identity resolution",
        "",
        f"`bench/identity_dataset.py`: {now['people']} people, each with a Chinese name (surnames by frequency, "
        "polyphonic surnames read as surnames — 单 Shan, 曾 Zeng, 解 Xie, 区 Ou, 仇 Qiu, 朴 Piao, 查 Zha — and "
        f"compound ones — 欧阳, 司马, 诸葛; {d.COMMON_NAME_SHARE:.0%} of the people outside a family carry one of "
        f"the {len(d.COMMON_NAMES)} commonest full names, drawn with weight 1/rank, so about {zhang_wei:.0%} of "
        "all are called 张伟), seen through 1–5 channels. Shopify carries the name in pinyin, rendered anew on "
        "each record (either order, any case, run together, `Xiao-Ming`/`XiaoMing`/`Xiaoming`, ü as u, v or yu); "
        "Youzan, Douyin shop, the WeCom CRM and the shop tills (POS) carry it in hanzi, with or without a space "
        f"(full-width or not). Phones come in {len(d.PHONE_FORMATS)} formats (`13800138000`, `+86 138 0013 8000`, "
        "`0086-138-0013-8000`, `138-0013-8000`, `+8613800138000`, `(+86) 138 0013 8000`, "
        "`138 00138000` padded with spaces); "
        "e-mails in odd case with stray spaces; keys are missing at channel-typical rates. "
        f"{d.FAMILY_SHARE:.0%} of people share the phone of another under a name that does not sound the same (a "
        "spouse, a parent, a child), each with their own e-mail and WeChat id; "
        f"{d.PHONE_CHANGE_SHARE:.0%} changed phones (the old number on some records, the new one on others). The "
        "pinyin comes from the data set's own reading tables, not from the resolver's. Three seeds; records are "
        "resolved in a shuffled order.",
        "",
    ]
    if baseline:
        lines += [
            f"Before (`{baseline_path.relative_to(ROOT)}`, commit {baseline['commit']}, measured "
            f"{baseline['measured']}, {baseline['people']} people): {baseline['note']}.",
            "",
        ]
        if baseline["people"] != now["people"] or any(
            before.get(str(seed), {}).get("records") != s.records
            for seed, s in zip(IDENTITY_SEEDS, scores, strict=True)
        ):
            lines += [
                "The data set differs from the one the baseline was measured on: before and now do not compare.",
                "",
            ]
    lines += [header, "|---|---|" + "---:|" * (2 * len(IDENTITY_SEEDS))]
    for label, key, fmt, goal in IDENTITY_METRICS:
        cells = []
        for seed in IDENTITY_SEEDS:
            old = before.get(str(seed), {}).get(key)
            cells += [fmt.format(old) if old is not None else "–", fmt.format(now["seeds"][str(seed)][key])]
        lines.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "All figures are over pairs of records. Precision: of the pairs resolved to one customer, the share that "
        "are one person (no wrong merge is the hard requirement). Recall, all same-person pairs: the share of "
        "pairs of one person's records resolved to one customer. Some of those pairs share no evidence (a Shopify "
        "account known only by e-mail and a Douyin buyer known only by phone, or the old and the new phone): "
        "joining them would be guessing, so the person-linkable share is the ceiling of that recall for any "
        "resolver. A pair is person-linkable when a chain of links a person would make joins it: a shared strong "
        "key (e-mail, WeCom external id, OpenID/UnionID, member card) or the same phone under the same name in "
        "either script or order (the benchmark reads phones itself, digits without the 86/0086 prefix; a "
        "person's records all carry their one name). Recall, person-linkable pairs: the share of those resolved "
        "to one customer. Recall, cross-script pairs: the same over person-linkable pairs of a pinyin-named and a "
        "hanzi-named record. Recall, pairs only phone + name joins: over person-linkable pairs that no chain of "
        "strong keys alone joins. Merge candidates are what is left for a person (`aftersync customers "
        "candidates`): one record naming customers whose names or keys disagree.",
        "",
    ]
    return lines


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


def report(pipeline: dict[str, Any], sections: list[str], identity: list[Any]) -> str:
    def calls(table: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in table.items()) or "none"

    ratio = pipeline["ingest_cpu"] / pipeline["floor_cpu"]
    up, first = pipeline["delivery_update"], pipeline["delivery_first"]
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `make bench` (`python -m bench.run`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;",
        f"machine: {machine()}. {WEBHOOKS} distinct signed Shopify `orders/create` webhooks of "
        f"{pipeline['body_bytes']} bytes; AWS is a moto server in a separate process, so CPU figures count only "
        "the handler's own process.",
        "",
        "## Ingest CPU per webhook",
        "",
        "| what | CPU per webhook | ratio to floor |",
        "|---|---:|---:|",
        f"| floor: HMAC-SHA256 verify + `json.loads` of the same body | {pipeline['floor_cpu'] * 1e6:.1f} µs | 1.0 |",
        f"| ingest handler (verify, admission record, enqueue, ack; boto3 request building included) | "
        f"{pipeline['ingest_cpu'] * 1e3:.2f} ms | {ratio:.0f}× |",
        "",
        f"Wall time per webhook against the local stand-in: p50 {pipeline['wall_p50'] * 1e3:.1f} ms, "
        f"p99 {pipeline['wall_p99'] * 1e3:.1f} ms (Shopify's budget is 5 s). Most of the handler's time is "
        "inside its two botocore calls (serialise, sign, send); verify, parse, envelope and routing are the small "
        "remainder. The floor is what any receiver must spend.",
        "",
        "## AWS API calls",
        "",
        "| path | calls per unit |",
        "|---|---|",
        f"| ingest, per new webhook | {calls(pipeline['ingest_calls'])} |",
        f"| ingest, per duplicate webhook | {calls(pipeline['duplicate_calls'])} |",
        f"| sync, per state change ({pipeline['changes']} changes, one record per invocation) | "
        f"{calls(pipeline['sync_calls'])} |",
        "",
        "The secret read is cached (Powertools parameters, 300 s), so it does not appear per webhook after the "
        "first. An order observation on the sync path: one consistent batch read of the identity keys together "
        "with the order's state and its likely customer's state and profile, and one transaction writing state "
        "and audit together; a customer's first sighting adds its key claims (the rows here include the first "
        "sightings of the bench's customers).",
        "",
        *end_to_end.report(pipeline["order_path"], pipeline["order_path"]["table_names"]),
        "## Delivery: change-only pushes against full snapshots",
        "",
        f"The demo's order stream for {pipeline['delivery_count']} orders (a create, then an update that marks "
        "the order fulfilled and adds a note), delivered by the real deliver function to the CRM in the two ways "
        "targets take changes: as an envelope webhook (`crm`: one URL, the body says which entity, version and "
        "identifiers) and as a REST API of records (`crm-records`: `PATCH /orders/{order_id}` with the changed "
        'fields under `order`, the id in the path). "Full" is what a sync that pushes the whole entity would '
        "send for the same versions: the same envelope with every field, or the record with every field (a PUT). "
        "For the record API the request path is counted on both sides.",
        "",
        "| deliveries | change-only bytes | full-snapshot bytes | change-only / full |",
        "|---|---:|---:|---:|",
        *(
            f"| {label} | {sent} | {full} | {sent / full:.1%} |"
            for label, sent, full in (
                ("REST API of records, the updates (version 2)", up["crm-records"]["sent"], up["crm-records"]["full"]),
                ("envelope webhook, the updates (version 2)", up["crm"]["sent"], up["crm"]["full"]),
                (
                    "envelope webhook, the updates, its entity part only (`changes` vs every field)",
                    up["crm"]["sent_changes"],
                    up["crm"]["full_changes"],
                ),
                (
                    "REST API of records, the creates (version 1: every field is new)",
                    first["crm-records"]["sent"],
                    first["crm-records"]["full"],
                ),
                ("envelope webhook, the creates", first["crm"]["sent"], first["crm"]["full"]),
            )
        ),
        "",
        f"AWS calls per delivery (one record per invocation): {calls(pipeline['delivery_calls'])} — state + "
        "ack in one batch read and the ack write; the target's circuit is read once per warm container every few "
        "seconds (and its secret once, cached), not per delivery. "
        "A change-only update to a record API is the changed fields and the id in the path. An envelope webhook "
        "carries a fixed envelope on every message (tenant, type, id, version and the order's identifiers, about "
        "190 bytes), which is most of a change-only push of this small canonical order (about 1 KB in full); its "
        "entity part alone is the third row.",
        "",
        "## Reconciliation: AWS calls per order a scheduled pull lists",
        "",
        f"The reconcile function over {pipeline['reconcile_orders']} orders the fake shop lists (250 a page, as "
        "Shopify): first the bench's orders as they stand after their update, which the state already "
        "reflects; then as many orders that no webhook brought. Feeding in every listed order is the "
        "baseline: that is what the second row costs per order.",
        "",
        "| orders listed | AWS calls per order | calls per order / baseline |",
        "|---|---|---:|",
        f"| already in the state | {calls(pipeline['reconcile_known'])} | "
        f"{sum(pipeline['reconcile_known'].values()) / sum(pipeline['reconcile_missed'].values()):.3f} |",
        f"| missed by webhooks (baseline: fed in) | {calls(pipeline['reconcile_missed'])} | 1.000 |",
        "",
        "The comparison reads the states of a whole page in consistent BatchGetItem calls of up to 100 keys; "
        "a fed-in order is admitted like a webhook (admission record, inbox); the watermark is "
        "read once per run and written once per page; the token is read from Secrets Manager once (cached).",
        "",
        *sections,
        *identity_report(identity),
    ]
    return "\n".join(lines)


# The issue-15 figures, each module measured in a fresh interpreter of its own (each starts its own AWS
# stand-in), its report written here. capacity_inputs also rewrites bench/capacity_inputs.json, the
# measured inputs `aftersync capacity` reads.
SECTIONS = (
    "ingest_calls",
    "archive_events",
    "state_writes",
    "delivery_hotkeys",
    "capacity_inputs",
    "cold_start",
    "sandbox_load",
    "lookup",
    "backfill_files",
)
SECTION_PROBE = """
import importlib, json, sys
module = importlib.import_module("bench." + sys.argv[1])
result = module.measure()
if hasattr(module, "write_inputs"):
    module.write_inputs(result)
print(json.dumps(result, default=str))
"""


def measure_section(name: str) -> list[str]:
    import importlib

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run(  # noqa: S603 - our own interpreter, our own module
        [sys.executable, "-c", SECTION_PROBE, name],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    lines: list[str] = importlib.import_module(f"bench.{name}").report(result)
    return [*lines, ""]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:] == ["identity"]:
        return identity_only()
    named = sys.argv[1:]
    unknown = [a for a in named if a not in SECTIONS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: identity, {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    if named:  # e.g. `python -m bench.run lookup`: those sections alone, the rest of the file kept
        for name in named:
            section_only(name)
        return 0
    pipeline = measure_pipeline()
    sections = [line for name in SECTIONS for line in measure_section(name)]
    identity = measure_identity()
    text = report(pipeline, sections, identity)
    RESULTS.write_text(text, encoding="utf-8")
    print(text)
    return 0


IDENTITY_HEADING = "## Identity resolution"


def replace_section(text: str, lines: list[str]) -> str:
    """``text`` (bench/RESULTS.md) with the section that ``lines`` heads (its first line, a ``## `` heading)
    replaced by ``lines``, up to the next ``## `` heading; a section not there yet goes before identity's."""
    heading = lines[0]
    new = "\n".join(lines).rstrip("\n") + "\n\n"
    if f"\n{heading}\n" in text:
        head, rest = text.split(f"\n{heading}\n", 1)
        following = rest.find("\n## ")
        if following < 0:  # the last section: the file ends with it
            return f"{head}\n{new.rstrip(chr(10))}\n"
        return f"{head}\n{new}{rest[following + 1 :]}"
    if f"\n{IDENTITY_HEADING}" in text:
        head, tail = text.split(f"\n{IDENTITY_HEADING}", 1)
        return f"{head.rstrip(chr(10))}\n\n{new}{IDENTITY_HEADING}{tail}"
    return f"{text.rstrip(chr(10))}\n\n{new}"


def section_only(name: str) -> int:
    """``python -m bench.run <section>`` (e.g. ``lookup``): measure one section alone (in its own
    interpreter, as the full run does) and rewrite only that section of bench/RESULTS.md; the rest stays
    as the last full run wrote it (each section says when it was measured)."""
    lines = measure_section(name)
    RESULTS.write_text(replace_section(RESULTS.read_text(encoding="utf-8"), lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


def identity_only() -> int:
    """``python -m bench.run identity``: measure identity resolution alone (seconds, not the whole bench's
    half hour) and rewrite its section of bench/RESULTS.md, saying when; the rest of the file stays as the
    last full run wrote it."""
    from datetime import UTC, datetime

    lines = identity_report(measure_identity())
    stamp = (
        f"Measured by `python -m bench.run identity` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine()}); "
        "the sections above are from the full run dated at the top."
    )
    lines = [lines[0], "", stamp, *lines[1:]]
    text = RESULTS.read_text(encoding="utf-8")
    head = text.split(IDENTITY_HEADING, 1)[0]
    RESULTS.write_text(head + "\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
