"""``aftersync backfill``: a file of a source's records through the pipeline, then the state's report."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ops.cli.common import (
    AwsOption,
    ConfigOption,
    EnvOption,
    JsonOption,
    Where,
    done,
    emit_json,
    progress_bar,
    refuse,
    say,
)
from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from shared.intake.ingest import StorePorts
from shared.pulls import backfill
from shared.state.policy import default_policy

HELP = "feed a file of a source's records (JSON Lines) through the pipeline, then verify the state"


def command(
    file: Annotated[Path, typer.Argument(help="one record per line, as the source's API or export gives it")],
    source: Annotated[str, typer.Option("--source", help="the source the records come from, e.g. shopify")],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant they belong to")],
    topic: Annotated[
        str, typer.Option("--topic", help="what the records are, as the source's webhook topic (orders/updated)")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check every record; send nothing")] = False,
    skip_rejected: Annotated[
        bool, typer.Option("--skip-rejected", help="send the usable records even if some are rejected")
    ] = False,
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="send nothing; report how far the state reflects the file")
    ] = False,
    wait: Annotated[float, typer.Option("--wait", help="seconds to wait for the pipeline before the report")] = 60,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    where = Where(aws, env, config)
    cfg = where.environment()
    if source not in cfg.sources:
        refuse(f"aftersync: source {source!r} is not enabled in {cfg.name} (enabled: {', '.join(cfg.sources)})")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        refuse(f"aftersync: cannot read {file}: {exc}")
    plan = backfill.plan(source, tenant, topic, backfill.lines(text), datetime.now(UTC), cfg.field_maps)
    summary: dict[str, Any] = {
        "records": len(plan.records),
        "entities": len(plan.entities),
        "rejected": [{"line": r.line, "reason": r.reason} for r in plan.rejected],
    }
    if not json:
        say(
            f"checked {len(plan.records) + len(plan.rejected)} record(s) of {source}/{tenant} "
            f"({topic}): {len(plan.records)} usable ({len(plan.entities)} entities), {len(plan.rejected)} rejected"
        )
        for r in plan.rejected[:20]:
            say(f"  line {r.line}: {r.reason}")
    if not plan.records or (plan.rejected and not skip_rejected and not verify_only):
        reason = "no usable record" if not plan.records else "fix or drop the rejected lines, or pass --skip-rejected"
        _not_sent(summary, f"nothing sent: {reason}", json)
        done(2)
    if dry_run:
        _not_sent(summary, "dry run: nothing sent", json)
        return
    resources = where.resources()
    dynamodb = resources.dynamodb()
    if not verify_only:
        ports = StorePorts(
            archive=S3Archive(resources.archive_bucket, resources.s3()),
            inbox=SqsQueue(resources.queues["inbox"], resources.sqs()),
            once=AdmissionLedger(resources.idempotency_table, cfg.idempotency_ttl_hours * 3600, dynamodb),
        )
        ports.once.register_context(backfill.OperatorRun())
        with progress_bar("admitting", enabled=not json) as progress:
            total = len(plan.records)
            admitted = backfill.admit(plan, ports, (lambda n: progress(n, total)) if progress else None)
        summary.update(admitted=len(admitted.new), already_backfilled=len(admitted.duplicates))
        if not json:
            say(
                f"admitted {len(admitted.new)} into the inbox (origin=backfill); "
                f"{len(admitted.duplicates)} had been backfilled before"
            )
    store = DynamoStateStore(resources.state_table, dynamodb)

    deadline = time.monotonic() + wait
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
    if json:
        emit_json(summary, ensure_ascii=False)
    else:
        customers = report.count("not_checked")
        say(
            f"verified: {report.count('applied')} applied (the state holds these values or ones that beat them), "
            f"{len(pending)} pending"
            + (f", {customers} customer(s) resolved by identity (not checked)" if customers else "")
        )
        for c in pending[:20]:
            what = c.note or f"fields {', '.join(c.pending_fields)} not in the state"
            say(f"  line {c.line}: {c.entity_type} {c.entity_id}: {what}")
    done(1 if pending else 0)


def _not_sent(summary: dict[str, Any], message: str, json: bool) -> None:
    if json:
        emit_json({**summary, "sent": False})
    else:
        say(message)


def register(app: typer.Typer) -> None:
    app.command("backfill", help=HELP)(command)
