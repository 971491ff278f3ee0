"""``aftersync demo``: replay a mixed stream from every source (the samples in ``events/`` plus a
burst of generated Shopify orders) through the sandbox, wait for the pipeline to drain, print a
summary per source and check every end state."""

from __future__ import annotations

import copy
import json
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from infra.sandbox.runtime import Sandbox
from infra.sandbox.samples import SignedWebhook, body_bytes, load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.watermarks import ReconcileWatermarks
from shared.delivery.targets import pending_changes
from shared.sources import shopify

TENANT = "demo"
GENERATED_ORDERS = 40


@dataclass
class Sent:
    webhook: SignedWebhook
    label: str
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


# A webhook answered 5xx (the sandbox's stand-in for AWS stalled past ingest's 1 s send timeout under
# load, or a handler failed) is sent again, as the platforms do; the answers counted are the last ones.
PLATFORM_RETRIES = 3
PLATFORM_RETRY_SECONDS = 2.0


def post(api: str, tenant: str, webhook: SignedWebhook) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - the API is the local sandbox (http://127.0.0.1)
        f"{api}/webhooks/{webhook.source}/{tenant}", data=webhook.body, headers=webhook.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def generated_order(n: int, secret: str) -> tuple[SignedWebhook, SignedWebhook, dict[str, Any]]:
    """A create and a later update for a synthetic order; returns the fields the update must leave."""
    create = copy.deepcopy(load_sample("shopify_orders_create"))
    order_id = 700000000000000000 + n
    buyer = {
        "id": 800000 + n,
        "first_name": "Buyer",
        "last_name": f"No{n}",
        "email": f"buyer{n}@example.com",
        "phone": f"+86 139 {n:04d} 0000",
    }
    create["body"].update(
        {
            "id": order_id,
            "name": f"#D{n:04d}",
            "order_number": 10000 + n,
            "customer": buyer,
            "email": buyer["email"],
            "phone": buyer["phone"],
        }
    )
    update = copy.deepcopy(create)
    update["body"].update(
        {"updated_at": "2026-11-20T11:00:00+08:00", "fulfillment_status": "fulfilled", "note": f"batch {n}"}
    )
    hooks = []
    for sample, topic in ((create, "orders/create"), (update, "orders/updated")):
        body = json.dumps(sample["body"], separators=(",", ":")).encode()
        headers = {
            **sample["headers"],
            shopify.TOPIC_HEADER: topic,
            shopify.EVENT_ID_HEADER: str(uuid.uuid4()),
            shopify.SIGNATURE_HEADER: shopify.sign(secret, body),
        }
        hooks.append(SignedWebhook(name=f"generated-{n}-{topic}", source="shopify", headers=headers, body=body))
    expected = {"fulfillment_status": "fulfilled", "note": f"batch {n}", "order_number": f"#D{n:04d}"}
    return hooks[0], hooks[1], expected


Expected = dict[tuple[str, str], dict[str, Any]]  # (entity type, entity id) -> fields it must end with


def scenario(secrets: dict[str, list[str]]) -> tuple[list[tuple[str, SignedWebhook]], Expected]:
    secret, previous_secret = secrets["shopify"][0], secrets["shopify"][-1]
    stripe_secret = secrets["stripe"][0]
    create = signed("shopify_orders_create", secret)
    tampered_body = body_bytes(load_sample("shopify_orders_create")).replace(b'"598.00"', b'"5.98"')
    tampered = SignedWebhook("tampered", "shopify", create.headers, tampered_body)
    stream: list[tuple[str, SignedWebhook]] = [
        ("orders/create", create),
        *[("duplicate of orders/create", create)] * 4,
        (
            "orders/updated (signed with the previous secret: rotation)",
            signed("shopify_orders_updated", previous_secret),
        ),
        ("orders/updated, older, arriving late", signed("shopify_orders_updated_older", secret)),
        ("tampered body", tampered),
        ("refunds/create (a return, restocked)", signed("shopify_refunds_create", secret)),
        ("refunds/create (approved, payment pending)", signed("shopify_refunds_create_pending", secret)),
        ("duplicate of the approved refund", signed("shopify_refunds_create_pending", secret)),
        ("fulfillments/update (the same parcel AfterShip tracks)", signed("shopify_fulfillments_update", secret)),
        # Stripe: a refund succeeding, delivered twice and out of order, and a charge-level refund
        ("refund.updated (succeeded) before refund.created", signed("stripe_refund_updated", stripe_secret)),
        ("refund.created", signed("stripe_refund_created", stripe_secret)),
        ("duplicate refund.created", signed("stripe_refund_created", stripe_secret)),
        ("charge.refunded", signed("stripe_charge_refunded", stripe_secret)),
        # Trackers: AfterShip (JSON) and Kuaidi100 (form-encoded, with a duplicate push)
        ("tracking_update", signed("aftership_tracking_update", secrets["aftership"][0])),
        ("TRACKING_UPDATED", signed("17track_tracking_updated", secrets["17track"][0])),
        ("push (signed for)", signed("kuaidi100_push_signed", secrets["kuaidi100"][0])),
        ("duplicate push", signed("kuaidi100_push_signed", secrets["kuaidi100"][0])),
        # Help desk and a second shop platform (its creation ping, then a refunded order)
        ("ticket.status_changed", signed("zendesk_ticket_status_changed", secrets["zendesk"][0])),
        (
            "creation ping",
            SignedWebhook(
                "ping", "woocommerce", {"Content-Type": "application/x-www-form-urlencoded"}, b"webhook_id=12"
            ),
        ),
        ("order.updated (refunded)", signed("woocommerce_order_refunded", secrets["woocommerce"][0])),
        # Shopify returns, out of order, one declined; and an order edit
        ("returns/process before the request", signed("shopify_returns_process", secret)),
        ("returns/request", signed("shopify_returns_request", secret)),
        ("returns/approve", signed("shopify_returns_approve", secret)),
        ("returns/decline", signed("shopify_returns_decline", secret)),
        ("returns/request (exchange)", signed("shopify_returns_request_exchange", secret)),
        ("returns/approve (exchange)", signed("shopify_returns_approve_exchange", secret)),
        ("returns/process (exchange)", signed("shopify_returns_process_exchange", secret)),
        ("orders/edited", signed("shopify_orders_edited", secret)),
        # Domestic shops: Youzan (health check, trade, refund twice, express) and a Douyin batch
        (
            "health check (test: true)",
            SignedWebhook(
                "youzan-test",
                "youzan",
                load_sample("youzan_push_test")["headers"],
                body_bytes(load_sample("youzan_push_test")),
            ),
        ),
        ("TRADE_ORDER_STATE", signed("youzan_trade_order_state", secrets["youzan"][0])),
        ("TRADE_ORDER_REFUND", signed("youzan_trade_order_refund", secrets["youzan"][0])),
        ("duplicate TRADE_ORDER_REFUND", signed("youzan_trade_order_refund", secrets["youzan"][0])),
        ("TRADE_ORDER_EXPRESS", signed("youzan_trade_order_express", secrets["youzan"][0])),
        ("two messages in one push", signed("douyin_batch", secrets["douyin"][0])),
        # An in-house WMS in its own format, mapped by cdk.json field_maps.wms
        ("stock movements (own format)", signed("wms_stock_movements", secrets["wms"][0])),
    ]
    updated = load_sample("shopify_orders_updated")["body"]
    expected: Expected = {
        ("order", f"shopify:{updated['id']}"): {
            "fulfillment_status": "fulfilled",
            "note": updated["note"],
            "tags": ["shipped", "vip", "warranty"],
            "last_edit": {
                "edit_id": "78912328",
                "edited_at": "2026-11-20T05:00:00Z",
                "added": [{"line_id": "141249953214522974", "delta": 1}],
                "removed": [],
                "staff_note": "Customer asked for a spare filter",
            },
        },
        ("after_sales_case", "stripe:re_3QJx2cLkdIwHu7ix0kzQ1Nqf"): {"status": "refunded", "rejected_transitions": []},
        ("after_sales_case", "stripe:charge:ch_3QJy7bLkdIwHu7ix1Z2Y3X4W"): {"status": "refunded"},
        # Shopify says in_transit, AfterShip (more authoritative on tracking) out_for_delivery:
        ("shipment", "sf-express:SF1410029637153"): {"status": "out_for_delivery"},
        ("after_sales_case", "shopify:refund:929361462"): {"status": "refunded", "kind": "return"},
        ("shipment", "yuantong:YT7366029163549"): {"status": "delivered"},
        ("shipment", "17track-3011:RR123456785CN"): {"status": "delivered"},
        ("ticket", "zendesk:5158"): {"status": "open", "priority": "high"},
        ("order", "woocommerce:727"): {"payment_status": "refunded"},
        ("after_sales_case", "woocommerce:731"): {"status": "refunded"},
        ("after_sales_case", "shopify:return:945000954"): {"status": "received", "rejected_transitions": []},
        # The automation paid the approved refund and wrote the result back
        ("after_sales_case", "shopify:refund:929361463"): {"status": "refunded", "scenario": "appeasement"},
        ("after_sales_case", "shopify:return:945000955"): {"status": "rejected"},
        ("after_sales_case", "shopify:return:945000977"): {"status": "received", "kind": "exchange"},
        ("order", "youzan:E20261121103015012300001"): {"payment_status": "paid", "fulfillment_status": "unfulfilled"},
        ("after_sales_case", "youzan:201126112114300001"): {"status": "requested", "kind": "refund"},
        ("shipment", "zhongtong:75311234567890"): {"order_id": "E20261121103015012300001"},
        ("order", "douyin:6920000001234567890"): {"payment_status": "paid"},
        ("after_sales_case", "douyin:7123456789012345678"): {"scenario": "cancel_before_fulfilment"},
        ("stock", "FILTER-X1@SH-01"): {"quantity_delta": 1},
        ("stock", "AIRPURIFIER-X1@SH-01"): {"quantity_delta": -2},
        # Amazon: on the SP-API queue, not HTTP (see run_demo)
        ("order", "amazon:114-3941689-8772232"): {"payment_status": "paid", "fulfillment_status": "unfulfilled"},
        ("after_sales_case", "amazon:114-3941689-8772232:cancel"): {"status": "requested"},
    }
    for n in range(GENERATED_ORDERS):
        first, second, fields = generated_order(n, secret)
        stream += [("generated orders/create", first), ("generated orders/updated", second)]
        expected[("order", f"shopify:{700000000000000000 + n}")] = fields
    return stream, expected


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_demo(sandbox: Sandbox, drain_timeout: float = 120.0) -> int:
    secrets = {source: tenants[TENANT] for source, tenants in sandbox.secrets["sources"].items()}
    stream, expected = scenario(secrets)
    delivered_types = {t for target in sandbox.cfg.targets if target.push_changes for t in target.entity_types}
    api = f"http://127.0.0.1:{sandbox.api_port}"
    sent: list[Sent] = []
    started = time.monotonic()
    retried = 0
    for label, webhook in stream:
        at = time.time()
        status, answer = post(api, TENANT, webhook)
        for _ in range(PLATFORM_RETRIES):  # a 5xx is retried, as every platform does (Shopify: 8 times in 4 h)
            if status < 500:
                break
            retried += 1
            time.sleep(PLATFORM_RETRY_SECONDS)
            status, answer = post(api, TENANT, webhook)
        sent.append(Sent(webhook, label, status, answer, at))
    # Amazon writes ORDER_CHANGE notifications to the SP-API queue itself (twice: at-least-once)
    amazon = load_sample("amazon_order_change")["body"]
    queued = 0
    if "amazon" in sandbox.resources.queue_urls:
        sqs = boto3.client("sqs")
        for _ in range(2):
            sqs.send_message(QueueUrl=sandbox.resources.queue_urls["amazon"], MessageBody=json.dumps(amazon))
            queued += 1
    # The shop also has an order whose webhook never came: the scheduled pull (run now) brings it in.
    pulls = [
        pull
        for pull in (
            reconcile_missed_order(sandbox, expected),
            # Taobao/Tmall push nothing here: the shop's trade is pulled through TOP (its pull, run now)
            reconcile_taobao_trade(sandbox, expected),
            # and the WooCommerce store has an order whose webhook never came: its pull brings it in
            reconcile_woocommerce_order(sandbox, expected),
            # as do a Stripe refund, a Zendesk ticket, an AfterShip tracking, an Amazon, a Douyin and a
            # Youzan order, each from its list API
            *reconcile_listed_records(sandbox, expected),
        )
        if pull is not None
    ]
    drained = sandbox.drain(timeout=drain_timeout)
    elapsed = time.monotonic() - started

    store = DynamoStateStore(sandbox.resources.refs.state_table)
    send_time = {
        s.webhook.headers.get(shopify.EVENT_ID_HEADER): s.at for s in sent if s.answer.get("status") == "accepted"
    }
    pushed = {t.name for t in sandbox.cfg.targets if t.push_changes}  # the others only take actions
    deliveries = [d for d in sandbox.target.accepted() if d["target"] in pushed]
    group_messages = Counter[str]()  # changes the WeCom group targets got, as robot markdown
    for target in (t for t in sandbox.cfg.targets if t.kind == "wecom" and t.push_changes):
        for content in sandbox.robot.service.contents(sandbox.secrets["targets"][target.name]["key"]):
            group_messages[target.name] += 1 if content.startswith("**") else 0
    depths = sandbox.queue_depths()
    problems: list[str] = [] if drained else ["the pipeline did not drain in time"]

    latencies, states = [], {}
    for (entity_type, entity_id), fields in expected.items():
        state, _ = store.load(TENANT, entity_type, entity_id)
        states[entity_id] = state
        if state is None:
            problems.append(f"{entity_id}: no state")
            continue
        wrong = {k: state.fields.get(k) for k, v in fields.items() if state.fields.get(k) != v}
        if wrong:
            problems.append(f"{entity_id}: unexpected {wrong}")
        if entity_type not in delivered_types:
            continue
        # every target that wants the entity has every change it wants: nothing is pending against what
        # it acknowledged (a change that came from the target itself is never pending for it)
        sources = {name: clock.source for name, clock in state.clocks.items()}
        for target in sandbox.cfg.targets:
            if not target.push_changes or entity_type not in target.entity_types:
                continue
            if not entity_id.startswith(target.id_prefixes or ""):
                continue
            ack = store.load_for_delivery(TENANT, entity_type, entity_id, target.name)[1]
            pending, _ = pending_changes(target, state.fields, sources, ack.get("hashes", {}))
            if pending:
                problems.append(
                    f"{entity_id}: {sorted(pending)} of version {state.version} not delivered to {target.name} "
                    f"(acknowledged: version {ack.get('version', 0)})"
                )
        delivered = [d for d in deliveries if d["body"]["entity_id"] == entity_id]
        trail = {r.version: r for r in store.audit_trail(TENANT, entity_type, entity_id)}
        for d in delivered:
            record = trail.get(d["body"]["version"])
            if record and record.source_event_id in send_time:
                latencies.append(d["at"] - send_time[record.source_event_id])
    for name, depth in depths.items():
        if name.endswith("-dlq") and depth:
            problems.append(f"{depth} message(s) in {name}")
    actions = Counter(r["target"] for r in sandbox.target.received if r["target"] not in pushed)
    if "payments" in {t.name for t in sandbox.cfg.targets}:
        payments = [r for r in sandbox.target.received if r["target"] == "payments"]
        if [p["body"]["case_id"] for p in payments] != ["929361463"]:
            problems.append(f"the approved refund was not paid exactly once: {len(payments)} payment call(s)")
        movements = sorted(
            (r["body"]["action"], r["body"]["reference"]) for r in sandbox.target.received if r["target"] == "wms"
        )
        wanted = [
            ("exchange-replacement-out", "945000977"),
            ("return-restock", "945000954"),
            ("return-restock", "945000977"),
        ]
        if movements != wanted:
            problems.append(f"returned and replacement stock did not move once each at the WMS: {movements}")
        shipped = [r["body"]["reference"] for r in sandbox.target.received if r["target"] == "wms-outbound"]
        if shipped != ["945000977"]:
            problems.append(f"the exchange's replacement was not shipped exactly once: {shipped}")

    sample_id = next(iter(expected))[1]
    sample_state = states[sample_id]
    sources = sorted({s.webhook.source for s in sent})
    if queued == 0:
        expected_amazon = [k for k in expected if k[1].startswith("amazon:")]
        problems.extend(f"{k[1]}: no SP-API queue in this environment" for k in expected_amazon)
    print("Aftersync demo — webhooks from every enabled source through the whole pipeline (local sandbox)")
    print(f"  API {api}   AWS stand-in {sandbox.endpoint}   fake target {sandbox.target.url}")
    print()
    print(f"{'source':<12}{'sent':>6}{'2xx':>6}{'rejected':>10}   answers")
    for source in sources:
        mine = [s for s in sent if s.webhook.source == source]
        answers = Counter(f"{s.status} {_answer(s.answer)}" for s in mine)
        ok = sum(1 for s in mine if 200 <= s.status < 300)
        print(
            f"{source:<12}{len(mine):>6}{ok:>6}{len(mine) - ok:>10}   "
            + ", ".join(f"{k} ×{v}" for k, v in sorted(answers.items()))
        )
    if queued:
        print(f"{'amazon':<12}{queued:>6}{'-':>6}{'-':>10}   written to the SP-API queue (no HTTP), twice")
    if retried:
        print(f"retried:          {retried} answer(s) of 5xx sent again (why it failed: {sandbox.log_file})")
    changed = [s for s in states.values() if s is not None]
    kinds = Counter(s.entity_type for s in changed)
    print(
        f"entities changed: {', '.join(f'{n} {t}' for t, n in sorted(kinds.items()))}; "
        f"{sum(s.version for s in changed)} versions in total"
    )
    per_target = Counter(d["target"] for d in deliveries)
    sent_bytes = sum(len(json.dumps(d["body"])) for d in deliveries)
    print(f"deliveries made:  {', '.join(f'{n} to {t}' for t, n in sorted(per_target.items()))} ({sent_bytes} bytes)")
    if group_messages:
        print(
            "WeCom groups:     "
            + ", ".join(f"{n} message(s) to {t}" for t, n in sorted(group_messages.items()))
            + " (changes as markdown, within the robot's 20 a minute)"
        )
    print(
        "automation:       "
        + (", ".join(f"{n} call(s) to {t}" for t, n in sorted(actions.items())) or "none")
        + " (refund paid once, returned stock back at the WMS, an exchange's replacement out of stock and"
        " shipped, the OMS told of each after-sales step)"
    )
    told = Counter(
        item["outcome"]["S"].split(" ", 1)[0]
        for page in boto3.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=sandbox.resources.refs.state_table,
            FilterExpression="begins_with(pk, :p) AND #s = :done",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":p": {"S": f"ops#action#{TENANT}#customer-notify:"}, ":done": {"S": "done"}},
        )
        for item in page["Items"]
    )
    sms, mails = told.get("sms", 0), told.get("email", 0)
    print(f"customers told:   {sms} SMS, {mails} e-mails (from the templates in the tenant's language)")
    print(
        f"DLQ messages:     {sum(v for k, v in depths.items() if k.endswith('-dlq'))}"
        f"   quarantined: {depths.get('quarantine', 0)}"
    )
    print(
        f"latency webhook -> delivery: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms over {len(latencies)} deliveries"
        f" (mean {statistics.fmean(latencies) * 1000 if latencies else float('nan'):.0f} ms); run took {elapsed:.1f} s"
    )
    for pull in pulls:
        run = pull.counts()
        print(
            f"{pull.label} {run.get('pulled', 0)} {pull.listed}: {run.get('missed', 0)} {pull.missed}, "
            f"{run.get('known', 0)} already in the state"
        )
        if run.get("missed") != 1:
            problems.append(f"{pull.what} was not pulled in once: {run}")
    totals = sandbox.functions.metric_totals()
    print("metrics emitted:  " + ", ".join(f"{name} {value:g}" for name, value in sorted(totals.items())))
    if sample_state is not None:
        print(
            f"order {sample_id}: version {sample_state.version}, "
            f"fulfillment {sample_state.fields.get('fulfillment_status')}, note {sample_state.fields.get('note')!r}"
        )
        print(
            f"  (inspect with: aftersync entity show order {sample_id} --tenant {TENANT} --json, "
            "while `aftersync local` runs)"
        )
    problems += show_lookup(api, sandbox.secrets)
    print()
    if problems:
        print("FAILED: some accepted webhooks did not reach their end state:")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(
        "OK: every accepted webhook reached its end state; duplicates, the late older update and the "
        "tampered body changed nothing."
    )
    return 0


