"""``aftersync local`` and ``aftersync demo``: the local sandbox (a checkout's development install).

The commands are wired here; what they run lives in ``infra/sandbox`` (the runtime, the demo and
the outage scenario), imported when a command runs: it needs moto and the rest of the ``dev`` extra,
so an operator's install without them still has every other command and says so in one line here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ops.cli.common import done, fail, say

if TYPE_CHECKING:
    from infra.sandbox.runtime import Sandbox

PortOption = Annotated[int, typer.Option("--port", help="API port (0 picks a free one)")]
EnvOption = Annotated[str, typer.Option("--env", help="environment from cdk.json whose config to run")]
SecretsOption = Annotated[
    Path | None,
    typer.Option(
        "--secrets",
        help="JSON file of source and target secrets (default: infra/sandbox/secrets.local.json)",
        dir_okay=False,
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose",
        help="echo the handlers' logs to stderr (always in .aftersync/sandbox.log, or demo.log for the demo)",
    ),
]


def _start(env: str, port: int, secrets: Path | None, verbose: bool, announce: bool) -> Sandbox:
    """A started sandbox; ``announce``: write the state file other commands find it by (the demo
    must not take over a running sandbox's file)."""
    try:
        from infra.sandbox.iam import SandboxIamError
        from infra.sandbox.runtime import DEFAULT_SECRETS, Sandbox
    except ModuleNotFoundError as exc:
        fail(f"aftersync: the sandbox needs the development install (missing {exc.name}): pip install -e '.[dev,ops]'")
    try:
        return Sandbox(env, port, secrets or DEFAULT_SECRETS, verbose=verbose, announce=announce).start()
    except OSError as exc:
        fail(f"aftersync: cannot start the sandbox on port {port}: {exc.strerror} (try --port)")
    except SandboxIamError as exc:
        fail(f"aftersync: {exc}")


def local(
    port: PortOption = 3000,
    env: EnvOption = "dev",
    secrets: SecretsOption = None,
    verbose: VerboseOption = False,
) -> None:
    sandbox = _start(env, port, secrets, verbose, announce=True)
    say(json.dumps(sandbox.describe(), indent=2))
    print(
        f"sandbox running: POST webhooks to http://127.0.0.1:{sandbox.api_port}/webhooks/<source>/<tenant>; "
        "Ctrl-C stops it",
        flush=True,
    )
    for who, link in sandbox.sidebar_links().items():  # a browser opens the sidebar page as WeCom would
        print(f"sidebar {who}: {link}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Python runs a signal's handler on the main thread alone, once that thread runs bytecode: a SIGTERM
    # the kernel hands to one of the sandbox's other threads leaves a main thread blocked in an untimed
    # ``stop.wait()`` asleep for good. Waking every half second lets it run the handler and stop.
    with contextlib.suppress(KeyboardInterrupt):
        while not stop.wait(0.5):
            pass
    sandbox.stop()


def demo(
    port: PortOption = 3000,
    env: EnvOption = "dev",
    secrets: SecretsOption = None,
    verbose: VerboseOption = False,
    scenario: Annotated[
        Literal["mixed", "outage"],
        typer.Option(
            "--scenario",
            help="mixed: every source through the pipeline; outage: a target outage raising "
            "the success-rate alarm in the fake WeCom group, then its recovery",
        ),
    ] = "mixed",
) -> None:
    sandbox = _start(env, port, secrets, verbose, announce=False)
    from infra.sandbox.demo import run_demo
    from infra.sandbox.outage import run_outage

    try:
        result = run_outage(sandbox) if scenario == "outage" else run_demo(sandbox)
    finally:
        sandbox.stop()
    if sandbox.iam_denials:  # a handler call its stack role does not allow: a missing grant in the stack
        say(f"FAILED: {len(sandbox.iam_denials)} call(s) denied by the functions' IAM policies:")
        for line in sorted(set(sandbox.iam_denials)):
            say(f"  - {line}")
        done(1)
    if sandbox.enforce_iam:
        say("IAM: every function ran with its stack role's policy; no call was denied")
    done(result)


def register(app: typer.Typer) -> None:
    app.command("local", help="run the sandbox until interrupted")(local)
    app.command("demo", help="run the sandbox, replay the samples, print a summary")(demo)
