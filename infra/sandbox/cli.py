"""``aftersync``: run the local sandbox, the demo, and inspect entities (sandbox or deployed)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.config import load_environment
from infra.sandbox.runtime import DEFAULT_SECRETS, STATE_FILE
from shared.models import ENTITY_MODELS


def _sandbox(args: argparse.Namespace) -> Any:
    from infra.sandbox.iam import SandboxIamError
    from infra.sandbox.runtime import Sandbox

    try:
        announce = args.command == "local"  # the demo must not take over a running sandbox's state file
        return Sandbox(args.env, args.port, Path(args.secrets), verbose=args.verbose, announce=announce).start()
    except OSError as exc:
        sys.exit(f"aftersync: cannot start the sandbox on port {args.port}: {exc.strerror} (try --port)")
    except SandboxIamError as exc:
        sys.exit(f"aftersync: {exc}")


def cmd_local(args: argparse.Namespace) -> int:
    sandbox = _sandbox(args)
    print(json.dumps(sandbox.describe(), indent=2))
    print(
        f"sandbox running: POST webhooks to http://127.0.0.1:{sandbox.api_port}/webhooks/<source>/<tenant>; "
        "Ctrl-C stops it",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    sandbox.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from infra.sandbox.demo import run_demo
    from infra.sandbox.outage import run_outage

    sandbox = _sandbox(args)
    try:
        result = run_outage(sandbox) if args.scenario == "outage" else run_demo(sandbox)
    finally:
        sandbox.stop()
    if sandbox.iam_denials:  # a handler call its stack role does not allow: a missing grant in the stack
        print(f"FAILED: {len(sandbox.iam_denials)} call(s) denied by the functions' IAM policies:")
        for line in sorted(set(sandbox.iam_denials)):
            print(f"  - {line}")
        return 1
    if sandbox.enforce_iam:
        print("IAM: every function ran with its stack role's policy; no call was denied")
    return result


def _stores(args: argparse.Namespace) -> tuple[Any, Any]:
    """The state store and archive of the sandbox (default) or of a deployed stack (``--aws``)."""
    from shared.adapters.s3 import S3Archive
    from shared.adapters.state_store import DynamoStateStore

    if args.aws:
        import boto3

        cfg = load_environment(args.env)
        outputs = boto3.client("cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"][0]["Outputs"]
        values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
        return DynamoStateStore(values["StateTable"]), S3Archive(values["ArchiveBucket"])
    info = _running_sandbox()
    operator = info.get("operator", {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"})
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": info["aws_endpoint_url"],
            "AWS_DEFAULT_REGION": info["region"],
            "AWS_ACCESS_KEY_ID": operator["aws_access_key_id"],  # the CLI is the operator: allowed everything
            "AWS_SECRET_ACCESS_KEY": operator["aws_secret_access_key"],
        }
    )
    return DynamoStateStore(info["state_table"]), S3Archive(info["archive_bucket"])


def _running_sandbox() -> dict[str, Any]:
    """What the running sandbox announced; one line and exit if there is none, or it died (kill -9,
    a closed laptop) and left its file behind."""
    if not STATE_FILE.exists():
        sys.exit("aftersync: no sandbox is running (start `aftersync local`, or pass --aws for a deployed stack)")
    try:
        info = json.loads(STATE_FILE.read_text(encoding="utf-8"))
        alive = _answers(info["aws_endpoint_url"]) and _process_exists(info.get("pid"))
    except (ValueError, KeyError, TypeError):
        alive = False
    if not alive:
        sys.exit(
            f"aftersync: the sandbox recorded in {STATE_FILE} is not running any more (it stopped without "
            "cleaning up); start one with `aftersync local`"
        )
    return info  # type: ignore[no-any-return]


def _process_exists(pid: object) -> bool:
    if not isinstance(pid, int):
        return True  # a file from before pids were recorded: the endpoint decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process has this pid
    return True


def _answers(endpoint: str) -> bool:
    url = urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=2).close()
    except OSError:
        return False
    return True


def _queue_urls(args: argparse.Namespace) -> dict[str, str]:
    """Queue URLs by purpose: from the running sandbox, or from a deployed stack's outputs (``--aws``)."""
    if args.aws:
        import boto3

        cfg = load_environment(args.env)
        outputs = boto3.client("cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"][0]["Outputs"]
        return {
            o["Description"].removeprefix("queue:"): o["OutputValue"]
            for o in outputs
            if o.get("Description", "").startswith("queue:")
        }
    _stores(args)  # points boto3 at the sandbox's AWS stand-in
    return dict(json.loads(STATE_FILE.read_text(encoding="utf-8"))["queues"])


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    print(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)