DEMO_PHONE = "+86 138 0013 8000"  # the buyer of the sample Shopify order (events/shopify_orders_create.json)


def show_lookup(api: str, secrets: dict[str, Any]) -> list[str]:
    """One lookup by phone through the lookup API as the demo's agent (masked), as an agent's desk sees it."""
    key = secrets.get("readers", {}).get("demo-agent", {}).get("key")
    if not key:
        return ["no demo-agent reader in the sandbox's secrets: the lookup was not shown"]
    url = f"{api}/v1/{TENANT}/lookup?{urllib.parse.urlencode({'phone': DEMO_PHONE})}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310 - local
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local sandbox
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, body = error.code, json.loads(error.read() or b"{}")
    if status != 200 or not body.get("customer"):
        return [f"the lookup by phone answered {status}: {body.get('message', body)}"]
    card = body["customer"]
    orders = ", ".join(o["order_id"] for o in body.get("orders", []))
    print(
        f"lookup (agent):   phone {DEMO_PHONE} -> customer {body['customer_id']}: {card.get('name')}, "
        f"phone {card.get('phone')}, e-mail {card.get('email')}; orders {orders}; "
        f"timeline {len(body.get('timeline', []))} change(s)"
    )
    print(f"  (the same: aftersync lookup --tenant {TENANT} --phone '{DEMO_PHONE}', while `aftersync local` runs)")
    if "*" not in str(card.get("phone") or "*") or "***" not in str(card.get("email") or "***"):
        return ["the agent's lookup was not masked"]
    return []


