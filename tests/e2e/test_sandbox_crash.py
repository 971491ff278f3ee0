"""A sandbox that died without cleaning up (kill -9, a closed laptop): the CLI says so in one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.sandbox.runtime import free_port
from ops import cli
from tests.e2e.conftest import CLI, ROOT, start_local, stop_local


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])  # noqa: S607 - any short-lived process: its pid is then free
    finished.wait()
    return finished.pid


@pytest.fixture
def stale_state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state file a killed ``aftersync local`` leaves behind: its process and its endpoint are gone."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    state = tmp_path / "sandbox.json"
    state.write_text(
        json.dumps(
            {
                "pid": _dead_pid(),
                "environment": "dev",
                "aws_endpoint_url": endpoint,
                "region": "eu-west-1",
                "api": "http://127.0.0.1:1",
                "state_table": "aftersync-dev-state",
                "idempotency_table": "aftersync-dev-idempotency",
                "archive_bucket": "aftersync-dev-archive-123456789012-eu-west-1",
                "queues": {"orders": f"{endpoint}/123456789012/aftersync-dev-orders"},
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("AFTERSYNC_STATE_DIR", str(tmp_path))  # where the CLI looks for the sandbox
    return state


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "list"],
        ["entity", "show", "order", "shopify:1", "--tenant", "demo"],
        ["audit", "verify"],
    ],
)
def test_a_command_against_a_dead_sandbox_says_so_in_one_line_and_exits_non_zero(
    stale_state_file: Path, argv: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    message = str(exited.value.code)
    assert message == (
        f"aftersync: the sandbox recorded in {stale_state_file} is not running any more (it stopped without "
        "cleaning up); start one with `aftersync local`"
    )


def test_after_a_kill_9_the_cli_says_so_and_a_new_sandbox_starts_cleanly() -> None:
    # Given a sandbox killed with -9: it leaves its state file behind
    crashed, _ = start_local()
    crashed.kill()
    crashed.wait(timeout=30)
    state_file = Path(os.environ["AFTERSYNC_STATE_DIR"]) / "sandbox.json"
    assert state_file.exists()

    # When an operator runs a command, it says in one line that the sandbox is gone
    stale = _cli("dlq", "list")
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        f"aftersync: the sandbox recorded in {state_file} is not running any more (it stopped without "
        "cleaning up); start one with `aftersync local`"
    ]

    # Then a new sandbox starts, the same command reaches it, and a clean stop removes its file
    restarted, _ = start_local()
    try:
        listed = _cli("dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert {"inbox-dlq", "orders-dlq", "quarantine"} <= {row["name"] for row in json.loads(listed.stdout)}
        assert json.loads(state_file.read_text(encoding="utf-8"))["pid"] == restarted.pid
    finally:
        stop_local(restarted)
    assert not state_file.exists()  # (a stop that only a kill ends leaves it: this fails)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