def cmd_dlq(args: argparse.Namespace) -> int:
    import boto3

    from ops.dlq import NOT_REDRIVABLE, dead_letter_queues, describe, peek, redrive

    urls = _queue_urls(args)
    sqs = boto3.client("sqs")
    dlqs = {d.name: d for d in dead_letter_queues(urls)}
    if args.action == "list":
        rows = [describe(sqs, d) for d in dlqs.values()]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'queue':<28}{'messages':>9}{'in flight':>11}   redrives to")
            for row in rows:
                print(f"{row['name']:<28}{row['messages']:>9}{row['in_flight']:>11}   {row['redrives_to'] or '-'}")
        return 1 if any(r["messages"] or r["in_flight"] for r in rows) and args.fail_if_any else 0
    name = args.queue if args.queue in dlqs or args.queue.endswith("-dlq") else f"{args.queue}-dlq"
    if name not in dlqs:
        print(f"aftersync: no dead-letter queue {name!r} (have {', '.join(sorted(dlqs))})", file=sys.stderr)
        return 2
    dlq = dlqs[name]
    if args.action == "show":
        messages = peek(sqs, dlq, limit=args.limit, with_body=args.body)
        if args.json:
            print(json.dumps(messages, indent=2, ensure_ascii=False))
        else:
            print(f"{name}: {len(messages)} message(s) shown (bodies {'masked' if args.body else 'hidden: --body'})")
            for m in messages:
                print(f"- {m['message_id']}  receives {m.get('receive_count', '?')}  from {m.get('source_queue', '?')}")
                print(f"  reason: {m['reason']}")
                if args.body:
                    print(f"  body:   {m['body'][:500]}")
        return 0
    if dlq.source is None:
        why = NOT_REDRIVABLE.get(name, "its source queue is unknown")
        print(f"aftersync: {name} cannot be redriven: {why}", file=sys.stderr)
        return 2
    result = redrive(
        sqs,
        dlq,
        urls[dlq.source],
        rate_per_second=args.rate,
        method=args.method,
        progress=None if args.json else _progress,
    )
    if args.json:
        print(json.dumps(result.__dict__, indent=2))
    else:
        print(f"\nmoved {result.moved} message(s) from {name} back to {dlq.source} ({result.method})")
    return 0