@dataclass(frozen=True)
class Pull:
    """A scheduled pull the demo runs now, and how its summary line reads."""

    source: str
    label: str  # the summary line's start, e.g. "reconcile:        the shop listed"
    listed: str  # what the platform listed, e.g. "changed order(s)"
    missed: str  # what the missed ones were
    what: str  # the record, in a problem
    counts: Callable[[], dict[str, Any]]


def _pull_now(sandbox: Sandbox, source: str, label: str, listed: str, missed: str, what: str) -> Pull:
    """Send the message the job's schedule sends, and read the run's counts later."""
    boto3.client("sqs").send_message(
        QueueUrl=sandbox.resources.queue_urls["reconcile"], MessageBody=json.dumps({"source": source, "tenant": TENANT})
    )
    watermarks = ReconcileWatermarks(sandbox.resources.refs.state_table)
    return Pull(source, label, listed, missed, what, lambda: watermarks.last_run(source, TENANT) or {})


def _pulls(sandbox: Sandbox, source: str) -> bool:
    return any(j.source == source and j.tenant == TENANT for j in sandbox.cfg.reconcile)


def reconcile_missed_order(sandbox: Sandbox, expected: dict[tuple[str, str], dict[str, Any]]) -> Pull | None:
    """Put an order in the fake shop that no webhook announced, and run the shop's scheduled pull now;
    ``None`` where the environment pulls no Shopify shop."""
    if not _pulls(sandbox, "shopify"):
        return None
    order = copy.deepcopy(load_sample("shopify_orders_create")["body"])
    changed = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 600))
    order.update(id=830000000000000001, name="#10001", order_number=10001, created_at=changed, updated_at=changed)
    sandbox.shop.put(order)
    expected[("order", f"shopify:{order['id']}")] = {"order_number": "#10001", "status": "open"}
    return _pull_now(
        sandbox,
        "shopify",
        "reconcile:        the shop listed",
        "changed order(s)",
        "no webhook had brought (fed in now)",
        "the order only the shop had",
    )


