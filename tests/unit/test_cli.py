"""The ``aftersync`` CLI's surface: every command and group answers --help and lists what it holds;
a command that cannot find its sandbox or config says so in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from typer.testing import CliRunner

from ops.cli import app, main
from ops.cli.entity import EntityType
from shared.models import ENTITY_MODELS

runner = CliRunner()

COMMANDS = {
    (): [
        "local",
        "demo",
        "replay",
        "reconcile",
        "backfill",
        "entity",
        "dlq",
        "customers",
        "audit",
        "capacity",
        "access-log",
        "lookup",
        "sources",
    ],
    ("entity",): ["show"],
    ("dlq",): ["list", "show", "redrive"],
    ("customers",): ["candidates", "merge", "keep-apart"],
    ("audit",): ["verify"],
    ("lookup",): ["rebuild"],
    ("sources",): ["drift"],
}
# Each command and the options it must keep (the e2e tests and operators' scripts use them).
OPTIONS = {
    ("local",): ["--port", "--env", "--secrets", "--verbose"],
    ("demo",): ["--port", "--env", "--secrets", "--verbose", "--scenario"],
    ("replay",): ["--source", "--tenant", "--since", "--until", "--entity", "--json", "--env", "--aws", "--config"],
    ("reconcile",): ["--source", "--tenant", "--wait", "--json", "--env", "--aws", "--config"],
    ("backfill",): [
        "--source",
        "--tenant",
        "--topic",
        "--dry-run",
        "--skip-rejected",
        "--verify-only",
        "--wait",
        "--format",
        "--map",
        "--batch-size",
        "--keep-going",
        "--json",
        "--env",
        "--aws",
        "--config",
    ],
    ("entity", "show"): ["--tenant", "--json", "--env", "--aws", "--config"],
    ("dlq", "list"): ["--fail-if-any", "--json", "--env", "--aws", "--config"],
    ("dlq", "show"): ["--limit", "--body", "--json", "--env", "--aws", "--config"],
    ("dlq", "redrive"): ["--rate", "--method", "--json", "--env", "--aws", "--config"],
    ("customers", "candidates"): ["--all", "--tenant", "--json", "--env", "--aws", "--config"],
    ("customers", "merge"): ["--by", "--tenant", "--json", "--env", "--aws", "--config"],
    ("customers", "keep-apart"): ["--by", "--tenant", "--json", "--env", "--aws", "--config"],
    ("audit", "verify"): ["--tenant", "--entity", "--json", "--env", "--aws", "--config"],
    ("access-log",): ["--tenant", "--reader", "--since", "--json", "--env", "--aws", "--config"],
    ("lookup",): [
        "--tenant",
        "--phone",
        "--email",
        "--order",
        "--serial",
        "--tracking",
        "--wecom-external-userid",
        "--customer-id",
        "--limit",
        "--cursor",
        "--reader",
        "--key",
        "--json",
        "--env",
        "--aws",
        "--config",
    ],
    ("lookup", "rebuild"): ["--tenant", "--entity-type", "--dry-run", "--json", "--env", "--aws", "--config"],
    ("sources", "drift"): ["--source", "--json", "--env", "--aws", "--config"],
    ("capacity",): ["--rate", "--burst", "--burst-seconds", "--duration", "--inputs", "--json", "--env", "--config"],
}


def _help(*path: str) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "aftersync")
def test_the_app_and_every_group_list_their_commands_in_help(path: tuple[str, ...]) -> None:
    listed = _help(*path)
    for command in COMMANDS[path]:
        assert f"│ {command} " in listed, f"{command} missing from `aftersync {' '.join(path)} --help`"


@pytest.mark.parametrize("path", list(OPTIONS), ids=" ".join)
def test_every_command_answers_help_with_its_options(path: tuple[str, ...]) -> None:
    shown = _help(*path)
    assert f"Usage: aftersync {' '.join(path)} " in shown
    for option in OPTIONS[path]:
        assert f" {option} " in shown, f"{option} missing from `aftersync {' '.join(path)} --help`"


def test_the_console_script_is_ops_cli_main() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'aftersync = "ops.cli:main"' in text


def test_main_answers_help_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "Usage: aftersync" in capsys.readouterr().out


def test_entity_show_offers_exactly_the_entity_types() -> None:
    assert get_args(EntityType) == tuple(sorted(ENTITY_MODELS))
    refused = runner.invoke(app, ["entity", "show", "invoice", "x"])
    assert refused.exit_code == 2


def test_a_command_without_a_sandbox_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERSYNC_STATE_DIR", str(tmp_path))  # nothing announced here
    with pytest.raises(SystemExit) as exited:
        main(["dlq", "list", "--json"])
    assert exited.value.code == (
        "aftersync: no sandbox is running (start `aftersync local`, or pass --aws for a deployed stack)"
    )


def test_a_command_needing_the_config_names_the_file_it_could_not_read(tmp_path: Path) -> None:
    missing = tmp_path / "cdk.json"
    with pytest.raises(SystemExit) as exited:
        main(["reconcile", "--source", "shopify", "--tenant", "demo", "--config", str(missing)])
    assert exited.value.code == f"aftersync: cannot read {missing}: No such file or directory"


def test_a_config_without_the_environment_is_refused_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "cdk.json"
    config.write_text(json.dumps({"context": {"aftersync:environments": {}}}), encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(
            ["backfill", "x.jsonl", "--source", "shopify", "--tenant", "demo", "--topic", "t", "--config", f"{config}"]
        )
    assert exited.value.code == (
        f"aftersync: {config}: cdk.json: context.'aftersync:environments' must map environment names to settings"
    )


def test_audit_verify_of_one_entity_needs_its_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERSYNC_STATE_DIR", str(tmp_path))
    refused = runner.invoke(app, ["audit", "verify", "--entity", "order:shopify:1"])
    assert (refused.exit_code, refused.output) == (2, "aftersync: --entity needs --tenant\n")
