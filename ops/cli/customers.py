"""``aftersync customers``: merge candidates, and a person's decision on them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ops.cli.common import AwsOption, ConfigOption, EnvOption, JsonOption, Where, console, emit_json, refuse, say
from ops.resources import Resources
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore

app = typer.Typer(help="customer identity: merge candidates, and a person's decision on them", no_args_is_help=True)

TenantOption = Annotated[str, typer.Option("--tenant", help="the tenant whose customers these are")]
CustomerArgument = Annotated[str, typer.Argument(help="a customer id (for merge: the one that stays)")]
OthersArgument = Annotated[list[str], typer.Argument(help="the other customer id(s)")]
ByOption = Annotated[str, typer.Option("--by", help="who decided (kept with the decision)")]


@app.command(help="merge candidates: customers one record named but the resolver would not join")
def candidates(
    all_: Annotated[bool, typer.Option("--all", help="decided candidates too")] = False,
    tenant: TenantOption = "demo",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    resources = Where(aws, env, config).resources()
    index = DynamoIdentityIndex(resources.state_table, tenant, resources.dynamodb())
    found = [c for c in index.candidates() if all_ or c["status"] == "open"]
    if json:
        emit_json({"candidates": found})
        return
    table = Table("status", "customers", "evidence", "decided")
    for c in found:
        decided = f"{c['decided_by']}, {c['decided_at']}" if "decided_by" in c else ""
        table.add_row(c["status"], " ".join(c["customers"]), ", ".join(c["evidence"]), decided)
    if found:
        console.print(table)
    say(f"{len(found)} {'' if all_ else 'open '}merge candidate(s) for tenant {tenant}")


@app.command(help="these are one person: merge the others into the first id")
def merge(
    customer: CustomerArgument,
    others: OthersArgument,
    by: ByOption,
    tenant: TenantOption = "demo",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    _decide(Where(aws, env, config).resources(), [customer, *others], True, by, tenant, json)


@app.command("keep-apart", help="these are different people: no resolution will join them")
def keep_apart(
    customer: CustomerArgument,
    others: OthersArgument,
    by: ByOption,
    tenant: TenantOption = "demo",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    _decide(Where(aws, env, config).resources(), [customer, *others], False, by, tenant, json)


def _decide(resources: Resources, ids: list[str], merge: bool, by: str, tenant: str, json: bool) -> None:
    if len(set(ids)) < 2:
        refuse("aftersync: name at least two different customer ids")
    dynamodb = resources.dynamodb()
    store = DynamoStateStore(resources.state_table, dynamodb)
    unknown = [c for c in ids if store.load(tenant, "customer", c)[0] is None]
    if unknown:
        refuse(f"aftersync: no customer {', '.join(map(repr, unknown))} for tenant {tenant!r}")
    status = DynamoIdentityIndex(resources.state_table, tenant, dynamodb).decide(ids, merge=merge, by=by)
    if json:
        emit_json({"customers": ids, "status": status}, indent=None)
    elif status == "merged":
        say(f"merged {', '.join(ids[1:])} into {ids[0]}: their keys and later events answer to {ids[0]}")
    else:
        say(f"kept apart: {', '.join(ids)} (no resolution will join them)")
