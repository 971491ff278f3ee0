"""``aftersync``: the operator's CLI, on the local sandbox or (``--aws --env``) a deployed stack.

One module per command group; ``ops.resources`` resolves where a command acts. ``main`` is the
console script (``[project.scripts]`` in pyproject.toml).
"""

from __future__ import annotations

import sys

import typer
from botocore.exceptions import EndpointConnectionError

from ops.cli import (
    access_log,
    audit,
    backfill,
    capacity,
    customers,
    dlq,
    entity,
    lookup,
    reconcile,
    replay,
    sandbox,
    sidebar,
    sources,
)

app = typer.Typer(
    name="aftersync",
    help="aftersync: run the local sandbox and the demo; inspect and repair entities, queues and audit "
    "trails in the sandbox or (--aws --env) a deployed stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a local may hold a secret or personal data
)
sandbox.register(app)
app.add_typer(entity.app, name="entity")
replay.register(app)
reconcile.register(app)
backfill.register(app)
app.add_typer(dlq.app, name="dlq")
app.add_typer(customers.app, name="customers")
app.add_typer(audit.app, name="audit")
capacity.register(app)
access_log.register(app)
lookup.register(app)
sidebar.register(app)
sources.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run a command; exits with its status (``SystemExit``), one line on stderr when it cannot act."""
    try:
        app(args=argv, prog_name="aftersync")
    except EndpointConnectionError as exc:  # the sandbox went away during the command
        sys.exit(
            f"aftersync: cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}: is the sandbox running?"
        )
