"""``aftersync replay``: re-feed archived raw deliveries through normalise (origin=replay)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from ops.cli.common import (
    AwsOption,
    ConfigOption,
    EnvOption,
    JsonOption,
    Where,
    emit_json,
    progress_counter,
    refuse,
    say,
)
from ops.replay import ReplaySelection, replay
from shared.adapters.s3 import S3Archive
from shared.adapters.sqs import SqsQueue

HELP = "re-feed archived raw deliveries through normalise (origin=replay)"


def _when(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def command(
    source: Annotated[str, typer.Option("--source", help="the source whose deliveries to replay, e.g. shopify")],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant they were delivered for")],
    since: Annotated[str, typer.Option("--since", help="ISO-8601 time (UTC if no offset)")],
    until: Annotated[str, typer.Option("--until", help="ISO-8601 time (UTC if no offset)")],
    entity: Annotated[
        str | None,
        typer.Option("--entity", help="only deliveries about this entity id, e.g. shopify:820982911946154508"),
    ] = None,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    try:
        selection = ReplaySelection(source, tenant, _when(since), _when(until), entity)
    except ValueError as exc:
        refuse(f"aftersync: --since/--until: {exc}")
    resources = Where(aws, env, config).resources()
    archive = S3Archive(resources.archive_bucket, resources.s3())
    with progress_counter(enabled=not json) as progress:
        replayed = replay(selection, archive, SqsQueue(resources.queues["inbox"], resources.sqs()), progress=progress)
    if json:
        emit_json({"replayed": replayed})
    else:
        say(f"replayed {len(replayed)} archived deliveries of {source}/{tenant} into the inbox")


def register(app: typer.Typer) -> None:
    app.command("replay", help=HELP)(command)
