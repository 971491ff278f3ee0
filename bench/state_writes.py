"""DynamoDB write units and calls per observation in sync: ``python -m bench.state_writes``.

Drives the real sync handler on moto (in process) with the demo's Shopify order: a new order of a new
customer, its update (fulfilled, with a note), and a second new order of the same customer. Every
DynamoDB request the sync function sends is recorded; write units are computed from the items in those
requests by DynamoDB's sizing rules (1 WRU per started KB for a standard write, 2 inside a
transaction). The baseline is the layout before issue 15, measured in the same run on the same states
and audit records: the state item as it was built then (the pydantic dump with a clock per field, as a
String) and the audit item with its copied attributes and ``"before": null`` for every new field.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

from bench.run import bench_environment

ROOT = Path(__file__).resolve().parents[1]


class Requests:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.name, copy.deepcopy(params)))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        taken, self.calls = self.calls, []
        return taken


def old_layout(state_item: dict[str, Any], audit_item: dict[str, Any] | None) -> tuple[dict[str, Any], Any]:
    """The same state and audit record as the items sync wrote before the compact layout."""
    from shared.delivery.targets import canonical_json
    from shared.state.audit import AuditRecord
    from shared.state.stored import state_from_item

    state = state_from_item(state_item)
    old_state = {
        "pk": state_item["pk"],
        "sk": state_item["sk"],
        "entity_type": {"S": state.entity_type},
        "version": state_item["version"],
        "revision": state_item["revision"],
        "doc": {"S": canonical_json(state.model_dump(mode="json"))},
        "audit_head": state_item["audit_head"],
    }
    if audit_item is None:
        return old_state, None
    record = AuditRecord.model_validate_json(audit_item["record"]["S"])
    changes = [{"field": c["field"], "before": c.get("before"), "after": c["after"]} for c in record.changes]
    old_record = record.model_copy(update={"changes": changes})
    old_audit = {
        "pk": audit_item["pk"],
        "sk": audit_item["sk"],
        "tenant": {"S": record.tenant},
        "entity_type": {"S": record.entity_type},
        "entity_id": {"S": record.entity_id},
        "version": {"N": str(record.version)},
        "record": {"S": old_record.model_copy(update={"hash": old_record.computed_hash()}).model_dump_json()},
        "expires_at": audit_item["expires_at"],
    }
    return old_state, old_audit


def layouts(state_item: dict[str, Any]) -> dict[str, int]:
    """The state item's size in each candidate layout (same state)."""
    from shared.adapters.dynamo import item_size
    from shared.delivery.targets import canonical_json
    from shared.state.stored import pack, state_from_item

    state = state_from_item(state_item)
    common = {k: state_item[k] for k in ("pk", "sk", "version", "revision", "audit_head")}
    full = canonical_json(state.model_dump(mode="json"))
    compact = zlib.decompress(pack(state)).decode()
    return {
        "before: pydantic dump, a clock per field (String)": item_size(old_layout(state_item, None)[0]),
        "full dump, zlib (Binary)": item_size({**common, "docz": {"B": zlib.compress(full.encode(), 9)}}),
        "clocks stored once, uncompressed (String)": item_size({**common, "doc": {"S": compact}}),
        "clocks stored once, zlib (Binary) — chosen": item_size({**common, "docz": {"B": pack(state)}}),
    }


