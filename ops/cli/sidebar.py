"""``aftersync sidebar``: the WeCom sidebar page's operator commands.

``aftersync sidebar link --tenant T --reader R --phone P [--minutes 5]`` prints a call centre's screen-pop
URL: the sidebar page with ``?link=<grant>``, signed with the environment's sidebar key, for reader ``R``
(its role is the one its secret holds when the link is opened) and phone ``P``. The phone is not in the
URL (which lands in access logs and browser history): the grant carries its tenant-salted HMAC only, and
is refused once ``--minutes`` have passed. The command reads three secrets (the reader's, the tenant's
identity salt, the sidebar signing key): an operator's credentials, never a reader's.
"""

from __future__ import annotations

import json as jsonlib
from typing import Annotated, Any

import typer

from ops.cli.common import AwsOption, ConfigOption, EnvOption, JsonOption, Where, emit_json, fail, refuse, say
from shared.constants import reader_secret_name, sidebar_key_secret_name, tenant_salt_secret_name
from shared.identity.resolver import salt_from_secret
from shared.read.lookup import selector_digest
from shared.read.readers import parse_reader_secret
from shared.read.sidebar_session import MAX_LINK_MINUTES, issue, signing_keys

app = typer.Typer(help="the WeCom sidebar page: screen-pop links", no_args_is_help=True)


def _secret(client: Any, name: str) -> dict[str, Any]:
    try:
        value = jsonlib.loads(client.get_secret_value(SecretId=name)["SecretString"])
    except client.exceptions.ResourceNotFoundException:
        fail(f"aftersync: no secret {name}")
    if not isinstance(value, dict):
        fail(f"aftersync: secret {name} is not a JSON object")
    return value


@app.command(help="a short-lived screen-pop link to the sidebar page for one phone, as a reader")
def link(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant")] = "demo",
    reader: Annotated[str, typer.Option("--reader", help="the reader the page reads as (its role masks it)")] = (
        "demo-agent"
    ),
    phone: Annotated[str, typer.Option("--phone", help="the caller's phone number", prompt=True)] = "",
    minutes: Annotated[
        int, typer.Option("--minutes", help=f"how long the link opens the page (1-{MAX_LINK_MINUTES})")
    ] = 5,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    if not 1 <= minutes <= MAX_LINK_MINUTES:
        refuse(f"aftersync: --minutes is 1 to {MAX_LINK_MINUTES}")
    where = Where(aws, env, config)
    cfg = where.environment()
    resources = where.resources()
    client = resources.session().client("secretsmanager", endpoint_url=resources.endpoint_url)
    try:
        secret = parse_reader_secret(reader, _secret(client, reader_secret_name(cfg.secrets_prefix, reader)))
    except ValueError:
        fail(f"aftersync: the secret of reader {reader!r} is not a reader's")
    if secret.tenant != tenant:
        refuse(f"aftersync: reader {reader!r} reads tenant {secret.tenant!r}, not {tenant!r}")
    salt_name = tenant_salt_secret_name(cfg.secrets_prefix, tenant)
    salt = salt_from_secret(_secret(client, salt_name), salt_name)
    digest = selector_digest("phone", phone, tenant, salt, cfg.default_phone_region)
    if digest is None:
        refuse("aftersync: --phone is not a phone number")
    try:
        keys = signing_keys(_secret(client, sidebar_key_secret_name(cfg.secrets_prefix)))
    except ValueError as exc:
        fail(f"aftersync: {exc}")
    token, grant = issue("link", tenant, reader, secret.role, "phone", minutes, keys, digest)
    base = cfg.sidebar.public_url or (resources.api_url or "").rstrip("/").removesuffix("/webhooks")
    if not base:
        fail("aftersync: no API URL for this environment")
    url = f"{base}/v1/{tenant}/sidebar?link={token}"
    if json:
        emit_json({"url": url, "reader": reader, "role": secret.role, "expires": grant.expires})
    else:
        say(url)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="sidebar")
