"""``aftersync dlq``: the dead-letter queues and the quarantine: list, look inside, redrive."""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.table import Table

from ops.cli.common import (
    AwsOption,
    ConfigOption,
    EnvOption,
    JsonOption,
    Where,
    console,
    done,
    emit_json,
    progress_bar,
    refuse,
    say,
)
from ops.dlq import NOT_REDRIVABLE, DeadLetterQueue, dead_letter_queues, describe, peek, redrive

app = typer.Typer(help="dead-letter queues: list, look inside, redrive", no_args_is_help=True)

QueueArgument = Annotated[
    str, typer.Argument(help="the DLQ, e.g. orders-dlq (or its source queue: orders), or quarantine")
]


def _dead_letter_queues(urls: dict[str, str]) -> dict[str, DeadLetterQueue]:
    return {d.name: d for d in dead_letter_queues(urls)}


def _named(queue: str, dlqs: dict[str, DeadLetterQueue]) -> DeadLetterQueue:
    name = queue if queue in dlqs or queue.endswith("-dlq") else f"{queue}-dlq"
    if name not in dlqs:
        refuse(f"aftersync: no dead-letter queue {name!r} (have {', '.join(sorted(dlqs))})")
    return dlqs[name]


@app.command("list", help="every DLQ and the quarantine, with their depths")
def list_(
    fail_if_any: Annotated[
        bool, typer.Option("--fail-if-any", help="exit 1 when any DLQ or the quarantine holds messages")
    ] = False,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    resources = Where(aws, env, config).resources()
    sqs = resources.sqs()
    rows = [describe(sqs, d) for d in _dead_letter_queues(dict(resources.queues)).values()]
    if json:
        emit_json(rows)
    else:
        table = Table("queue", "messages", "in flight", "redrives to")
        for row in rows:
            table.add_row(row["name"], str(row["messages"]), str(row["in_flight"]), row["redrives_to"] or "-")
        console.print(table)
    done(1 if fail_if_any and any(r["messages"] or r["in_flight"] for r in rows) else 0)


@app.command(help="a DLQ's (or the quarantine's) messages with their reasons (bodies only with --body, masked)")
def show(
    queue: QueueArgument,
    limit: Annotated[int, typer.Option("--limit", help="messages to show at most")] = 10,
    body: Annotated[bool, typer.Option("--body", help="include message bodies (personal data masked)")] = False,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    resources = Where(aws, env, config).resources()
    dlq = _named(queue, _dead_letter_queues(dict(resources.queues)))
    messages = peek(resources.sqs(), dlq, limit=limit, with_body=body)
    if json:
        emit_json(messages, ensure_ascii=False)
        return
    say(f"{dlq.name}: {len(messages)} message(s) shown (bodies {'masked' if body else 'hidden: --body'})")
    for m in messages:
        say(f"- {m['message_id']}  receives {m.get('receive_count', '?')}  from {m.get('source_queue', '?')}")
        say(f"  reason: {m['reason']}")
        if body:
            say(f"  body:   {m['body'][:500]}")


@app.command("redrive", help="send a DLQ's messages back to their source queue, rate-capped")
def redrive_(
    queue: QueueArgument,
    rate: Annotated[int, typer.Option("--rate", help="messages per second at most")] = 10,
    method: Annotated[
        Literal["auto", "move-task", "copy"],
        typer.Option("--method", help="auto: StartMessageMoveTask where SQS offers it, else receive/send/delete"),
    ] = "auto",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    resources = Where(aws, env, config).resources()
    dlq = _named(queue, _dead_letter_queues(dict(resources.queues)))
    if dlq.source is None:
        refuse(
            f"aftersync: {dlq.name} cannot be redriven: {NOT_REDRIVABLE.get(dlq.name, 'its source queue is unknown')}"
        )
    with progress_bar(f"redriving {dlq.name}", enabled=not json) as progress:
        result = redrive(
            resources.sqs(), dlq, resources.queues[dlq.source], rate_per_second=rate, method=method, progress=progress
        )
    if json:
        emit_json(result.__dict__)
    else:
        say(f"moved {result.moved} message(s) from {dlq.name} back to {dlq.source} ({result.method})")