def figures(calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Operations, and write units now and in the old layout, of one observation's requests."""
    from shared.adapters.dynamo import item_size, write_units

    operations = Counter(name for name, _ in calls)
    now = before = alternative = 0
    items: list[dict[str, Any]] = []
    for name, params in calls:
        raw = params
        if name == "TransactWriteItems":
            puts = [t["Put"]["Item"] for t in raw["TransactItems"]]
            state = next(i for i in puts if i["sk"]["S"] == "STATE")
            audit = next((i for i in puts if i["sk"]["S"].startswith("AUDIT#")), None)
            old_state, old_audit = old_layout(state, audit)
            now += sum(write_units(item_size(i), True) for i in puts)
            # The alternative not built: one conditional put of a state item that carries the new audit
            # entry (the stream publishing from it), and the AUDIT# item written from the stream.
            carried = item_size(state) + (item_size(audit) if audit else 0)
            alternative += write_units(carried, False) + (write_units(item_size(audit), False) if audit else 0)
            before += write_units(item_size(old_state), True) + (
                write_units(item_size(old_audit), True) if old_audit else 0
            )
            items.append(
                {
                    "entity": state["pk"]["S"].split("#")[1],
                    "state": item_size(state),
                    "audit": item_size(audit) if audit else 0,
                    "state_before": item_size(old_state),
                    "audit_before": item_size(old_audit) if old_audit else 0,
                    "layouts": layouts(state),
                }
            )
        elif name == "PutItem":
            now += write_units(item_size(raw["Item"]), False)
            before += write_units(item_size(raw["Item"]), False)
            alternative += write_units(item_size(raw["Item"]), False)
        elif name == "UpdateItem":  # identity index items (a key's owners, a profile): well under 1 KB
            now += 1
            before += 1
            alternative += 1
    return {
        "operations": dict(sorted(operations.items())),
        "wru": now,
        "wru_before": before,
        "wru_one_item": alternative,
        "items": items,
    }


def measure() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    bench_environment(None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from infra.config import load_environment
    from infra.sandbox import moto_fidelity
    from infra.sandbox.http_servers import api_gateway_event
    from infra.sandbox.lambda_runtime import Functions, sqs_record
    from infra.sandbox.resources import create_resources
    from infra.sandbox.samples import signed
    from infra.wiring import FUNCTIONS, function_environment

    secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
    shopify_secret = secrets["sources"]["shopify"]["demo"][0]
    cfg = load_environment("dev")
    moto_fidelity.apply()  # moto's EventBridge -> SQS events in the shape AWS sends them
    with mock_aws():
        resources = create_resources(cfg, secrets, visibility_timeout=30)
        for name in FUNCTIONS:
            os.environ.update(function_environment(name, cfg, resources.refs))
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
        functions = Functions(cfg.region, cfg.resource("fn"))
        sqs: Any = boto3.client("sqs")  # its messages go on as plain dicts

        def through_normalise(sample: str, **body: Any) -> None:
            webhook = signed(sample, shopify_secret)
            if body:  # another order: its own body and event id
                document = {**json.loads(webhook.body), **body}
                headers = {"X-Shopify-Event-Id": f"bench-{body['id']}"}
                webhook = signed(sample, shopify_secret, json.dumps(document).encode(), **headers)
            event = api_gateway_event("POST", "/webhooks/shopify/demo", webhook.headers, webhook.body)
            assert functions.invoke("ingest", event)["statusCode"] == 200
            url, arn = resources.queue_urls["inbox"], resources.queue_arns["inbox"]
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            functions.invoke("normalise", {"Records": [sqs_record(m, arn, cfg.region) for m in messages]})
            for m in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

        requests = Requests()

        def sync() -> dict[str, Any]:
            url, arn = resources.queue_urls["orders"], resources.queue_arns["orders"]
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            client = importlib.import_module("functions.sync.handler").ports().store.client
            client.meta.events.register("provide-client-params.dynamodb", requests)
            try:
                answer = functions.invoke("sync", {"Records": [sqs_record(m, arn, cfg.region) for m in messages]})
            finally:
                client.meta.events.unregister("provide-client-params.dynamodb", requests)
            assert answer == {"batchItemFailures": []}, answer
            for m in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return figures(requests.take())

        through_normalise("shopify_orders_create")
        new_order_new_customer = sync()
        through_normalise("shopify_orders_updated")
        update = sync()
        through_normalise("shopify_orders_create", id=820982911946154509, name="#1002")
        new_order_known_customer = sync()
    return {
        "new_order_new_customer": new_order_new_customer,
        "update": update,
        "new_order_known_customer": new_order_known_customer,
    }


def report(result: dict[str, Any]) -> list[str]:
    def ops(figure: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in figure["operations"].items())

    rows = [
        ("order update (existing customer)", result["update"]),
        ("new order, customer already known", result["new_order_known_customer"]),
        ("new order, new customer", result["new_order_new_customer"]),
    ]
    lines = [
        "## State writes: DynamoDB write units and calls per observation (sync)",
        "",
        "`python -m bench.state_writes`: the real sync handler on moto with the demo's Shopify order; write "
        "units from the sizes of the items in the requests sync sent (1 WRU per started KB, 2 in a "
        "transaction; the identity index's small UpdateItems 1 each). Baseline: the same states and audit "
        "records in the layout before issue 15 (state as the pydantic dump with a clock per field, audit "
        "item with copied attributes and `before: null` per new field), sized in the same run. Calls are "
        "this run's; before issue 15 sync made 2 BatchGetItem + 2 GetItem + 1 TransactWriteItems for an "
        "update, and 1 more PutItem for the customer's moved clocks.",
        "",
        "| observation | WRU now | WRU in the old layout | ratio | WRU, one item + stream (not built) | calls now |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, figure in rows:
        lines.append(
            f"| {name} | {figure['wru']} | {figure['wru_before']} | {figure['wru'] / figure['wru_before']:.2f} "
            f"| {figure['wru_one_item']} | {ops(figure)} ({sum(figure['operations'].values())}) |"
        )
    lines += [
        "",
        "Now: state and audit record in one transaction (kept: published iff committed, exactly). The "
        "alternative column sizes the same items as one conditional put of a state item carrying the new "
        "audit entry, plus the AUDIT# item written from the stream (publish would change; see "
        "docs/design.md, State writes sized for the peak).",
        "",
        "Item sizes (bytes) in the transactions above:",
        "",
        "| observation | entity | state now | state before | audit now | audit before |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, figure in rows:
        for item in figure["items"]:
            lines.append(
                f"| {name} | {item['entity']} | {item['state']} | {item['state_before']} | {item['audit']} "
                f"| {item['audit_before']} |"
            )
    order_after_update = result["update"]["items"][0]["layouts"]
    lines += [
        "",
        "The order's state item after its update, in each layout considered (bytes; 1 KB = 1024):",
        "",
        "| layout | bytes | vs before |",
        "|---|---:|---:|",
    ]
    baseline = next(iter(order_after_update.values()))
    for layout, size in order_after_update.items():
        lines.append(f"| {layout} | {size} | {size / baseline:.2f} |")
    lines.append("")
    return lines


if __name__ == "__main__":
    print("\n".join(report(measure())))
