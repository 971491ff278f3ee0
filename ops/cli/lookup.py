"""``aftersync lookup``: the customer view as a reader sees it, through the lookup API (so the read is
authenticated, masked by the reader's role and recorded in the read audit like any other); and
``aftersync lookup rebuild``: the view projected again from the stored states (``ops.view_rebuild``),
as an operator, in the sandbox or (``--aws``) a deployed stack."""

from __future__ import annotations

import json as jsonlib
import os
import urllib.error
import urllib.request
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from functions.project.handler import Projector
from infra.sandbox.runtime import DEFAULT_SECRETS
from ops.cli.common import (
    AwsOption,
    ConfigOption,
    EnvOption,
    JsonOption,
    Where,
    emit_json,
    fail,
    progress_bar,
    refuse,
    say,
)
from ops.view_rebuild import purge_state_table as purge_state_table_items
from ops.view_rebuild import rebuild_view
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.view_store import DynamoViewStore
from shared.constants import tenant_salt_secret_name
from shared.errors import ConfigurationError
from shared.identity.resolver import salt_from_secret
from shared.read.view import VIEW_ENTITY_TYPES

KEY_VARIABLE = "AFTERSYNC_READER_KEY"
SELECTORS = ("phone", "email", "order", "serial", "tracking", "wecom_external_userid", "customer_id")


