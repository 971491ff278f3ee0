"""``aftersync customers``: merge candidates, a person's decision on them, and re-resolution of what is
stored under today's rules (``relink``, with a dry run and an undo)."""

from __future__ import annotations

import json as jsonlib
from typing import Annotated

import typer
from rich.table import Table

from ops.cli.common import (
    AwsOption,
    ConfigOption,
    EnvOption,
    JsonOption,
    Where,
    console,
    emit_json,
    fail,
    refuse,
    say,
)
from ops.relink import RelinkStopped, run_relink, undo_relink
from ops.resources import Resources
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.constants import tenant_salt_secret_name
from shared.identity.resolver import salt_from_secret

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


@app.command(help="undo a join: an absorbed customer answers for itself again (and is kept apart)")
def split(
    customer: Annotated[str, typer.Argument(help="the absorbed customer id")],
    by: ByOption,
    tenant: TenantOption = "demo",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    resources = Where(aws, env, config).resources()
    index = DynamoIdentityIndex(resources.state_table, tenant, resources.dynamodb())
    try:
        survivor = index.split(customer)
    except ValueError as exc:
        refuse(f"aftersync: {exc}")
    index.keep_apart([survivor, customer])
    index.record_decision([survivor, customer], False, by, ("split by a person",))
    if json:
        emit_json({"customer": customer, "split_from": survivor}, indent=None)
    else:
        say(f"split {customer} from {survivor}: it answers for itself again, and the two are kept apart")


@app.command(
    help="re-resolve the stored customers under today's rules: joins (audited, undoable) and merge candidates; "
    "run once after upgrading (it also rewrites names older profiles hold in clear as salted hashes)"
)
def relink(
    by: Annotated[str | None, typer.Option("--by", help="who runs it (kept with every join)")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be joined and proposed; change nothing")
    ] = False,
    undo: Annotated[
        str | None, typer.Option("--undo", help="undo the joins of this run (they are then kept apart)")
    ] = None,
    tenant: TenantOption = "demo",
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    where = Where(aws, env, config)
    if not dry_run and not by:
        refuse("aftersync: --by is required to relink (or use --dry-run)")
    if undo and dry_run:
        refuse("aftersync: --undo and --dry-run do not go together")
    resources = where.resources()
    index = DynamoIdentityIndex(resources.state_table, tenant, resources.dynamodb())
    if undo:
        _undo(index, undo, str(by), json)
        return
    name = tenant_salt_secret_name(where.environment().secrets_prefix, tenant)
    secret = resources.session().client("secretsmanager", endpoint_url=resources.endpoint_url)
    salt = salt_from_secret(jsonlib.loads(secret.get_secret_value(SecretId=name)["SecretString"]), name)
    try:
        result = run_relink(index, salt, by, dry_run)
    except RelinkStopped as exc:
        fail(f"aftersync: {exc}")
    joins, candidates, legacy, run = result["joins"], result["candidates"], result["profiles_rewritten"], result["run"]
    if json:
        emit_json({k: v for k, v in result.items() if k != "plan"})
        return
    if joins:
        table = Table("survivor", "absorbed", "evidence")
        for j in joins:
            table.add_row(j["survivor"], j["absorbed"], ", ".join(j["evidence"]))
        console.print(table)
    if candidates:
        table = Table("merge candidate", "evidence")
        for c in candidates:
            table.add_row(" ".join(c["customers"]), ", ".join(c["evidence"]))
        console.print(table)
    for k in result.get("skipped", []):
        say(f"skipped joining {k['absorbed']} into {k['survivor']}: {k['why']}")
    verb = "would join" if dry_run else "joined"
    say(
        f"{verb} {len(joins)} customer(s), {'would propose' if dry_run else 'proposed'} "
        f"{len(candidates)} merge candidate(s), {'would rewrite' if dry_run else 'rewrote'} "
        f"{legacy} profile(s) holding names in clear, for tenant {tenant}"
        + (f"; run {run} (undo: aftersync customers relink --undo {run} --by <you>)" if run else "")
    )


def _undo(index: DynamoIdentityIndex, run: str, by: str, json: bool) -> None:
    try:
        result = undo_relink(index, run, by)
    except LookupError as exc:
        refuse(f"aftersync: {exc}")
    if json:
        emit_json(result)
        return
    for u in result["undone"]:
        say(f"split {u['absorbed']} from {u['survivor']}: it answers for itself again (kept apart)")
    for k in result["skipped"]:
        say(f"skipped {k['absorbed']}: {k['why']}")
    say(f"undid {len(result['undone'])} join(s) of relink run {run}")
