"""``aftersync entity``: an entity's state, where each field came from, and its audit trail."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from ops.cli.common import AwsOption, ConfigOption, EnvOption, JsonOption, Where, console, emit_json, refuse, say
from ops.trail import full_trail
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.s3 import S3Archive
from shared.adapters.state_store import DynamoStateStore

app = typer.Typer(help="inspect entities", no_args_is_help=True)

# shared.models.ENTITY_MODELS, spelled out so the choices are a type (tests/unit/test_cli.py keeps them equal)
EntityType = Literal["after_sales_case", "customer", "order", "shipment", "stock", "ticket"]
TenantOption = Annotated[str, typer.Option("--tenant", help="the tenant the entity belongs to")]


@app.command(help="an entity's state and audit trail")
def show(
    entity_type: Annotated[EntityType, typer.Argument(help="what the entity is")],
    entity_id: Annotated[str, typer.Argument(help="its id, e.g. shopify:820982911946154508")],
    tenant: TenantOption = "demo",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    resources = Where(aws, env, config).resources()
    dynamodb = resources.dynamodb()
    store = DynamoStateStore(resources.state_table, dynamodb)
    trail = full_trail(store, S3Archive(resources.archive_bucket, resources.s3()), tenant, entity_type, entity_id)
    state = trail.state
    if state is None:
        refuse(f"aftersync: no {entity_type} {entity_id!r} for tenant {tenant!r}")
    absorbed: dict[str, Any] = {}
    if entity_type == "customer":  # a customer found to be another one answers to that one now
        survivor = DynamoIdentityIndex(resources.state_table, tenant, dynamodb).canonical(entity_id)
        absorbed = {"absorbed_into": survivor} if survivor != entity_id else {}
    document = {
        "state": state.model_dump(mode="json"),
        **absorbed,
        "audit_head": trail.head,
        "audit": [r.model_dump(mode="json") for r in trail.records],
        "archived_versions": trail.archived_versions,
        "decisions": store.decisions(tenant, entity_type, entity_id),
        "audit_problems": trail.problems(),
    }
    if json:
        emit_json(document, ensure_ascii=False)
        return
    say(f"{state.entity_type} {state.entity_id} (tenant {state.tenant}) version {state.version}")
    if absorbed:
        say(f"  absorbed into {absorbed['absorbed_into']}: it answers for this customer from now on")
    fields = Table("field", "value", "from", show_edge=False)
    for name, value in sorted(state.fields.items()):
        clock = state.clocks.get(name)
        fields.add_row(
            name, jsonlib.dumps(value, ensure_ascii=False)[:72], f"{clock.source} @ {clock.at}" if clock else ""
        )
    console.print(fields)
    say("audit:")
    for record in trail.records:
        changed = ", ".join(c["field"] for c in record.changes)
        say(f"  v{record.version} {record.source} {record.source_event_id} {record.occurred_at}: {changed}")
    for decision in document["decisions"]:
        dropped = ", ".join(f"{d['field']} ({d['reason']})" for d in decision["discarded"])
        say(f"  discarded from {decision['source']} {decision['source_event_id']}: {dropped}")
    problems = document["audit_problems"]
    say("audit chain: " + ("intact" if not problems else "; ".join(problems)))
