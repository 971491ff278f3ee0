"""Hot keys on the delivery path: ``python -m bench.delivery_hotkeys``.

The real deliver handler, on in-process moto, delivers orders to two targets of the dev environment:
the CRM (no rate limit) and the ERP (20 a second, so its queue runs 2 containers). Deliveries arrive at
``BENCH_HOTKEY_RATE`` a second per target (default 20: the ERP's limit, so none waits) on a clock the
bench moves, alternating between two warm containers (two sets of the handler's adapters). Counted, with
botocore's ``before-call`` and ``before-parameter-build`` events: AWS calls per delivery by operation,
and reads and writes per ``ops#`` item, per item and clock second (the hottest item's writes a second).

The baseline runs in the same process on other orders, with the old design's calls per delivery set by
config: the circuit read before every delivery (``circuit.cache_seconds`` 0) and the rate counter written
by every delivery (``max_concurrency`` = the limit: blocks of one slot) — 1 read + 1 rate write per
delivery, as before this change. (The old counter was also one partition key per target for every
second; the baseline's per-second items only make the baseline look better, not worse.)
"""

from __future__ import annotations

import json
import os
import sys
import time
import types
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DELIVERIES = int(os.environ.get("BENCH_HOTKEY_DELIVERIES", "300"))  # over both targets
RATE = float(os.environ.get("BENCH_HOTKEY_RATE", "20"))  # deliveries a second, per target
TARGETS = ("crm", "erp")
CONTAINERS = 2


class OpsCounter:
    """AWS calls by operation; reads and writes of ``ops#`` items by (item, clock second)."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.reads: Counter[tuple[str, int]] = Counter()
        self.writes: Counter[tuple[str, int]] = Counter()

    def call(self, event_name: str, **_: Any) -> None:  # before-call.<service>.<Operation>
        service, operation = event_name.split(".", 2)[1:]
        self.calls[f"{service}:{operation}"] += 1

    def parameters(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        key: dict[str, dict[str, str]] = params.get("Key") or {}
        pk, sk = key.get("pk", {}).get("S", ""), key.get("sk", {}).get("S", "")
        if not pk.startswith("ops#"):
            return
        item = f"{pk} / {sk}"
        operation = event_name.rsplit(".", 1)[-1]
        (self.reads if operation == "GetItem" else self.writes)[(item, int(self.clock[0]))] += 1

    def take(self) -> dict[str, Any]:
        taken = {"calls": self.calls, "reads": self.reads, "writes": self.writes}
        self.calls, self.reads, self.writes = Counter(), Counter(), Counter()
        return taken


@contextmanager
def aws() -> Iterator[None]:
    from moto import mock_aws

    from infra.sandbox import moto_fidelity

    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "Aftersync",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    moto_fidelity.apply()
    try:
        with mock_aws():
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def baseline_targets(cfg: Any) -> Any:
    """The old design's calls per delivery, by config: no circuit cache, a rate write per delivery."""
    targets = []
    for t in cfg.targets:
        changes: dict[str, Any] = {"circuit": {**t.circuit.model_dump(), "cache_seconds": 0}}
        if t.rate_limit_per_second is not None:
            changes["max_concurrency"] = max(2, t.rate_limit_per_second)  # its share: one slot
        targets.append(type(t).model_validate({**t.model_dump(), **changes}))
    return cfg.model_copy(update={"targets": tuple(targets)})