def reconcile_taobao_trade(sandbox: Sandbox, expected: dict[tuple[str, str], dict[str, Any]]) -> Pull | None:
    """Put a trade in the fake TOP gateway and run the Taobao shop's scheduled pull now; ``None`` where the
    environment pulls no Taobao shop."""
    if not _pulls(sandbox, "taobao"):
        return None
    modified = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600 - 600))  # China time
    trade = {
        "tid": 3012345678901,
        "type": "tmall_i18n",
        "status": "WAIT_SELLER_SEND_GOODS",
        "payment": "268.00",
        "created": modified,
        "modified": modified,
        "buyer_open_uid": "AAGx-demo-buyer",
    }
    sandbox.top.put("taobao.trades.sold.increment.get", trade)
    expected[("order", "taobao:3012345678901")] = {"channel": "tmall", "status": "open", "payment_status": "paid"}
    return _pull_now(
        sandbox,
        "taobao",
        "reconcile Taobao: TOP listed",
        "changed trade(s) and refund(s)",
        "fed in (Taobao pushes nothing)",
        "the Taobao trade",
    )


def reconcile_woocommerce_order(sandbox: Sandbox, expected: dict[tuple[str, str], dict[str, Any]]) -> Pull | None:
    """Put an order in the fake WooCommerce store that no webhook announced, and run the store's scheduled
    pull now; ``None`` where the environment pulls no store."""
    if not _pulls(sandbox, "woocommerce"):
        return None
    order = copy.deepcopy(load_sample("woocommerce_order_refunded")["body"])
    changed = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 600))
    order.update(id=9001, number="9001", status="processing", refunds=[], date_modified_gmt=changed)
    sandbox.woo.put(order)
    expected[("order", "woocommerce:9001")] = {"order_number": "9001", "status": "open"}
    return _pull_now(
        sandbox,
        "woocommerce",
        "reconcile Woo:    the store listed",
        "changed order(s)",
        "no webhook had brought (fed in now)",
        "the WooCommerce order only the store had",
    )


