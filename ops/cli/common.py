"""What every command shares: the options that say where it acts, output, exits and progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

from infra.config import EnvironmentConfig
from ops.resources import Resources, ResourcesUnavailable, environment_config, resolve

# Tables and progress for people; --json output is printed as is, never through rich (no wrapping,
# no markup), so scripts read exactly what json.dumps wrote.
console = Console(highlight=False, markup=False)
errors = Console(stderr=True, highlight=False, markup=False)

JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable JSON on stdout")]
EnvOption = Annotated[str, typer.Option("--env", help="the environment (in cdk.json) to act on")]
AwsOption = Annotated[
    bool, typer.Option("--aws", help="act on the deployed stack of --env (its CloudFormation outputs), not the sandbox")
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="the cdk.json holding the environments' config (default: ./cdk.json, else the checkout's)",
        dir_okay=False,
    ),
]


@dataclass(frozen=True)
class Where:
    """The sandbox, or with ``aws`` the deployed stack of ``env``; the config from ``config``."""

    aws: bool = False
    env: str = "dev"
    config: Path | None = None

    def resources(self) -> Resources:
        try:
            return resolve(self.aws, self.env, self.config)
        except ResourcesUnavailable as exc:
            fail(str(exc))

    def environment(self) -> EnvironmentConfig:
        try:
            return environment_config(self.env, self.config)
        except ResourcesUnavailable as exc:
            fail(str(exc))


def fail(message: str) -> NoReturn:
    """One line on stderr and exit 1: the sandbox, the stack or the config is not there."""
    sys.exit(message)


def refuse(message: str, code: int = 2) -> NoReturn:
    """A request the command cannot carry out as asked: one line on stderr, exit 2."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def emit_json(document: Any, *, indent: int | None = 2, ensure_ascii: bool = True) -> None:
    print(json.dumps(document, indent=indent, ensure_ascii=ensure_ascii))


def say(text: str = "") -> None:
    """A plain line for people (not rich: ids and reasons hold brackets rich would read as markup)."""
    print(text)


def done(code: int = 0) -> NoReturn:
    raise typer.Exit(code)


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr, fed ``(done, total)``; None when disabled (``--json``)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn(label, markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        console=errors,
        transient=not errors.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(completed: int, total: int) -> None:
            bar.update(task, completed=completed, total=total)

        yield update


@contextmanager
def progress_counter(enabled: bool = True) -> Iterator[Callable[[int, str], None] | None]:
    """A running count on stderr for work of unknown size, fed ``(done, what is being read)``."""
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        console=errors,
        transient=not errors.is_terminal,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(count: int, reading: str) -> None:
            bar.update(task, description=f"{count} so far (reading {reading})")

        yield update