def measure() -> dict[str, Any]:
    import boto3

    import functions.deliver.handler as deliver
    from bench.run import entity_changed_record, webhook
    from infra.config import load_environment
    from infra.sandbox.http_servers import FakeTarget, serve
    from infra.sandbox.lambda_runtime import Functions, sqs_record
    from infra.sandbox.resources import create_resources, local_targets
    from infra.wiring import FUNCTIONS, function_environment
    from shared.adapters.state_store import DynamoStateStore

    per_target = DELIVERIES // len(TARGETS)
    target = FakeTarget()
    serve(target.server)
    secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
    cfg = local_targets(load_environment("dev"), target.url, target.url)
    clock = [0.0]
    with aws():
        counter = OpsCounter(clock)
        boto3.setup_default_session()
        events = boto3.DEFAULT_SESSION.events  # type: ignore[union-attr]
        events.register("before-call", counter.call)
        events.register("before-parameter-build.dynamodb", counter.parameters)
        resources = create_resources(cfg, secrets, visibility_timeout=30)
        fake_ports = (target.server.server_port,)  # the only loopback port the functions may call
        for name in FUNCTIONS:
            os.environ.update(function_environment(name, cfg, resources.refs, loopback_ports=fake_ports))
        functions = Functions(cfg.region, cfg.resource("fn"))
        sqs = boto3.client("sqs")

        def drain(queue: str, function: str) -> None:
            url, arn = resources.queue_urls[queue], resources.queue_arns[queue]
            while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                records = [sqs_record(dict(m), arn, cfg.region) for m in messages]
                functions.invoke(function, {"Records": records})
                for m in messages:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        # Orders in the state (ingest -> normalise -> sync): half for the baseline, half for this design
        secret = secrets["sources"]["shopify"]["demo"][0]
        for n in range(2 * per_target):
            functions.invoke("ingest", webhook(secret, n)[0])
        drain("inbox", "normalise")
        drain("orders", "sync")
        store = DynamoStateStore(resources.refs.state_table)
        ids = [f"shopify:{900000000000000000 + n}" for n in range(2 * per_target)]
        states = [store.load("demo", "order", entity_id)[0] for entity_id in ids]
        functions.handler("deliver")  # imported: its caches are cleared below for each run

        real_time = deliver.time
        real_ports = deliver.ports

        def run(run_cfg: Any, run_states: list[Any]) -> dict[str, Any]:
            os.environ.update(function_environment("deliver", run_cfg, resources.refs, loopback_ports=fake_ports))
            for cached in (deliver.settings, deliver.ports, deliver.processor):
                cached.cache_clear()
            containers = []
            for _ in range(CONTAINERS):  # each its own adapters: its own circuit copies and leases
                real_ports.cache_clear()
                containers.append(real_ports())
            current = [containers[0]]
            deliver.ports = lambda: current[0]  # type: ignore[assignment]
            deliver.time = types.SimpleNamespace(time=lambda: clock[0])  # type: ignore[assignment]
            # a whole second after the real now and after any second an earlier run counted slots in
            start = float(max(int(time.time()), int(clock[0])) + 2)
            sent_before = {name: len(target.accepted(name)) for name in TARGETS}
            counter.take()
            try:
                for k, state in enumerate(run_states):
                    clock[0] = start + k / RATE
                    current[0] = containers[k % CONTAINERS]
                    for name in TARGETS:
                        record = entity_changed_record(resources, run_cfg, name, state)
                        assert functions.invoke("deliver", {"Records": [record]}) == {"batchItemFailures": []}
            finally:
                deliver.ports, deliver.time = real_ports, real_time
            taken = counter.take()
            for name in TARGETS:
                delivered = len(target.accepted(name)) - sent_before[name]
                assert delivered == len(run_states), f"{name}: {delivered} of {len(run_states)} arrived"
            return summary(taken, len(run_states) * len(TARGETS))

        baseline = run(baseline_targets(cfg), states[:per_target])
        now = run(cfg, states[per_target:])
    target.server.shutdown()
    erp = next(t for t in cfg.targets if t.name == "erp")
    return {
        "deliveries": per_target * len(TARGETS),
        "rate": RATE,
        "containers": CONTAINERS,
        "erp_limit": erp.rate_limit_per_second,
        "erp_block": erp.token_block(),
        "cache_seconds": erp.circuit.cache_seconds,
        "baseline": baseline,
        "now": now,
    }


def summary(taken: dict[str, Any], deliveries: int) -> dict[str, Any]:
    def per_item(counts: Counter[tuple[str, int]]) -> dict[str, int]:
        items: Counter[str] = Counter()
        for (item, _), n in counts.items():
            items[item] += n
        return dict(items)

    def hottest(counts: Counter[tuple[str, int]]) -> tuple[str, int]:
        if not counts:
            return ("-", 0)
        (item, _), n = counts.most_common(1)[0]
        return item, n

    calls = {k: v / deliveries for k, v in sorted(taken["calls"].items())}
    reads, writes = per_item(taken["reads"]), per_item(taken["writes"])
    return {
        "calls_per_delivery": calls,
        "calls_total_per_delivery": sum(calls.values()),
        "ops_reads": reads,
        "ops_writes": writes,
        "ops_items_read": len(reads),
        "ops_items_written": len(writes),
        "ops_reads_per_delivery": sum(reads.values()) / deliveries,
        "ops_writes_per_delivery": sum(writes.values()) / deliveries,
        "hottest_read_per_second": hottest(taken["reads"]),
        "hottest_write_per_second": hottest(taken["writes"]),
    }


