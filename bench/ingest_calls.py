"""AWS calls before a webhook's ack, per case, through the real ingest handler on in-process moto.

Counted with a botocore ``before-call`` hook (as bench/run.py does). The floor, measured in the same
run: one ``SendMessage`` of the same envelope — a durable hand-off with no de-duplication at all.
Run alone: ``.venv/bin/python -m bench.ingest_calls``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

from bench.run import CallCounter, bench_environment

N = int(os.environ.get("BENCH_INGEST_CASES", "50"))


def _per(calls: Counter[str], n: int) -> dict[str, float]:
    return {k: v / n for k, v in sorted(calls.items())}


def measure() -> dict[str, Any]:
    bench_environment(None)
    import boto3
    from moto import mock_aws

    import shared.adapters.idempotency as ledger
    from bench.run import ROOT
    from infra.config import load_environment
    from infra.sandbox.http_servers import api_gateway_event
    from infra.sandbox.lambda_runtime import Functions
    from infra.sandbox.resources import create_resources
    from infra.sandbox.samples import signed
    from infra.wiring import FUNCTIONS, function_environment
    from shared.adapters.sqs import SqsQueue
    from shared.constants import ADMISSION_LEASE_SECONDS, INLINE_MESSAGE_MAX_BYTES, Env

    secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text())
    secret = secrets["sources"]["shopify"]["demo"][0]
    clock = [ledger.time.time()]
    real_now = ledger.now
    ledger.now = lambda: clock[0]  # the lease is measured in the ledger's time, not the machine's speed
    try:
        with mock_aws():
            cfg = load_environment("dev")
            resources = create_resources(cfg, secrets, visibility_timeout=30)
            for name in FUNCTIONS:
                os.environ.update(function_environment(name, cfg, resources.refs))
            os.environ[Env.MAX_BODY_BYTES] = str(2 * 1024 * 1024)  # lets the by-reference case through
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = cfg.resource("ingest")
            counter = CallCounter()
            boto3.setup_default_session()
            boto3.DEFAULT_SESSION.events.register("before-call", counter)  # type: ignore[union-attr]
            functions = Functions(cfg.region, cfg.resource("fn"))

            def hook(n: int, note: str | None = None, pad: int = 0) -> dict[str, Any]:
                payload = json.loads(signed("shopify_orders_create", secret).body)
                payload["id"] = 930000000000000000 + n
                if note is not None:
                    payload["note"] = note
                if pad:
                    payload["x_unmapped"] = "x" * pad
                w = signed("shopify_orders_create", secret, body=json.dumps(payload).encode())
                headers = {**w.headers, "X-Shopify-Event-Id": f"bench-{n}"}  # the HMAC covers the body only
                return api_gateway_event("POST", "/webhooks/shopify/demo", headers, w.body)

            def post(event: dict[str, Any]) -> int:
                return int(functions.invoke("ingest", event)["statusCode"])

            post(hook(-1))  # warm: cold start, the secret cache
            counter.take()
            new = [hook(n) for n in range(N)]
            assert all(post(e) == 200 for e in new)
            new_calls = counter.take()
            assert all(post(new[0]) == 200 for _ in range(N))
            duplicate_calls = counter.take()
            clock[0] += ADMISSION_LEASE_SECONDS + 1
            assert all(post(e) == 200 for e in new)
            late_calls = counter.take()
            assert all(post(hook(n, note="another body")) == 409 for n in range(N))
            conflict_calls = counter.take()
            large = [hook(10_000 + n, pad=INLINE_MESSAGE_MAX_BYTES) for n in range(3)]
            assert all(post(e) == 200 for e in large)
            large_calls = counter.take()
            inbox = SqsQueue(resources.queue_urls["inbox"])
            for _ in range(N):
                inbox.send(json.dumps({"body": new[0]["body"]}))
            floor_calls = counter.take()
    finally:
        ledger.now = real_now
    return {
        "new": _per(new_calls, N),
        "duplicate_within_lease": _per(duplicate_calls, N),
        "duplicate_after_lease": _per(late_calls, N),
        "conflict": _per(conflict_calls, N),
        "over_1_mib": _per(large_calls, len(large)),
        "floor": _per(floor_calls, N),
        "cases": N,
    }


def report(result: dict[str, Any]) -> list[str]:
    floor = sum(result["floor"].values())
    lines = [
        "### AWS calls before the webhook ack (ingest)",
        "",
        f"Real ingest handler on in-process moto, {result['cases']} webhooks per case, counted with botocore "
        "`before-call`. Floor: one `SendMessage` of the envelope (a durable hand-off, no de-duplication), "
        "measured in the same run.",
        "",
        "| case | calls by operation | calls | × floor |",
        "|---|---|---|---|",
    ]
    for case, label in (
        ("new", "new webhook"),
        ("duplicate_within_lease", "duplicate, within the 3 s lease"),
        ("duplicate_after_lease", "duplicate after the lease (enqueued again)"),
        ("conflict", "same event id, another body (409)"),
        ("over_1_mib", "envelope over 1 MiB (by reference)"),
        ("floor", "floor"),
    ):
        calls = result[case]
        total = sum(calls.values())
        ops = ", ".join(f"{k} {v:g}" for k, v in calls.items())
        lines.append(f"| {label} | {ops} | {total:g} | {total / floor:.2f} |")
    return lines


if __name__ == "__main__":
    print("\n".join(report(measure())))
