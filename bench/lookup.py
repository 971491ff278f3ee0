"""DynamoDB calls per lookup, and the projector's cost per order update: ``python -m bench.lookup``.

Issue 16: a lookup costs at most 3 DynamoDB calls (batch reads), shown per selector. The stack's
resources on moto (in process), the real handlers; the customer view is built by the real projector
from the state table's stream. One customer (Lei Li) buys on Shopify (phone and e-mail) and on Youzan
(the ERP adds the buyer and a serial; the order ships with a tracking number); the CRM knows Lei by
e-mail with a WeCom external user id; Wei Wang's customer is absorbed into Lei's. Then each selector
is asked once through the real lookup handler (a reader's bearer key, as API Gateway hands it over),
counting the handler's calls by operation (botocore ``before-call``) and the read units of what each
read returned (``bench.capacity_inputs.Probe``: DynamoDB's size rules). Every lookup is recorded in
the read audit: that PutItem is counted, in its own column.

The projector: ``ORDERS`` Shopify orders, each its own customer, then an update of each (fulfilled, a
note). The updates go through the real ingest, normalise and sync; the stream records the project
function's event source mapping lets through (its filters in ``infra/constructs/compute.py``) are
handed to the real project function in batches of the sized environment's; its calls and write units
per update are set against sync's state write (the transaction of state and audit record) for the
same updates.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.run import CallCounter, bench_environment, machine

ROOT = Path(__file__).resolve().parents[1]
ORDERS = int(os.environ.get("BENCH_LOOKUP_ORDERS", "50"))
SIZED_FOR = "prod"  # the project function's stream batch size is this environment's
TENANT = "demo"
READER = "demo-agent"
GOAL_CALLS = 3
LEI_PHONE, LEI_EMAIL, WEI_PHONE = "+86 138 0013 8000", "lei.li@example.com", "13500135000"
WECOM_ID = "wmLeiLi0000000000000000000000001"
SERIAL, TRACKING = "SN-RV2-0001", "75311234567890"  # events/youzan_trade_order_express.json
YOUZAN_ORDER = "youzan:E20261121103015012300001"
PAGE = 5  # the timeline page of the paged cases
STATE_SK, PROFILE_SK = "STATE", "PROFILE"


def project_reads(record: dict[str, Any]) -> bool:
    """Whether the project function's event source mapping passes a stream record (its filters)."""
    stream = record.get("dynamodb") or {}
    sk = str(stream.get("Keys", {}).get("sk", {}).get("S", ""))
    event = record.get("eventName")
    if sk == STATE_SK:
        return event in ("INSERT", "MODIFY")
    if sk.startswith("AUDIT#"):
        return event == "INSERT"
    if sk == PROFILE_SK and event in ("INSERT", "MODIFY"):
        return any("alias_of" in (stream.get(image) or {}) for image in ("NewImage", "OldImage"))
    return False


def _erp(secret: str, webhook_id: str, observation: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    from shared.signing import standard_sign

    raw = json.dumps(observation).encode()
    timestamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_sign(secret, webhook_id, timestamp, raw),
    }, raw