def reconcile_listed_records(sandbox: Sandbox, expected: dict[tuple[str, str], dict[str, Any]]) -> list[Pull]:
    """A record no webhook brought in each list-API platform the environment pulls (a Stripe refund's
    event, a Zendesk ticket, an AfterShip tracking, an Amazon, a Douyin and a Youzan order), and each
    platform's scheduled pull run now."""
    now = time.time()
    pulls: list[Pull] = []
    if _pulls(sandbox, "stripe"):
        event = copy.deepcopy(load_sample("stripe_refund_updated")["body"])
        event.update(id="evt_demo_pulled", created=int(now - 600))
        event["data"]["object"].update(id="re_demo_pulled", amount=4200)
        sandbox.lists["stripe"].put(event)
        expected[("after_sales_case", "stripe:re_demo_pulled")] = {"kind": "refund", "status": "refunded"}
        pulls.append(
            _pull_now(
                sandbox,
                "stripe",
                "reconcile Stripe: events listed",
                "refund event(s)",
                "no webhook had brought (fed in now)",
                "the Stripe refund only its event list had",
            )
        )
    if _pulls(sandbox, "zendesk"):
        changed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))
        ticket = {
            "id": 7001,
            "status": "pending",
            "priority": "normal",
            "subject": "Return label for order #1001",
            "requester_id": 1512863381522,
            "assignee_id": 1512863381481,
            "tags": ["return"],
            "type": "question",
            "created_at": changed,
            "updated_at": changed,
        }
        sandbox.lists["zendesk"].put(ticket)
        expected[("ticket", "zendesk:7001")] = {"status": "pending", "priority": "normal"}
        pulls.append(
            _pull_now(
                sandbox,
                "zendesk",
                "reconcile Zendesk: export listed",
                "changed ticket(s)",
                "no webhook had brought (fed in now)",
                "the Zendesk ticket only the export had",
            )
        )
    if _pulls(sandbox, "aftership"):
        tracking = copy.deepcopy(load_sample("aftership_tracking_update")["body"]["msg"])
        changed = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 600))
        tracking.update(id="trk-demo-pulled", tracking_number="SF7770000001", tag="Delivered", updated_at=changed)
        tracking["created_at"] = changed
        sandbox.lists["aftership"].put(tracking)
        expected[("shipment", "sf-express:SF7770000001")] = {"status": "delivered"}
        pulls.append(
            _pull_now(
                sandbox,
                "aftership",
                "reconcile AfterShip: listed",
                "changed tracking(s)",
                "no webhook had brought (fed in now)",
                "the AfterShip tracking only its list had",
            )
        )
    if _pulls(sandbox, "amazon"):
        changed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))
        job = next(j for j in sandbox.cfg.reconcile if j.source == "amazon" and j.tenant == TENANT)
        order = {
            "AmazonOrderId": "114-7770000-0000001",
            "PurchaseDate": changed,
            "LastUpdateDate": changed,
            "OrderStatus": "Shipped",
            "FulfillmentChannel": "MFN",
            "MarketplaceId": job.marketplace_ids[0],
            "OrderTotal": {"CurrencyCode": "USD", "Amount": "89.00"},
        }
        sandbox.lists["amazon"].put(order)
        expected[("order", "amazon:114-7770000-0000001")] = {"channel": "amazon", "fulfillment_status": "fulfilled"}
        pulls.append(
            _pull_now(
                sandbox,
                "amazon",
                "reconcile Amazon: getOrders listed",
                "changed order(s)",
                "no notification had brought (fed in now)",
                "the Amazon order only getOrders had",
            )
        )
    if _pulls(sandbox, "douyin"):
        order = {
            "order_id": "6920000007770000001",
            "order_status": 3,
            "pay_amount": 25900,
            "create_time": int(now - 3600),
            "update_time": int(now - 600),
            "shop_id": 4463798,
        }
        sandbox.lists["douyin"].put(order)
        expected[("order", "douyin:6920000007770000001")] = {"channel": "douyin", "fulfillment_status": "fulfilled"}
        pulls.append(
            _pull_now(
                sandbox,
                "douyin",
                "reconcile Douyin: searchList listed",
                "changed order(s)",
                "no push had brought (fed in now)",
                "the Douyin order only order.searchList had",
            )
        )
    if _pulls(sandbox, "youzan"):
        changed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + 8 * 3600 - 600))  # China time
        info = {"tid": "E20261121777000000000001", "status": "WAIT_BUYER_CONFIRM_GOODS", "created": changed}
        trade = {"order_info": {**info, "update_time": changed}, "pay_info": {"payment": "199.00"}}
        sandbox.lists["youzan"].put({"full_order_info": trade})
        expected[("order", "youzan:E20261121777000000000001")] = {
            "channel": "youzan",
            "fulfillment_status": "fulfilled",
        }
        pulls.append(
            _pull_now(
                sandbox,
                "youzan",
                "reconcile Youzan: trades listed",
                "changed trade(s)",
                "no push had brought (fed in now)",
                "the Youzan trade only trades.sold.get had",
            )
        )
    return pulls


def _answer(body: dict[str, Any]) -> str:
    """The gist of a platform's ack body (each platform has its own shape)."""
    for key in ("status", "error", "msg", "message"):
        if body.get(key):
            return str(body[key])
    return "ack"