def _identity_of(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    """For a customer that was found to be another one: the customer it now answers to."""
    if args.entity_type != "customer":
        return {}
    from shared.adapters.identity_index import DynamoIdentityIndex

    survivor = DynamoIdentityIndex(store.table, args.tenant).canonical(args.entity_id)
    return {"absorbed_into": survivor} if survivor != args.entity_id else {}


def cmd_entity_show(args: argparse.Namespace) -> int:
    from ops.trail import full_trail

    store, archive = _stores(args)
    trail = full_trail(store, archive, args.tenant, args.entity_type, args.entity_id)
    state = trail.state
    if state is None:
        print(f"aftersync: no {args.entity_type} {args.entity_id!r} for tenant {args.tenant!r}", file=sys.stderr)
        return 2
    document = {
        "state": state.model_dump(mode="json"),
        **_identity_of(store, args),
        "audit_head": trail.head,
        "audit": [r.model_dump(mode="json") for r in trail.records],
        "archived_versions": trail.archived_versions,
        "decisions": store.decisions(args.tenant, args.entity_type, args.entity_id),
        "audit_problems": trail.problems(),
    }
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    print(f"{state.entity_type} {state.entity_id} (tenant {state.tenant}) version {state.version}")
    if "absorbed_into" in document:
        print(f"  absorbed into {document['absorbed_into']}: it answers for this customer from now on")
    for name, value in sorted(state.fields.items()):
        clock = state.clocks.get(name)
        origin = f"{clock.source} @ {clock.at}" if clock else ""
        print(f"  {name:<28} {json.dumps(value, ensure_ascii=False)[:72]:<74} {origin}")
    print("audit:")
    for record in trail.records:
        fields = ", ".join(c["field"] for c in record.changes)
        print(f"  v{record.version} {record.source} {record.source_event_id} {record.occurred_at}: {fields}")
    for decision in document["decisions"]:
        dropped = ", ".join(f"{d['field']} ({d['reason']})" for d in decision["discarded"])
        print(f"  discarded from {decision['source']} {decision['source_event_id']}: {dropped}")
    print("audit chain: " + ("intact" if not document["audit_problems"] else "; ".join(document["audit_problems"])))
    return 0


def cmd_customers(args: argparse.Namespace) -> int:
    """Merge candidates and a person's decisions on them."""
    from shared.adapters.identity_index import DynamoIdentityIndex

    store, _ = _stores(args)
    index = DynamoIdentityIndex(store.table, args.tenant)
    if args.action == "candidates":
        found = [c for c in index.candidates() if args.all or c["status"] == "open"]
        if args.json:
            print(json.dumps({"candidates": found}, indent=2))
            return 0
        for c in found:
            decided = f" ({c['decided_by']}, {c['decided_at']})" if "decided_by" in c else ""
            print(f"{c['status']:<11} {' '.join(c['customers'])}  evidence: {', '.join(c['evidence'])}{decided}")
        print(f"{len(found)} {'' if args.all else 'open '}merge candidate(s) for tenant {args.tenant}")
        return 0
    ids = [args.customer, *args.others]
    if len(set(ids)) < 2:
        print("aftersync: name at least two different customer ids", file=sys.stderr)
        return 2
    unknown = [c for c in ids if store.load(args.tenant, "customer", c)[0] is None]
    if unknown:
        print(f"aftersync: no customer {', '.join(map(repr, unknown))} for tenant {args.tenant!r}", file=sys.stderr)
        return 2
    status = index.decide(ids, merge=args.action == "merge", by=args.by)
    if args.json:
        print(json.dumps({"customers": ids, "status": status}))
    elif status == "merged":
        print(f"merged {', '.join(ids[1:])} into {ids[0]}: their keys and later events answer to {ids[0]}")
    else:
        print(f"kept apart: {', '.join(ids)} (no resolution will join them)")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from ops.trail import full_trail

    store, archive = _stores(args)
    if args.entity:
        entity_type, _, entity_id = args.entity.partition(":")
        entities = [(args.tenant, entity_type, entity_id)]
    else:
        entities = store.entities(args.tenant)
    report = []
    for tenant, entity_type, entity_id in entities:
        trail = full_trail(store, archive, tenant, entity_type, entity_id)
        report.append(
            {
                "tenant": tenant,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "records": len(trail.records),
                "problems": trail.problems(),
            }
        )
    broken = [r for r in report if r["problems"]]
    if args.json:
        print(json.dumps({"verified": len(report), "broken": broken}, indent=2, ensure_ascii=False))
    else:
        for r in broken:
            print(f"BROKEN {r['tenant']} {r['entity_type']} {r['entity_id']}: {'; '.join(r['problems'])}")
        print(
            f"{len(report)} audit trail(s) verified, {sum(r['records'] for r in report)} records, {len(broken)} broken"
        )
    return 1 if broken else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from ops.replay import ReplaySelection, replay
    from shared.adapters.sqs import SqsQueue

    _, archive = _stores(args)
    if args.aws:
        import boto3

        cfg = load_environment(args.env)
        outputs = boto3.client("cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"][0]["Outputs"]
        inbox_url = {o["OutputKey"]: o["OutputValue"] for o in outputs}["QueueInbox"]
    else:
        inbox_url = json.loads(STATE_FILE.read_text(encoding="utf-8"))["queues"]["inbox"]

    def when(text: str) -> datetime:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    selection = ReplaySelection(args.source, args.tenant, when(args.since), when(args.until), args.entity)

    def progress(done: int, prefix: str) -> None:
        print(f"\r  replayed {done} (reading {prefix})", end="", file=sys.stderr, flush=True)

    replayed = replay(selection, archive, SqsQueue(inbox_url), progress=None if args.json else progress)
    if not args.json and replayed:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps({"replayed": replayed}, indent=2))
    else:
        print(f"replayed {len(replayed)} archived deliveries of {args.source}/{args.tenant} into the inbox")
    return 0


