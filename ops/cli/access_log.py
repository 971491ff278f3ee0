"""``aftersync access-log``: who looked a tenant's customers up (the read audit), oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from ops.cli.common import AwsOption, ConfigOption, EnvOption, JsonOption, Where, emit_json, refuse, say
from shared.read.access_log import MAX_DAYS_LISTED, ReadAudit, ReadRecord, time_key

HELP = (
    "who looked a tenant's customers up: reader, role, selector kind and HMAC (never the value), outcome "
    "and what the answer showed, oldest first"
)
DEFAULT_SINCE = timedelta(days=7)


def parse_since(text: str | None, now: datetime) -> datetime:
    """``--since``: an ISO date or time (``2026-11-11``, ``2026-11-11T08:00+08:00``; UTC when it names
    no zone); default a week ago."""
    if text is None:
        return now - DEFAULT_SINCE
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        refuse(f"aftersync: --since {text!r} is not an ISO date or time (e.g. 2026-11-11 or 2026-11-11T08:00Z)")
    since = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    if since > now:
        refuse(f"aftersync: --since {text!r} is in the future")
    if now - since > timedelta(days=MAX_DAYS_LISTED - 1):
        refuse(f"aftersync: --since {text!r} is more than {MAX_DAYS_LISTED - 1} days back (nothing is kept that long)")
    return since


def line(record: ReadRecord) -> str:
    who = f"{record.reader} ({record.role})" if record.reader and record.role else record.reader or "-"
    selector = f"{record.selector_kind} {record.selector_hmac[:12]}…" if record.selector_hmac else "-"
    outcome = f"{record.outcome}" + (f" ({record.reason})" if record.reason else "")
    shown = ", ".join(record.entity_ids) or "-"
    return f"{time_key(record.at)}  {record.request_id}  {who}  {selector}  {outcome}  {shown}"


def command(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose read audit to list")],
    reader: Annotated[str | None, typer.Option("--reader", help="only this reader's lookups")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="from this ISO date or time (UTC unless it says; default: 7 days ago)")
    ] = None,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    now = datetime.now(UTC)
    start = parse_since(since, now)
    resources = Where(aws, env, config).resources()
    records = list(ReadAudit(resources.state_table, resources.dynamodb()).records(tenant, start, now, reader))
    if json:
        emit_json(
            {
                "tenant": tenant,
                "reader": reader,
                "since": time_key(start),
                "until": time_key(now),
                "records": [r.model_dump(mode="json") for r in records],
            },
            ensure_ascii=False,
        )
        return
    for record in records:
        say(line(record))
    by = f" by {reader}" if reader else ""
    say(f"{len(records)} lookup(s) of tenant {tenant}{by} since {time_key(start)}")


def register(app: typer.Typer) -> None:
    app.command("access-log", help=HELP)(command)
