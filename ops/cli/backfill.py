"""``aftersync backfill``: a file of records (JSON Lines, or a CSV / Excel export with a column map)
through the pipeline in verified batches, resumable from the last verified batch; then the state's report."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError

from ops import backfill_batches as batching
from ops.backfill_files import TOPIC, UnreadableFile, content_hash, file_format, load_column_map, mapped_records
from ops.backfill_files import read_table as read_export
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

HELP = (
    "feed a file of records (JSON Lines, or a CSV / Excel export with --map) through the pipeline in "
    "verified batches, resumable after an interruption"
)
INTERRUPTED = 130


def command(
    file: Annotated[
        Path,
        typer.Argument(help="JSON Lines (one record per line, as the source gives it), or a .csv / .xlsx export"),
    ],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant they belong to")],
    source: Annotated[
        str | None,
        typer.Option("--source", help="the source the records come from, e.g. shopify (an export: the map's)"),
    ] = None,
    topic: Annotated[
        str | None,
        typer.Option(
            "--topic", help="what the records are, as the source's webhook topic (orders/updated); JSON Lines only"
        ),
    ] = None,
    file_format_: Annotated[
        str | None, typer.Option("--format", help="jsonl, csv or xlsx (default: from the file's suffix)")
    ] = None,
    map_file: Annotated[
        Path | None,
        typer.Option("--map", help="the column map of a CSV / Excel export (JSON; docs/operations.md, Backfill)"),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="records per batch: each is verified before the next is sent")
    ] = batching.DEFAULT_BATCH_SIZE,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="go on after a batch that does not verify (default: stop there)")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check every record; send nothing")] = False,
    skip_rejected: Annotated[
        bool, typer.Option("--skip-rejected", help="send the usable records even if some are rejected")
    ] = False,
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="send nothing; report how far the state reflects the file")
    ] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="seconds to wait for the pipeline to apply each batch before its report")
    ] = 60,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    where = Where(aws, env, config)
    cfg = where.environment()
    try:
        fmt = file_format(file, file_format_)
    except UnreadableFile as exc:
        refuse(str(exc))
    unit = "line" if fmt == "jsonl" else "row"
    received_at = datetime.now(UTC)
    if fmt == "jsonl":
        if map_file is not None:
            refuse("aftersync: --map is for CSV and Excel exports; JSON Lines hold the source's own records")
        if source is None or topic is None:
            refuse("aftersync: JSON Lines need --source and --topic (what the records are)")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            refuse(f"aftersync: cannot read {file}: {exc}")
        records, empty_rows, recipe = list(backfill.lines(text)), 0, f"jsonl:{source}/{topic}"
        map_rejects: list[backfill.Rejected] = []
    else:
        if map_file is None:
            refuse(f"aftersync: a {fmt} export needs --map, its column map (docs/operations.md, Backfill)")
        try:
            column_map = load_column_map(map_file)
            table = read_export(file, fmt)
        except UnreadableFile as exc:
            refuse(str(exc))
        if source not in (None, column_map.source) or topic not in (None, TOPIC):
            refuse(f"aftersync: the map's rows are {column_map.source} {TOPIC} records; drop --source / --topic")
        source, topic = column_map.source, TOPIC
        if source in cfg.field_maps:
            refuse(
                f"aftersync: {source} has a field map in {cfg.name}'s config, which the normalise function would "
                "apply to the mapped rows: load the export through an in-house source without one"
            )
        missing = column_map.missing_columns(table.header)
        if missing:
            refuse(f"aftersync: {file.name}: " + "; ".join(missing))
        records, map_rejects = mapped_records(table, column_map)
        empty_rows, recipe = table.empty_rows, f"map:{source}:{column_map.digest()}"
    if source not in cfg.sources:
        refuse(f"aftersync: source {source!r} is not enabled in {cfg.name} (enabled: {', '.join(cfg.sources)})")

    checked = backfill.plan(source, tenant, topic, records, received_at, cfg.field_maps)
    plan = backfill.Plan(checked.records, tuple(sorted(checked.rejected + tuple(map_rejects), key=lambda r: r.line)))
    planned = batching.batches(plan, batch_size)
    summary: dict[str, Any] = {
        "format": fmt,
        "records": len(plan.records),
        "entities": len(plan.entities),
        "rejected": [{"line": r.line, "reason": r.reason} for r in plan.rejected],
        "batches_planned": len(planned),
    }
    if not json:
        say(
            f"checked {len(plan.records) + len(plan.rejected)} {unit}(s) of {source}/{tenant} ({topic}): "
            f"{len(plan.records)} usable ({len(plan.entities)} entities), {len(plan.rejected)} rejected"
            + (f"; {empty_rows} empty row(s) skipped" if empty_rows else "")
        )
        for r in plan.rejected[:20]:
            say(f"  {unit} {r.line}: {r.reason}")
    if not plan.records or (plan.rejected and not skip_rejected and not verify_only):
        reason = (
            "no usable record" if not plan.records else f"fix or drop the rejected {unit}s, or pass --skip-rejected"
        )
        _not_sent(summary, f"nothing sent: {reason}", json)
        done(2)
    if dry_run:
        _not_sent(summary, f"dry run: nothing sent ({len(planned)} batch(es) of up to {batch_size})", json)
        return

    resources = where.resources()
    dynamodb = resources.dynamodb()
    store = DynamoStateStore(resources.state_table, dynamodb)
    policy = default_policy()
    verify = batching.patient_verify(lambda p: backfill.verify(p, store.load_states, policy), wait)
    checkpoints = batching.Checkpoints(resources.idempotency_table, dynamodb)
    key = batching.checkpoint_key(tenant, content_hash(file), recipe)
    ports = None
    done_before = batching.Checkpoint(0, 0, 0, batch_size, 0)
    if not verify_only:
        ports = StorePorts(
            archive=S3Archive(resources.archive_bucket, resources.s3()),
            inbox=SqsQueue(resources.queues["inbox"], resources.sqs()),
            once=AdmissionLedger(resources.idempotency_table, cfg.idempotency_ttl_hours * 3600, dynamodb),
        )
        ports.once.register_context(backfill.OperatorRun())
        done_before = checkpoints.load(key) or done_before
        if done_before.sent_records and not json:
            saved = datetime.fromtimestamp(done_before.saved_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            say(
                f"resuming from the checkpoint of a run at {saved}: the first {done_before.verified_records} "
                f"record(s) ({done_before.batches} batch(es) of {done_before.batch_size}) were verified, "
                f"{done_before.sent_records} sent; those are re-checked, not sent again"
            )
    # how far this file is: verified (leading batches) and sent; saved after each verified batch and
    # when the run is cut short
    reached = {
        "verified": done_before.verified_records,
        "batches": done_before.batches,
        "sent": done_before.sent_records,
    }
    results: list[batching.BatchResult] = []

    def report_batch(result: batching.BatchResult) -> None:
        results.append(result)
        if not json:
            say(_batch_line(result, len(planned), unit))
            for c in [c for c in result.report.checks if c.status == "pending"][:20]:
                what = c.note or f"fields {', '.join(c.pending_fields)} not in the state"
                say(f"    {unit} {c.line}: {c.entity_type} {c.entity_id}: {what}")

    def save(batch: batching.Batch) -> None:
        reached.update(verified=batch.end, batches=batch.number, sent=max(reached["sent"], batch.end))
        checkpoints.save(key, batch.end, reached["sent"], batch.number, batch_size, len(plan.records))

    stopped = None
    with progress_bar("admitting", enabled=not json and ports is not None) as progress:

        def admit(records: backfill.Plan, first: int) -> backfill.Admitted:
            assert ports is not None
            total = len(plan.records)

            def advanced(n: int) -> None:
                reached["sent"] = max(reached["sent"], first + n)
                if progress:
                    progress(first + n, total)

            return backfill.admit(records, ports, advanced)

        try:
            batching.run_batches(
                planned,
                admit=admit if ports is not None else None,
                verify=verify,
                verified_before=done_before.verified_records,
                sent_before=done_before.sent_records,
                save=save if ports is not None else None,
                keep_going=keep_going,
                on_result=report_batch,
            )
        except KeyboardInterrupt:
            stopped = ("interrupted", INTERRUPTED)
        except (ClientError, BotoCoreError) as exc:  # a throttled or failed send: what was sent is not lost
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            stopped = (f"an AWS call failed ({code})", 1)
    if stopped is not None and ports is not None:
        # what the cut-short batch had sent is not sent again by the next run (the admission records alone
        # would send it again once their lease is over)
        # (unsaved, AWS unreachable: the admission records still keep each record to one send within their lease)
        with contextlib.suppress(ClientError, BotoCoreError):
            checkpoints.save(
                key, reached["verified"], reached["sent"], reached["batches"], batch_size, len(plan.records)
            )
    _summarise(summary, results, planned)
    if stopped is not None:
        _interrupted(summary, results, json, *stopped)
    _show(summary, results, planned, json, unit)
    done(0 if all(r.verified for r in results) and len(results) == len(planned) else 1)


def _batch_line(result: batching.BatchResult, of: int, unit: str) -> str:
    batch, report = result.batch, result.report
    first, last = batch.lines
    count = len(batch.plan.records)
    head = f"batch {batch.number}/{of} ({unit}s {first}-{last}, {count} record{'' if count == 1 else 's'}): "
    if result.resumed:
        sent = "verified by an earlier run, not sent again"
    elif result.admitted is not None:
        sent = f"admitted {result.new}, {result.duplicates} backfilled before" + (
            f", {result.sent_earlier} sent by the interrupted run" if result.sent_earlier else ""
        )
    else:
        sent = "not sent (--verify-only)"
    pending = report.count("pending")
    verdict = "verified" if result.verified else "NOT VERIFIED"
    return f"{head}{sent}; {verdict}: {report.count('applied')} applied, {pending} pending"


def _summarise(summary: dict[str, Any], results: list[batching.BatchResult], planned: list[batching.Batch]) -> None:
    checks = [c for r in results for c in r.report.checks]
    failed = [r for r in results if not r.verified]
    summary.update(
        admitted=sum(r.new for r in results),
        already_backfilled=sum(
            r.duplicates + r.sent_earlier + (len(r.batch.plan.records) if r.resumed else 0) for r in results
        ),
        report={
            "applied": sum(1 for c in checks if c.status == "applied"),
            "pending": [
                {
                    "line": c.line,
                    "entity_type": c.entity_type,
                    "entity_id": c.entity_id,
                    "fields": list(c.pending_fields),
                    "note": c.note,
                }
                for c in checks
                if c.status == "pending"
            ],
            "not_checked": sum(1 for c in checks if c.status == "not_checked"),
        },
        batches=[
            {
                "batch": r.batch.number,
                "first_line": r.batch.lines[0],
                "last_line": r.batch.lines[1],
                "records": len(r.batch.plan.records),
                "resumed": r.resumed,
                "admitted": r.new,
                "duplicates": r.duplicates,
                "sent_earlier": r.sent_earlier,
                "applied": r.report.count("applied"),
                "pending": r.report.count("pending"),
                "verified": r.verified,
            }
            for r in results
        ],
        stopped_at=failed[0].batch.number if failed and len(results) < len(planned) else None,
    )


def _show(
    summary: dict[str, Any], results: list[batching.BatchResult], planned: list[batching.Batch], json: bool, unit: str
) -> None:
    if json:
        emit_json(summary, ensure_ascii=False)
        return
    report = summary["report"]
    customers = report["not_checked"]
    say(
        f"verified {sum(r.verified for r in results)} of {len(planned)} batch(es): "
        f"{report['applied']} applied (the state holds these values or ones that beat them), "
        f"{len(report['pending'])} pending"
        + (f", {customers} customer(s) resolved by identity (not checked)" if customers else "")
        + f"; admitted {summary['admitted']} (origin=backfill), {summary['already_backfilled']} backfilled before"
    )
    if summary["stopped_at"]:
        batch = planned[summary["stopped_at"] - 1]
        say(
            f"stopped: batch {batch.number} ({unit}s {batch.lines[0]}-{batch.lines[1]}) did not verify within "
            "--wait; find out why (the quarantine, the DLQs), then run the same command again: it resumes at "
            f"batch {batch.number} (or pass --keep-going)"
        )


def _interrupted(summary: dict[str, Any], results: list[batching.BatchResult], json: bool, why: str, code: int) -> None:
    """Cut short inside a batch: the checkpoint holds the verified batches before it."""
    verified = 0
    for r in results:
        if not r.verified:
            break
        verified = r.batch.number
    summary.update(stopped=why, resume_at_batch=verified + 1)
    if json:
        emit_json(summary, ensure_ascii=False)
    else:
        say(
            f"{why} in batch {verified + 1}: batches 1-{verified} are verified and checkpointed; run the same "
            f"command again (after a few seconds: a record cut short mid-send is held for its lease) to resume "
            f"at batch {verified + 1}; nothing is sent twice"
        )
    done(code)


def _not_sent(summary: dict[str, Any], message: str, json: bool) -> None:
    if json:
        emit_json({**summary, "sent": False}, ensure_ascii=False)
    else:
        say(message)


def register(app: typer.Typer) -> None:
    app.command("backfill", help=HELP)(command)