def _backfill_resources(args: argparse.Namespace) -> dict[str, str]:
    """What a backfill writes to and reads: from a deployed stack's outputs (``--aws``) or the sandbox."""
    if args.aws:
        import boto3

        cfg = load_environment(args.env)
        outputs = boto3.client("cloudformation").describe_stacks(StackName=cfg.stack_name)["Stacks"][0]["Outputs"]
        values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
        keys = {
            "state": "StateTable",
            "archive": "ArchiveBucket",
            "idempotency": "IdempotencyTable",
            "inbox": "QueueInbox",
        }
        return {name: values[key] for name, key in keys.items()}
    _stores(args)  # points boto3 at the sandbox's AWS stand-in
    info = json.loads(STATE_FILE.read_text(encoding="utf-8"))
    return {
        "state": info["state_table"],
        "archive": info["archive_bucket"],
        "idempotency": info["idempotency_table"],
        "inbox": info["queues"]["inbox"],
    }


def cmd_backfill(args: argparse.Namespace) -> int:
    import time
    from datetime import UTC, datetime

    from shared.adapters.idempotency import IdempotentOnce
    from shared.adapters.s3 import S3Archive
    from shared.adapters.sqs import SqsQueue
    from shared.adapters.state_store import DynamoStateStore
    from shared.intake.ingest import StorePorts
    from shared.pulls import backfill
    from shared.state.policy import default_policy

    cfg = load_environment(args.env)
    if args.source not in cfg.sources:
        print(
            f"aftersync: source {args.source!r} is not enabled in {cfg.name} (enabled: {', '.join(cfg.sources)})",
            file=sys.stderr,
        )
        return 2
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"aftersync: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    plan = backfill.plan(args.source, args.tenant, args.topic, backfill.lines(text), datetime.now(UTC), cfg.field_maps)
    summary: dict[str, Any] = {
        "records": len(plan.records),
        "entities": len(plan.entities),
        "rejected": [{"line": r.line, "reason": r.reason} for r in plan.rejected],
    }
    if not args.json:
        print(
            f"checked {len(plan.records) + len(plan.rejected)} record(s) of {args.source}/{args.tenant} "
            f"({args.topic}): {len(plan.records)} usable ({len(plan.entities)} entities), {len(plan.rejected)} rejected"
        )
        for r in plan.rejected[:20]:
            print(f"  line {r.line}: {r.reason}")
    if not plan.records or (plan.rejected and not args.skip_rejected and not args.verify_only):
        reason = "no usable record" if not plan.records else "fix or drop the rejected lines, or pass --skip-rejected"
        print(json.dumps({**summary, "sent": False}, indent=2) if args.json else f"nothing sent: {reason}")
        return 2
    if args.dry_run:
        print(json.dumps({**summary, "sent": False}, indent=2) if args.json else "dry run: nothing sent")
        return 0
    resources = _backfill_resources(args)
    if not args.verify_only:
        ports = StorePorts(
            archive=S3Archive(resources["archive"]),
            inbox=SqsQueue(resources["inbox"]),
            once=IdempotentOnce(resources["idempotency"], cfg.idempotency_ttl_hours * 3600),
        )
        ports.once.register_context(backfill.OperatorRun())
        admitted = backfill.admit(plan, ports)
        summary.update(admitted=len(admitted.new), already_backfilled=len(admitted.duplicates))
        if not args.json:
            print(
                f"admitted {len(admitted.new)} into the inbox (origin=backfill); "
                f"{len(admitted.duplicates)} had been backfilled before"
            )
    store = DynamoStateStore(resources["state"])

    deadline = time.monotonic() + args.wait
    report = backfill.verify(plan, store.load_states, default_policy())
    while not report.complete and time.monotonic() < deadline:
        time.sleep(1)
        report = backfill.verify(plan, store.load_states, default_policy())
    pending = [c for c in report.checks if c.status == "pending"]
    summary["report"] = {
        "applied": report.count("applied"),
        "pending": [
            {
                "line": c.line,
                "entity_type": c.entity_type,
                "entity_id": c.entity_id,
                "fields": list(c.pending_fields),
                "note": c.note,
            }
            for c in pending
        ],
        "not_checked": report.count("not_checked"),
    }
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        customers = report.count("not_checked")
        print(
            f"verified: {report.count('applied')} applied (the state holds these values or ones that beat them), "
            f"{len(pending)} pending"
            + (f", {customers} customer(s) resolved by identity (not checked)" if customers else "")
        )
        for c in pending[:20]:
            what = c.note or f"fields {', '.join(c.pending_fields)} not in the state"
            print(f"  line {c.line}: {c.entity_type} {c.entity_id}: {what}")
    return 1 if pending else 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Run a scheduled pull now: the same message its schedule sends, then the run's counts."""
    import functools
    import time

    from shared.adapters.sqs import SqsQueue
    from shared.adapters.watermarks import ReconcileWatermarks

    cfg = load_environment(args.env)
    jobs = [(j.source, j.tenant) for j in cfg.reconcile]
    if (args.source, args.tenant) not in jobs:
        print(
            f"aftersync: no scheduled pull of {args.source}/{args.tenant} in {cfg.name} (have {jobs})", file=sys.stderr
        )
        return 2
    store, _ = _stores(args)
    saved = functools.partial(ReconcileWatermarks(store.table).last_run, args.source, args.tenant)

    before = saved()
    SqsQueue(_queue_urls(args)["reconcile"]).send(json.dumps({"source": args.source, "tenant": args.tenant}))
    deadline = time.monotonic() + args.wait
    after = saved()
    while after == before and time.monotonic() < deadline:
        time.sleep(0.5)
        after = saved()
    if after == before:
        message = "queued; the run has not reported yet (see the reconcile function's logs, or run again with --wait)"
        print(json.dumps({"queued": True, "watermark": after}) if args.json else message)
        return 0
    assert after is not None
    if args.json:
        print(json.dumps({"queued": True, "watermark": after}, indent=2))
    else:
        print(
            f"{args.source}/{args.tenant}: pulled {after['pulled']} in {after['pages']} page(s): {after['known']} "
            f"already in the state, {after['missed']} missed by webhooks and fed in, {after['unusable']} unusable "
            f"(quarantined); watermark {after['newest']}"
        )
    return 0


