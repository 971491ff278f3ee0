"""``aftersync reconcile``: run a scheduled pull now and report its counts."""

from __future__ import annotations

import json as jsonlib
import time
from typing import Annotated

import typer

from ops.cli.common import AwsOption, ConfigOption, EnvOption, JsonOption, Where, emit_json, refuse, say
from shared.adapters.sqs import SqsQueue
from shared.adapters.watermarks import ReconcileWatermarks

HELP = "run a scheduled pull now: what the platform changed, compared with the state"


def command(
    source: Annotated[str, typer.Option("--source", help="the platform to pull from, e.g. shopify")],
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose scheduled pull to run")],
    wait: Annotated[float, typer.Option("--wait", help="seconds to wait for the run's counts")] = 30,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    """The same message its schedule sends, then the run's counts from its watermark."""
    where = Where(aws, env, config)
    cfg = where.environment()
    jobs = [(j.source, j.tenant) for j in cfg.reconcile]
    if (source, tenant) not in jobs:
        refuse(f"aftersync: no scheduled pull of {source}/{tenant} in {cfg.name} (have {jobs})")
    resources = where.resources()
    watermarks = ReconcileWatermarks(resources.state_table, resources.dynamodb())

    before = watermarks.last_run(source, tenant)
    SqsQueue(resources.queues["reconcile"], resources.sqs()).send(jsonlib.dumps({"source": source, "tenant": tenant}))
    deadline = time.monotonic() + wait
    after = watermarks.last_run(source, tenant)
    while after == before and time.monotonic() < deadline:
        time.sleep(0.5)
        after = watermarks.last_run(source, tenant)
    if after == before:
        if json:
            emit_json({"queued": True, "watermark": after}, indent=None)
        else:
            say("queued; the run has not reported yet (see the reconcile function's logs, or run again with --wait)")
        return
    assert after is not None
    if json:
        emit_json({"queued": True, "watermark": after})
    else:
        say(
            f"{source}/{tenant}: pulled {after['pulled']} in {after['pages']} page(s): {after['known']} "
            f"already in the state, {after['missed']} missed by webhooks and fed in, {after['unusable']} unusable "
            f"(quarantined); watermark {after['newest']}"
        )


def register(app: typer.Typer) -> None:
    app.command("reconcile", help=HELP)(command)