def report(result: dict[str, Any]) -> list[str]:
    base, now = result["baseline"], result["now"]

    def ratio(old: float, new: float) -> str:
        return f"{old / new:.1f}×" if new else "∞ (none now)"

    def calls(table: dict[str, float]) -> str:
        return ", ".join(f"{k.split(':', 1)[1]} {v:.3f}" for k, v in table.items())

    def items(writes: dict[str, int]) -> str:
        if not writes:
            return "none"
        return (
            f"{sum(writes.values())} writes on {len(writes)} items, {min(writes.values())}–{max(writes.values())} each"
        )

    rate, deliveries = result["rate"], result["deliveries"]
    hot_read_item, hot_read = now["hottest_read_per_second"]
    base_read_item, base_read = base["hottest_read_per_second"]
    hot_write_item, hot_write = now["hottest_write_per_second"]
    base_write_item, base_write = base["hottest_write_per_second"]
    return [
        "## Hot keys on the delivery path",
        "",
        f"{deliveries} deliveries (half to the CRM, no rate limit; half to the ERP, {result['erp_limit']}/s, "
        f"blocks of {result['erp_block']} slots) at {rate:g}/s per target on the bench's clock, alternating "
        f"between {result['containers']} warm containers; the real deliver handler on moto "
        "(`python -m bench.delivery_hotkeys`). Baseline, same run, other orders: the old design's calls per "
        "delivery set by config — the circuit read before every delivery (`circuit.cache_seconds` 0) and "
        "the rate counter written by every delivery (blocks of 1 slot): 1 read + 1 rate write per delivery.",
        "",
        "| figure | baseline (old calls) | now | ratio |",
        "|---|---|---|---|",
        f"| AWS calls per delivery | {base['calls_total_per_delivery']:.3f} | {now['calls_total_per_delivery']:.3f} "
        f"| {ratio(base['calls_total_per_delivery'], now['calls_total_per_delivery'])} |",
        f"| `ops#` reads per delivery (circuit GetItem) | {base['ops_reads_per_delivery']:.3f} | "
        f"{now['ops_reads_per_delivery']:.3f} | "
        f"{ratio(base['ops_reads_per_delivery'], now['ops_reads_per_delivery'])} |",
        f"| `ops#` writes per delivery (rate counter) | {base['ops_writes_per_delivery']:.3f} | "
        f"{now['ops_writes_per_delivery']:.3f} | "
        f"{ratio(base['ops_writes_per_delivery'], now['ops_writes_per_delivery'])} |",
        f"| hottest `ops#` item, writes in one second | {base_write} | {hot_write} | {ratio(base_write, hot_write)} |",
        f"| hottest `ops#` item, reads in one second | {base_read} | {hot_read} | {ratio(base_read, hot_read)} |",
        "",
        f"- Calls per delivery, baseline: {calls(base['calls_per_delivery'])}",
        f"- Calls per delivery, now: {calls(now['calls_per_delivery'])}",
        "- Steady state is BatchGetItem (state + ack) + PutItem (ack): 2 calls. The rest is amortised: the "
        f"circuit read once per {result['cache_seconds']:g} s per container and target, a rate lease per "
        "block of slots per container, the target's secret once per container.",
        f"- Reads per `ops#` item, now: {now['ops_reads']}; baseline: {base['ops_reads']}",
        f"- Writes per `ops#` item (one rate item per target and second), now: {items(now['ops_writes'])}; "
        f"baseline: {items(base['ops_writes'])}",
        f"- Hottest items: now `{hot_write_item}` (writes), `{hot_read_item}` (reads); baseline "
        f"`{base_write_item}`, `{base_read_item}`.",
        f"- At a rate of r deliveries/s to one target: the old design read its circuit item r times a second "
        f"and wrote its rate item min(r, limit) times a second (plus one refused write per delivery over the "
        f"limit); now the circuit item is read once per {result['cache_seconds']:g} s per warm container, and "
        "each second's rate item is written at most twice per container (a block, and once finding the "
        "second used up) — 2 × the queue's concurrency at most, whatever r.",
        "",
    ]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    result = measure()
    print("\n".join(report(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
