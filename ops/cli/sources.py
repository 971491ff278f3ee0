"""``aftersync sources``: what the sources send. ``drift``: each topic's known payload shape (its size) and
the schema drifts recorded against it (shared/intake/schema_drift.py), oldest first."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ops.cli.common import AwsOption, ConfigOption, EnvOption, JsonOption, Where, emit_json, refuse, say
from shared.intake.schema_drift import ShapeStore
from shared.sources import NORMALISERS

app = typer.Typer(help="the sources' payloads: known shapes and schema drift", no_args_is_help=True)


@app.command("drift", help="recorded schema drifts per source and topic, and the size of each known shape")
def drift(
    source: Annotated[str | None, typer.Option("--source", help="one source, e.g. shopify (default: all)")] = None,
    json: JsonOption = False,
    env: EnvOption = "dev",
    aws: AwsOption = False,
    config: ConfigOption = None,
) -> None:
    where = Where(aws, env, config)
    cfg = where.environment()
    known = sorted({*cfg.sources, *(j.source for j in cfg.reconcile)})
    if source is not None and source not in NORMALISERS:
        refuse(f"aftersync: no source {source!r} (have {', '.join(sorted(NORMALISERS))})")
    resources = where.resources()
    store = ShapeStore(resources.state_table, resources.dynamodb())
    shapes: list[dict[str, Any]] = []
    drifts: list[dict[str, Any]] = []
    for name in [source] if source else known:
        found_shapes, found_drifts = store.of_source(name)
        shapes += found_shapes
        drifts += found_drifts
    drifts.sort(key=lambda d: (d["first_seen"], d["source"], d["topic"], d["path"]))
    if json:
        emit_json({"shapes": shapes, "drifts": drifts})
        return
    if not shapes:
        say(f"no payload shape known yet for {source or 'any source'} (normalise learns one per topic)")
        return
    table = Table("source", "topic", "paths known", "payloads", "updated")
    for s in shapes:
        table.add_row(s["source"], s["topic"], str(s["paths"]), str(s["payloads"]), s["updated_at"])
    wide().print(table)
    if not drifts:
        say("no schema drift recorded")
        return
    table = Table("first seen", "source", "topic", "kind", "path", "types", "delivery", "tenant")
    for d in drifts:
        types = d["now"] if d["kind"] == "new" else d["was"] if d["kind"] == "missing" else f"{d['was']} -> {d['now']}"
        table.add_row(d["first_seen"], d["source"], d["topic"], d["kind"], d["path"], types, d["delivery"], d["tenant"])
    wide().print(table)


def wide() -> Console:
    """A console measured when the table is printed (the terminal's width, or ``COLUMNS``), so a path
    is shown whole where there is room rather than cut to the width seen when the CLI was imported."""
    return Console(highlight=False, markup=False)


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="sources")