def _option(name: str) -> Any:
    return typer.Option(f"--{name.replace('_', '-')}", help=f"look up by {name.replace('_', ' ')}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="a customer's unified view as a reader; `lookup rebuild`: project the view again")
    app.add_typer(group, name="lookup")

    @group.callback(
        invoke_without_command=True,
        help="a customer's unified view (orders, warranty, cases, shipments, tickets, timeline) as a reader; "
        "`aftersync lookup rebuild --tenant T` projects the view again from the stored states",
    )
    def lookup(
        ctx: typer.Context,
        tenant: Annotated[str, typer.Option("--tenant", help="the tenant to look in")] = "demo",
        phone: Annotated[str | None, _option("phone")] = None,
        email: Annotated[str | None, _option("email")] = None,
        order: Annotated[str | None, _option("order")] = None,
        serial: Annotated[str | None, _option("serial")] = None,
        tracking: Annotated[str | None, _option("tracking")] = None,
        wecom_external_userid: Annotated[str | None, _option("wecom_external_userid")] = None,
        customer_id: Annotated[str | None, _option("customer_id")] = None,
        limit: Annotated[int, typer.Option("--limit", help="timeline entries per page (1-100)")] = 20,
        cursor: Annotated[str | None, typer.Option("--cursor", help="the next page's cursor")] = None,
        reader: Annotated[
            str, typer.Option("--reader", help="the sandbox's reader to ask as (its key from the secrets file)")
        ] = "demo-agent",
        key: Annotated[
            str | None, typer.Option("--key", help=f"a reader's bearer key (default: ${KEY_VARIABLE})")
        ] = None,
        json: JsonOption = False,
        env: EnvOption = "dev",
        aws: AwsOption = False,
        config: ConfigOption = None,
    ) -> None:
        if ctx.invoked_subcommand is not None:
            return  # `lookup rebuild`: its own options
        given = {
            k: v
            for k, v in {
                "phone": phone,
                "email": email,
                "order": order,
                "serial": serial,
                "tracking": tracking,
                "wecom_external_userid": wecom_external_userid,
                "customer_id": customer_id,
            }.items()
            if v is not None
        }
        if len(given) != 1:
            refuse(f"aftersync: look up by exactly one of --{', --'.join(s.replace('_', '-') for s in SELECTORS)}")
        resources = Where(aws, env, config).resources()
        if not resources.api_url:
            fail("aftersync: no API URL for this environment")
        bearer = key or os.environ.get(KEY_VARIABLE) or (None if aws else _sandbox_key(reader))
        if not bearer:
            refuse(f"aftersync: a reader's key is needed: --key or ${KEY_VARIABLE}")
        base = resources.api_url.rstrip("/").removesuffix("/webhooks")
        query = {**given, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, body = _get(f"{base}/v1/{tenant}/lookup?{urlencode(query)}", bearer)
        if json:
            emit_json({"status": status, **body}, ensure_ascii=False)
        else:
            _print(status, body)
        if status != 200:
            raise typer.Exit(1 if status >= 500 else 2)

    @group.command(
        help="project the customer view again from the tenant's stored states (entities unchanged since the "
        "view was deployed appear, stale items go); safe to re-run and while the stack runs"
    )
    def rebuild(
        tenant: Annotated[str, typer.Option("--tenant", help="the tenant whose view to rebuild")] = "demo",
        entity_type: Annotated[
            list[str] | None,
            typer.Option("--entity-type", help=f"only these types (repeatable; of: {', '.join(VIEW_ENTITY_TYPES)})"),
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would change; change nothing")] = False,
        purge_state_table: Annotated[
            bool,
            typer.Option(
                "--purge-state-table",
                help="then delete the tenant's view items a version before the view table left in the state table",
            ),
        ] = False,
        json: JsonOption = False,
        env: EnvOption = "dev",
        aws: AwsOption = False,
        config: ConfigOption = None,
    ) -> None:
        unknown = sorted(set(entity_type or ()) - set(VIEW_ENTITY_TYPES))
        if unknown:
            refuse(f"aftersync: the view shows no {', '.join(unknown)} (types: {', '.join(VIEW_ENTITY_TYPES)})")
        where = Where(aws, env, config)
        resources = where.resources()
        cfg = where.environment()
        client = resources.dynamodb()
        name = tenant_salt_secret_name(cfg.secrets_prefix, tenant)
        secrets = resources.session().client("secretsmanager", endpoint_url=resources.endpoint_url)
        try:
            secret = jsonlib.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
            salt = salt_from_secret(secret, name)
        except (secrets.exceptions.ResourceNotFoundException, ConfigurationError, ValueError):
            fail(f'aftersync: no identity salt for tenant {tenant}: secret {name} must be {{"salt": "..."}}')
        store = DynamoStateStore(resources.state_table, client)
        view = DynamoViewStore(resources.view_table, client)
        projector = Projector(
            store,
            view,
            lambda _: salt,
            lambda t: DynamoIdentityIndex(resources.state_table, t, client),
            cfg.default_phone_region,
        )
        with progress_bar("states", enabled=not json) as progress:
            report = rebuild_view(projector, store, view, tenant, entity_type or (), dry_run, progress)
        if purge_state_table:  # after the rebuild: the view table answers before the old items go
            report.purged = purge_state_table_items(
                client, resources.state_table, resources.view_table, tenant, dry_run
            )
        if json:
            emit_json(report.as_dict())
            return
        verb = "would" if dry_run else ""
        say(
            f"tenant {tenant}: {report.states} state(s) read; {verb} placed {report.placed} entit(ies), "
            f"{verb} wrote {report.timeline} timeline entr(ies), {verb} removed {report.removed} stale item(s), "
            f"{verb} rewrote {report.aliases} alias marker(s)".replace("  ", " ")
        )
        if purge_state_table:
            done = "would delete" if dry_run else "deleted"
            say(f"  {done} {report.purged} view item(s) a version before the view table left in the state table")
        if report.without_customer:
            say(f"  {report.without_customer} entit(ies) name no customer: in no view")
        for name in report.changed_entities:
            say(f"  {name}")


def _sandbox_key(reader: str) -> str | None:
    try:
        readers = jsonlib.loads(DEFAULT_SECRETS.read_text(encoding="utf-8")).get("readers", {})
    except (OSError, ValueError):
        return None
    found = readers.get(reader, {}).get("key")
    return str(found) if found else None


def _get(url: str, key: str) -> tuple[int, dict[str, Any]]:
    if not url.startswith(("https://", "http://127.0.0.1:")):  # the stack's API, or the sandbox's
        fail(f"aftersync: not an API URL: {url.split('?', 1)[0]}")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"}, method="GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - checked above
            return response.status, jsonlib.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, jsonlib.loads(error.read())
        except ValueError:
            return error.code, {"error": "http", "message": error.reason}
    except urllib.error.URLError as error:
        fail(f"aftersync: cannot reach {url.split('?', 1)[0]}: {error.reason}")


def _line(*parts: object) -> None:
    say("  ".join(str(p) for p in parts if p not in (None, "", [])))


def _print(status: int, body: dict[str, Any]) -> None:
    if status != 200:
        _line(status, body.get("error"), body.get("message"))
        return
    if body.get("matches"):
        say(f"{len(body['matches'])} customers answer to that (a shared phone?): ask by --customer-id")
        for match in body["matches"]:
            card = match.get("card") or {}
            _line("", match["customer_id"], card.get("name"), card.get("phone"))
        return
    card = body.get("customer") or {}
    _line(f"customer {body.get('customer_id')}:", card.get("name"), card.get("phone"), card.get("email"))
    for order in body.get("orders", []):
        _line("  order", order.get("order_id"), order.get("status"), order.get("total"), order.get("currency"))
    for row in body.get("warranty", []):
        badge = "in warranty" if row.get("eligible") else "out of warranty"
        _line("  warranty", row.get("serial"), row.get("sku"), f"{badge} until {row.get('ends_on')}")
    for case in body.get("after_sales_cases", []):
        _line(
            "  case",
            case.get("case_id"),
            case.get("kind"),
            case.get("status"),
            " > ".join(case.get("status_path") or []),
        )
    for shipment in body.get("shipments", []):
        last = shipment.get("last_checkpoint") or {}
        _line("  shipment", shipment.get("tracking_number"), shipment.get("status"), last.get("message"))
    for ticket in body.get("tickets", []):
        _line("  ticket", ticket.get("ticket_id"), ticket.get("status"), ticket.get("priority"))
    more = f"; next page: --cursor {body['next_cursor']}" if body.get("next_cursor") else ""
    say(f"  timeline: {len(body.get('timeline', []))} change(s){more}")