def _where(p: argparse.ArgumentParser, aws_help: str = "the deployed stack of --env instead of the sandbox") -> None:
    """The options every inspection command shares: JSON output, and the sandbox or a deployed stack."""
    p.add_argument("--json", action="store_true")
    p.add_argument("--env", default="dev")
    p.add_argument("--aws", action="store_true", help=aws_help)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="aftersync", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    for name, help_text, func in (
        ("local", "run the sandbox until interrupted", cmd_local),
        ("demo", "run the sandbox, replay the samples, print a summary", cmd_demo),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--port", type=int, default=3000, help="API port (default 3000; 0 picks a free one)")
        p.add_argument("--env", default="dev", help="environment from cdk.json whose config to run (default dev)")
        p.add_argument("--secrets", default=str(DEFAULT_SECRETS), help="JSON file of source and target secrets")
        p.add_argument(
            "--verbose",
            action="store_true",
            help="echo the handlers' logs to stderr (always in .aftersync/sandbox.log, or demo.log for the demo)",
        )
        if name == "demo":
            p.add_argument(
                "--scenario",
                choices=["mixed", "outage"],
                default="mixed",
                help="mixed: every source through the pipeline (default); outage: a target outage raising "
                "the success-rate alarm in the fake WeCom group, then its recovery",
            )
        p.set_defaults(func=func)
    entity = sub.add_parser("entity", help="inspect entities").add_subparsers(dest="action", required=True)
    show = entity.add_parser("show", help="an entity's state and audit trail")
    show.add_argument("entity_type", choices=sorted(ENTITY_MODELS))
    show.add_argument("entity_id")
    show.add_argument("--tenant", default="demo")
    _where(show, "read the deployed stack of --env instead of the sandbox")
    show.set_defaults(func=cmd_entity_show)
    rp = sub.add_parser("replay", help="re-feed archived raw deliveries through normalise (origin=replay)")
    rp.add_argument("--source", required=True)
    rp.add_argument("--tenant", required=True)
    rp.add_argument("--since", required=True, help="ISO-8601 time (UTC if no offset)")
    rp.add_argument("--until", required=True, help="ISO-8601 time (UTC if no offset)")
    rp.add_argument("--entity", help="only deliveries about this entity id, e.g. shopify:820982911946154508")
    _where(rp, "replay in the deployed stack of --env")
    rp.set_defaults(func=cmd_replay)
    rc = sub.add_parser(
        "reconcile", help="run a scheduled pull now: what the platform changed, compared with the state"
    )
    rc.add_argument("--source", required=True)
    rc.add_argument("--tenant", required=True)
    rc.add_argument("--wait", type=float, default=30, help="seconds to wait for the run's counts")
    _where(rc, "run it in the deployed stack of --env")
    rc.set_defaults(func=cmd_reconcile)
    bf = sub.add_parser(
        "backfill", help="feed a file of a source's records (JSON Lines) through the pipeline, then verify the state"
    )
    bf.add_argument("file", type=Path, help="one record per line, as the source's API or export gives it")
    bf.add_argument("--source", required=True)
    bf.add_argument("--tenant", required=True)
    bf.add_argument(
        "--topic", required=True, help="what the records are, as the source's webhook topic (orders/updated)"
    )
    bf.add_argument("--dry-run", action="store_true", help="check every record; send nothing")
    bf.add_argument("--skip-rejected", action="store_true", help="send the usable records even if some are rejected")
    bf.add_argument(
        "--verify-only", action="store_true", help="send nothing; report how far the state reflects the file"
    )
    bf.add_argument("--wait", type=float, default=60, help="seconds to wait for the pipeline before the report")
    _where(bf, "backfill the deployed stack of --env")
    bf.set_defaults(func=cmd_backfill)
    dlq = sub.add_parser("dlq", help="dead-letter queues: list, look inside, redrive").add_subparsers(
        dest="action", required=True
    )
    for action, help_text in (
        ("list", "every DLQ and the quarantine, with their depths"),
        ("show", "a DLQ's (or the quarantine's) messages with their reasons (bodies only with --body, masked)"),
        ("redrive", "send a DLQ's messages back to their source queue, rate-capped"),
    ):
        d = dlq.add_parser(action, help=help_text)
        if action != "list":
            d.add_argument("queue", help="the DLQ, e.g. orders-dlq (or its source queue: orders), or quarantine")
        if action == "list":
            d.add_argument(
                "--fail-if-any", action="store_true", help="exit 1 when any DLQ or the quarantine holds messages"
            )
        if action == "show":
            d.add_argument("--limit", type=int, default=10)
            d.add_argument("--body", action="store_true", help="include message bodies (personal data masked)")
        if action == "redrive":
            d.add_argument("--rate", type=int, default=10, help="messages per second at most (default 10)")
            d.add_argument(
                "--method",
                choices=["auto", "move-task", "copy"],
                default="auto",
                help="auto: StartMessageMoveTask where SQS offers it, else receive/send/delete",
            )
        _where(d)
        d.set_defaults(func=cmd_dlq)
    customers = sub.add_parser(
        "customers", help="customer identity: merge candidates, and a person's decision on them"
    ).add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("candidates", "merge candidates: customers one record named but the resolver would not join"),
        ("merge", "these are one person: merge the others into the first id"),
        ("keep-apart", "these are different people: no resolution will join them"),
    ):
        c = customers.add_parser(action, help=help_text)
        if action == "candidates":
            c.add_argument("--all", action="store_true", help="decided candidates too")
        else:
            c.add_argument("customer", help="a customer id (for merge: the one that stays)")
            c.add_argument("others", nargs="+", help="the other customer id(s)")
            c.add_argument("--by", required=True, help="who decided (kept with the decision)")
        c.add_argument("--tenant", default="demo")
        _where(c)
        c.set_defaults(func=cmd_customers)
    audit = sub.add_parser("audit", help="audit trail tools").add_subparsers(dest="action", required=True)
    verify = audit.add_parser("verify", help="check every audit chain (hot and archived); exit 1 if any is broken")
    verify.add_argument("--tenant", default=None, help="only this tenant (default: all)")
    verify.add_argument("--entity", help="only this entity, as TYPE:ID (needs --tenant)")
    _where(verify, "verify the deployed stack of --env")
    verify.set_defaults(func=cmd_audit_verify)
    return root


def main(argv: list[str] | None = None) -> int:
    from botocore.exceptions import EndpointConnectionError

    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except EndpointConnectionError as exc:  # the sandbox went away during the command
        sys.exit(
            f"aftersync: cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}: is the sandbox running?"
        )


if __name__ == "__main__":
    raise SystemExit(main())
