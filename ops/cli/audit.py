"""``aftersync audit``: verify the audit chains, hot and archived."""

from __future__ import annotations

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
from ops.trail import ArchivedAudit, archive_order, full_trail
from shared.adapters.s3 import S3Archive
from shared.adapters.state_store import DynamoStateStore

app = typer.Typer(help="audit trail tools", no_args_is_help=True)


@app.command(help="check every audit chain (hot and archived); exit 1 if any is broken")
def verify(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant (default: all)")] = None,
    entity: Annotated[
        str | None, typer.Option("--entity", help="only this entity, as TYPE:ID (needs --tenant)")
    ] = None,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    if entity and tenant is None:
        refuse("aftersync: --entity needs --tenant")
    resources = Where(aws, env, config).resources()
    store = DynamoStateStore(resources.state_table, resources.dynamodb())
    archive = ArchivedAudit(S3Archive(resources.archive_bucket, resources.s3()))
    if entity and tenant is not None:
        entity_type, _, entity_id = entity.partition(":")
        entities = [(tenant, entity_type, entity_id)]
    else:
        entities = sorted(store.entities(tenant), key=archive_order)  # each archived batch object read once
    report: list[dict[str, Any]] = []
    with progress_bar("verifying audit chains", enabled=not json) as progress:
        for tenant_, entity_type, entity_id in entities:
            trail = full_trail(store, archive, tenant_, entity_type, entity_id)
            report.append(
                {
                    "tenant": tenant_,
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "records": len(trail.records),
                    "problems": trail.problems(),
                }
            )
            if progress:
                progress(len(report), len(entities))
    broken = [r for r in report if r["problems"]]
    if json:
        emit_json({"verified": len(report), "broken": broken}, ensure_ascii=False)
    else:
        for r in broken:
            say(f"BROKEN {r['tenant']} {r['entity_type']} {r['entity_id']}: {'; '.join(r['problems'])}")
        say(f"{len(report)} audit trail(s) verified, {sum(r['records'] for r in report)} records, {len(broken)} broken")
    done(1 if broken else 0)