def _shopify(secret: str, order_id: int, customer: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    import uuid

    from infra.sandbox.samples import body_bytes, load_sample
    from shared.sources import shopify

    sample = load_sample("shopify_orders_create")
    sample["body"].update(
        {
            "id": order_id,
            "name": f"#{order_id}",
            "customer": customer,
            "email": customer.get("email"),
            "phone": customer.get("phone"),
        }
    )
    raw = body_bytes(sample)
    headers = {
        **sample["headers"],
        shopify.EVENT_ID_HEADER: str(uuid.uuid4()),
        shopify.SIGNATURE_HEADER: shopify.sign(secret, raw),
    }
    return headers, raw


def _youzan_order_by_the_erp() -> dict[str, Any]:
    """The ERP's record of the Youzan order: the buyer (Youzan's push names none) and the serial."""
    return {
        "entity_type": "order",
        "entity_id": YOUZAN_ORDER,
        "occurred_at": "2026-11-21T02:40:00Z",
        "entity": {
            "order_id": "E20261121103015012300001",
            "channel": "youzan",
            "customer_source_id": "yz-buyer-88",
            "customer_name": "Lei Li",
            "customer_phone": "13800138000",
            "lines": [
                {
                    "line_id": "1",
                    "sku": "ROBOT-V2",
                    "title": "扫地机器人",
                    "quantity": 1,
                    "unit_price": {"amount": "299.00", "currency": "CNY"},
                    "serial_number": SERIAL,
                    "warranty_ends_on": "2027-11-20",
                }
            ],
        },
    }


def _crm_customer() -> dict[str, Any]:
    """The CRM's record of Lei: the e-mail (joins the Shopify account) and the WeCom external user id."""
    return {
        "entity_type": "customer",
        "entity_id": "C-88",
        "occurred_at": "2026-11-21T03:00:00Z",
        "entity": {
            "source_customer_id": "C-88",
            "name": "Lei Li",
            "email": LEI_EMAIL,
            "wecom_external_user_id": WECOM_ID,
        },
    }


def _record_kind(record: dict[str, Any]) -> str:
    sk = str(record["dynamodb"]["Keys"]["sk"]["S"])
    return "states" if sk == STATE_SK else "audit records" if sk.startswith("AUDIT#") else "identity profiles"


def _totals(tally: Any) -> dict[str, float]:
    return {
        "wru": sum(t.wru for t in tally.touches),
        "rru": sum(t.rru for t in tally.touches),
    }


def _view_kind(pk: str) -> str:
    if "#view#" in pk:
        return "view"
    if "#sel#" in pk:
        return "selector"
    if "#idkey#" in pk or "#idprofile#" in pk:
        return "identity index"
    if "#read#" in pk or "#reads#" in pk:
        return "read audit"
    return "state"


def measure() -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    bench_environment(None)
    os.environ["AWS_ACCOUNT_ID_ENDPOINT_MODE"] = "disabled"  # moto in process answers the classic endpoints
    counter = CallCounter()

    from bench.capacity_inputs import Probe, StageTally, _order_webhook
    from infra.config import load_environment
    from infra.sandbox import moto_fidelity
    from infra.sandbox.http_servers import FakeTarget, api_gateway_event, serve
    from infra.sandbox.lambda_runtime import Functions, sqs_record
    from infra.sandbox.pollers import SqsPoller, StreamPoller
    from infra.sandbox.resources import create_resources, local_targets
    from infra.wiring import FUNCTIONS, STREAM_CONSUMERS, function_environment, queues, stream_batching
    from shared.adapters.identity_index import DynamoIdentityIndex
    from shared.adapters.state_store import DynamoStateStore

    moto_fidelity.apply()
    target = FakeTarget()
    serve(target.server)
    secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
    cfg = local_targets(load_environment("dev"), target.url, target.url)
    saved = dict(os.environ)
    try:
        with mock_aws():  # (it sets boto3's default session aside: the counted one is made within)
            boto3.setup_default_session()
            session = boto3.DEFAULT_SESSION
            assert session is not None
            session.events.register("before-call", counter)
            resources = create_resources(cfg, secrets, visibility_timeout=30)
            resources.queue_urls["publish-dlq"] = boto3.client("sqs").create_queue(
                QueueName=cfg.resource("publish-dlq")
            )["QueueUrl"]
            for name in FUNCTIONS:
                os.environ.update(
                    function_environment(name, cfg, resources.refs, loopback_ports=(target.server.server_port,))
                )
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
            table = resources.refs.state_table
            side = boto3.session.Session()  # the probe's and the bench's own reads: not counted
            side_dynamodb, side_sqs, side_streams = (
                side.client("dynamodb"),
                side.client("sqs"),
                side.client("dynamodbstreams"),
            )
            probe = Probe(
                side_dynamodb,
                {table: "state", resources.refs.view_table: "view", resources.refs.idempotency_table: "idempotency"},
            )
            session.events.register("before-parameter-build", probe.before)
            session.events.register("after-call", probe.after)
            functions = Functions(cfg.region, cfg.resource("fn"))

            def post(source: str, headers: dict[str, str], body: bytes) -> None:
                event = api_gateway_event("POST", f"/webhooks/{source}/{TENANT}", headers, body)
                answer = functions.invoke("ingest", event)
                assert answer["statusCode"] == 200, answer

            def run_until_quiet(max_rounds: int = 50) -> None:
                pollers: list[Any] = [
                    SqsPoller(
                        functions,
                        spec.consumer,
                        resources.queue_urls[spec.purpose],
                        resources.queue_arns[spec.purpose],
                        cfg.region,
                        retry_delay=None if spec.consumer == "deliver" else lambda _: 0,
                    )
                    for spec in queues(cfg)
                    if spec.consumer
                ]
                pollers += [
                    StreamPoller(functions, f, resources.stream_arn, resources.queue_urls["publish-dlq"], cfg.region)
                    for f in STREAM_CONSUMERS
                ]
                quiet = 0
                for _ in range(max_rounds):
                    quiet = quiet + 1 if sum(p.poll_once() for p in pollers) == 0 else 0
                    if quiet >= 2:
                        return
                raise RuntimeError("the pipeline did not go quiet")

            # ---- the data: Lei on two shops, the CRM, Wei absorbed into Lei; ORDERS other buyers ----
            shopify = secrets["sources"]["shopify"][TENANT][0]
            youzan = secrets["sources"]["youzan"][TENANT][0]
            erp = secrets["sources"]["erp"][TENANT][0]
            from infra.sandbox.samples import signed

            lei = {"id": 3001, "first_name": "Lei", "last_name": "Li", "phone": LEI_PHONE, "email": LEI_EMAIL}
            wei = {"id": 3003, "first_name": "Wei", "last_name": "Wang", "phone": WEI_PHONE, "email": None}
            post("shopify", *_shopify(shopify, 5001, lei))
            run_until_quiet()  # (one after the other: two records of one new person at once make two customers)
            state = signed("youzan_trade_order_state", youzan)
            post("youzan", state.headers, state.body)
            run_until_quiet()
            post("erp", *_erp(erp, "msg_bench_erp_1", _youzan_order_by_the_erp()))
            run_until_quiet()
            express = signed("youzan_trade_order_express", youzan)
            post("youzan", express.headers, express.body)
            post("erp", *_erp(erp, "msg_bench_crm_1", _crm_customer()))
            post("shopify", *_shopify(shopify, 5003, wei))
            run_until_quiet()
            store = DynamoStateStore(table)

            def customer_of(order_id: str) -> str:
                found, _ = store.load(TENANT, "order", order_id)
                assert found is not None
                return str(found.fields["customer_id"])

            lei_id, wei_id = customer_of("shopify:5001"), customer_of("shopify:5003")
            assert customer_of(YOUZAN_ORDER) == lei_id, "the Youzan order is not Lei's: the bench's data is off"
            DynamoIdentityIndex(table, TENANT).absorb(wei_id, lei_id, ("bench",), by="bench")
            run_until_quiet()
            for n in range(ORDERS):
                event = _order_webhook(shopify, n, False)
                event.pop("_bytes")
                assert functions.invoke("ingest", event)["statusCode"] == 200
            run_until_quiet(max_rounds=200)

            # ---- lookups through the real handler ----
            key = secrets["readers"][READER]["key"]

            def ask(query: str) -> tuple[dict[str, Any], Counter[str], dict[str, float]]:
                event = api_gateway_event(
                    "GET", f"/v1/{TENANT}/lookup?{query}", {"Authorization": f"Bearer {key}"}, b""
                )
                counter.take()
                probe.tally = StageTally()
                answer = functions.invoke("lookup", event)
                return answer, counter.take(), _totals(probe.tally)

            from urllib.parse import quote

            ask(f"phone={quote(LEI_PHONE)}")  # warm up: the reader's key and the tenant's salt (cached)
            first_page, _, _ = ask(f"phone={quote(LEI_PHONE)}&limit={PAGE}")
            cursor = json.loads(first_page["body"])["next_cursor"]
            assert cursor, "the timeline has no second page: the bench's data is too small"
            cases: list[tuple[str, str, str, int, str | None]] = [
                ("phone", "phone", LEI_PHONE, 200, lei_id),
                ("email (another case, spaces)", "email", f"  {LEI_EMAIL.upper()} ", 200, lei_id),
                ("order number (`#5001`)", "order", "#5001", 200, lei_id),
                ("`<source>:<id>`", "order", YOUZAN_ORDER, 200, lei_id),
                ("serial", "serial", SERIAL.lower(), 200, lei_id),
                ("tracking", "tracking", TRACKING, 200, lei_id),
                ("wecom_external_userid", "wecom_external_userid", WECOM_ID, 200, lei_id),
                ("customer_id", "customer_id", lei_id, 200, lei_id),
                ("phone of an absorbed customer (Wei's, absorbed into Lei's)", "phone", WEI_PHONE, 200, lei_id),
                (f"phone, the timeline's second page (`cursor`, limit {PAGE})", "phone", LEI_PHONE, 200, lei_id),
                ("phone nobody has (404)", "phone", "13900139000", 404, None),
            ]
            rows = []
            for label, kind, value, status, customer in cases:
                query = f"{kind}={quote(value)}"
                if "cursor" in label:
                    query += f"&limit={PAGE}&cursor={quote(cursor)}"
                answer, calls, units = ask(query)
                body = json.loads(answer["body"])
                assert answer["statusCode"] == status, (label, answer["statusCode"], body)
                assert body.get("customer_id") == customer, (label, body.get("customer_id"), customer)
                dynamodb = {k.split(":", 1)[1]: v for k, v in sorted(calls.items()) if k.startswith("dynamodb:")}
                reads = sum(v for k, v in dynamodb.items() if k != "PutItem")
                rows.append(
                    {
                        "case": label,
                        "selector": kind,
                        "status": answer["statusCode"],
                        "dynamodb": dynamodb,
                        "reads": reads,
                        "audit_writes": dynamodb.get("PutItem", 0),
                        "other": {k: v for k, v in sorted(calls.items()) if not k.startswith("dynamodb:")},
                        "rru": units["rru"],
                        "wru": units["wru"],
                        "orders": len(body.get("orders", [])),
                        "timeline": len(body.get("timeline", [])),
                    }
                )

            # ---- the projector: one update of each of the ORDERS orders ----
            stream_arn = resources.stream_arn
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

            stream_records()  # the setup's records: already projected

            def drain(queue: str, function: str) -> int:
                handled = 0
                while True:
                    messages = side_sqs.receive_message(
                        QueueUrl=resources.queue_urls[queue], MaxNumberOfMessages=10
                    ).get("Messages", [])
                    if not messages:
                        return handled
                    records = [sqs_record(m, resources.queue_arns[queue], cfg.region) for m in messages]
                    result = functions.invoke(function, {"Records": records})
                    assert not (result or {}).get("batchItemFailures"), result
                    for m in messages:
                        side_sqs.delete_message(QueueUrl=resources.queue_urls[queue], ReceiptHandle=m["ReceiptHandle"])
                    handled += len(messages)

            for n in range(ORDERS):
                event = _order_webhook(shopify, n, True)
                event.pop("_bytes")
                assert functions.invoke("ingest", event)["statusCode"] == 200
            drain("inbox", "normalise")
            counter.take()
            sync_tally = probe.tally = StageTally()
            synced = drain("orders", "sync")
            sync_calls = Counter({k: v for k, v in counter.take().items() if k.startswith("dynamodb:")})
            assert synced == ORDERS, f"sync saw {synced} observations for {ORDERS} updates"
            records = stream_records()
            passed = [r for r in records if project_reads(r)]
            batch = stream_batching(load_environment(SIZED_FOR), "project").batch_size
            project_tally = probe.tally = StageTally()
            project_calls: Counter[str] = Counter()
            invocations = 0
            for i in range(0, len(passed), batch):
                counter.take()
                result = functions.invoke("project", {"Records": passed[i : i + batch]})
                assert not (result or {}).get("batchItemFailures"), result
                project_calls += counter.take()
                invocations += 1
            by_kind: Counter[str] = Counter()
            for touch in project_tally.touches:
                if touch.wru:
                    by_kind[_view_kind(touch.pk)] += touch.wru
            sync_by_kind: Counter[str] = Counter()
            for touch in sync_tally.touches:
                if touch.wru:
                    sync_by_kind[_view_kind(touch.pk)] += touch.wru
            kinds = Counter(_record_kind(r) for r in passed)
            projector = {
                "updates": ORDERS,
                "stream_records": len(records),
                "passed": len(passed),
                "passed_by_kind": dict(kinds),
                "batch_size": batch,
                "invocations": invocations,
                "calls": dict(sorted(project_calls.items())),
                "wru": _totals(project_tally)["wru"],
                "rru": _totals(project_tally)["rru"],
                "wru_by_kind": dict(sorted(by_kind.items())),
                "sync_calls": dict(sorted(sync_calls.items())),
                "sync_wru": _totals(sync_tally)["wru"],
                "sync_rru": _totals(sync_tally)["rru"],
                "sync_wru_by_kind": dict(sorted(sync_by_kind.items())),
            }
            return {
                "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": machine(),
                "orders": ORDERS,
                "page": PAGE,
                "lookups": rows,
                "projector": projector,
            }
    finally:
        os.environ.clear()
        os.environ.update(saved)
        target.server.shutdown()


def _ops(calls: dict[str, float], per: float = 1.0) -> str:
    return ", ".join(f"{k.split(':', 1)[-1]} {v / per:.2f}".replace(".00", "") for k, v in calls.items()) or "none"


def report(result: dict[str, Any]) -> list[str]:
    """Markdown lines for bench/RESULTS.md."""
    rows = result["lookups"]
    over = [r["case"] for r in rows if r["reads"] > GOAL_CALLS]
    p = result["projector"]
    n = p["updates"]
    calls = sum(p["calls"].values()) / n
    sync_calls = sum(p["sync_calls"].values()) / n
    lines = [
        "## Lookup: DynamoDB calls per lookup, and the projector's cost per order update",
        "",
        f"`python -m bench.lookup` (`python -m bench.run lookup` rewrites this section alone), "
        f"{result['measured_at']}, {result['machine']}. The stack on moto, the real handlers; the customer view "
        "built by the real project function from the state table's stream. One customer (Lei Li) with a Shopify "
        "order (phone, e-mail), a Youzan order (the ERP adds the buyer and a serial) that ships, a CRM record "
        "(e-mail, WeCom external user id), and Wei Wang's customer absorbed into Lei's; each selector asked once "
        "through the real lookup handler with an agent's key, after one warm-up lookup (the reader's key and the "
        "tenant's salt are cached). Calls counted with botocore `before-call`; read units from the sizes of "
        f"the items each read returned. Issue 16's goal: at most {GOAL_CALLS} DynamoDB calls (batch reads) a "
        "lookup.",
        "",
        "| lookup by | status | DynamoDB reads | reads by operation | read-audit write | RRU | other AWS calls |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        reads = {k: v for k, v in r["dynamodb"].items() if k != "PutItem"}
        flag = f" (over {GOAL_CALLS})" if r["reads"] > GOAL_CALLS else ""
        lines.append(
            f"| {r['case']} | {r['status']} | **{r['reads']}**{flag} | {_ops(reads)} | "
            f"PutItem {r['audit_writes']} ({r['wru']:.0f} WRU) | {r['rru']:.1f} | {_ops(r['other'])} |"
        )
    lines += [
        "",
        (
            f"Over the goal: {'; '.join(over)}. The absorbed customer's phone names Wei's customer id; its "
            "view holds only the alias marker, so the lookup reads it (a Query) before the survivor's: one "
            "call more than the goal (an open defect, being fixed in `shared/read/lookup.py`). "
            if over
            else f"Every lookup measured is within the goal of {GOAL_CALLS} reads. "
        )
        + "Every lookup, a 404 too, also writes its read-audit record (one PutItem besides the reads). A "
        "lookup by customer id has no selector item to read. The second page continues the timeline's Query "
        "from the cursor; the customer's summaries are read again with it.",
        "",
        f"The projector, per order update ({n} Shopify orders each of its own customer, one update each "
        "through the real ingest, normalise and sync): the stream records the project function's event "
        f"source mapping lets through ({p['passed']} of {p['stream_records']}: "
        + ", ".join(f"{v} {k}" for k, v in sorted(p["passed_by_kind"].items()))
        + f"), in batches of {p['batch_size']} ({p['invocations']} invocation(s)); write units from the "
        "sizes of the items written (the larger of before and after; a conditional put that fails is "
        "charged too).",
        "",
        "| per order update | DynamoDB calls | by operation | WRU | RRU |",
        "|---|---:|---|---:|---:|",
        f"| sync: the state write (state + audit record in one transaction, and its reads) | {sync_calls:.2f} | "
        f"{_ops(p['sync_calls'], n)} | {p['sync_wru'] / n:.2f} | {p['sync_rru'] / n:.2f} |",
        f"| project: the view (summary, timeline entry, selectors) | {calls:.2f} | {_ops(p['calls'], n)} | "
        f"{p['wru'] / n:.2f} | {p['rru'] / n:.2f} |",
        f"| project / sync | {calls / sync_calls:.2f} | | {p['wru'] / max(p['sync_wru'], 1e-9):.2f} | |",
        "",
        "Project's write units by item: "
        + ", ".join(f"{k} {v / n:.2f}" for k, v in p["wru_by_kind"].items())
        + " per update. Per update it puts the order's summary (one PutItem, conditional on the summary there "
        "being live, older and naming the same selectors: the owner pointer is not read, no transaction) and the "
        "timeline entry; its selectors (its number and `<source>:<id>`: unchanged by an update) are not written "
        "again; the canonical ids of the customers a batch's states name are read in one BatchGetItem. The view is "
        "derived from the stream, outside sync's transaction: its writes come on top of the state write, and "
        "`bench/capacity_inputs.json` carries them as the `project` stage (`aftersync capacity`).",
        "",
    ]
    return lines


def main() -> int:
    print("\n".join(report(measure())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
