"""The one resolver of "sandbox or deployed stack": from the sandbox's state file and from a stack's
outputs, into the same frozen ``Resources``, without touching ``os.environ``."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.config import ROOT, EnvironmentConfig
from infra.sandbox import runtime
from ops.resources import (
    Resources,
    ResourcesUnavailable,
    config_path,
    environment_config,
    from_sandbox,
    resolve,
    sandbox_state_file,
    stack_name,
    stack_resources,
)

ENDPOINT_KEYS = {"aws_access_key_id": "AKIAOPERATOR", "aws_secret_access_key": "operator-secret"}


@pytest.fixture
def listening() -> Iterator[str]:
    """An endpoint that answers (accepts connections), as a running sandbox's AWS stand-in does."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _state(endpoint: str, pid: int, **extra: Any) -> dict[str, Any]:
    return {
        "pid": pid,
        "environment": "dev",
        "aws_endpoint_url": endpoint,
        "region": "eu-west-1",
        "api": "http://127.0.0.1:3000",
        "state_table": "aftersync-dev-state",
        "idempotency_table": "aftersync-dev-idempotency",
        "archive_bucket": "aftersync-dev-archive-123456789012-eu-west-1",
        "queues": {"inbox": f"{endpoint}/123456789012/aftersync-dev-inbox"},
        **extra,
    }


def test_a_running_sandbox_resolves_from_its_state_file_without_touching_the_environment(
    tmp_path: Path, listening: str
) -> None:
    state = tmp_path / "sandbox.json"
    state.write_text(json.dumps(_state(listening, os.getpid(), operator=ENDPOINT_KEYS)), encoding="utf-8")
    environ = dict(os.environ)

    resources = from_sandbox(state)

    assert resources == Resources(
        where="sandbox",
        environment="dev",
        region="eu-west-1",
        endpoint_url=listening,
        state_table="aftersync-dev-state",
        view_table="aftersync-dev-view",  # the sandbox's file names none: the config's rule
        idempotency_table="aftersync-dev-idempotency",
        archive_bucket="aftersync-dev-archive-123456789012-eu-west-1",
        queues={"inbox": f"{listening}/123456789012/aftersync-dev-inbox"},
        api_url="http://127.0.0.1:3000",
        keys=("AKIAOPERATOR", "operator-secret"),
    )
    assert dict(os.environ) == environ
    sqs = resources.sqs()  # signed as the sandbox's operator, sent to its stand-in
    assert (sqs.meta.endpoint_url, sqs.meta.region_name) == (listening, "eu-west-1")
    credentials = resources.session().get_credentials()
    assert credentials is not None
    assert (credentials.access_key, credentials.secret_key) == ("AKIAOPERATOR", "operator-secret")


def test_resources_are_frozen(tmp_path: Path, listening: str) -> None:
    state = tmp_path / "sandbox.json"
    state.write_text(json.dumps(_state(listening, os.getpid())), encoding="utf-8")
    resources = from_sandbox(state)
    with pytest.raises(dataclasses.FrozenInstanceError):
        resources.state_table = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        resources.queues["inbox"] = "other"  # type: ignore[index]
    assert resources.keys == ("sandbox", "sandbox")  # a sandbox without IAM: moto takes any key


def test_no_state_file_means_no_sandbox(tmp_path: Path) -> None:
    with pytest.raises(ResourcesUnavailable) as refused:
        from_sandbox(tmp_path / "sandbox.json")
    assert str(refused.value) == (
        "aftersync: no sandbox is running (start `aftersync local`, or pass --aws for a deployed stack)"
    )


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])  # noqa: S607 - any short-lived process: its pid is then free
    finished.wait()
    return finished.pid


@pytest.mark.parametrize(
    "why",
    ["process gone", "endpoint closed", "not JSON", "a field missing"],
)
def test_a_state_file_left_by_a_dead_sandbox_is_named(tmp_path: Path, listening: str, why: str) -> None:
    state = tmp_path / "sandbox.json"
    closed = f"http://127.0.0.1:{runtime.free_port()}"
    text = {
        "process gone": json.dumps(_state(listening, _dead_pid())),
        "endpoint closed": json.dumps(_state(closed, os.getpid())),
        "not JSON": "{",
        "a field missing": json.dumps({k: v for k, v in _state(listening, os.getpid()).items() if k != "queues"}),
    }[why]
    state.write_text(text, encoding="utf-8")
    with pytest.raises(ResourcesUnavailable) as refused:
        from_sandbox(state)
    assert str(refused.value) == (
        f"aftersync: the sandbox recorded in {state} is not running any more (it stopped without "
        "cleaning up); start one with `aftersync local`"
    )


def test_the_cli_looks_where_the_sandbox_announces_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # one rule: the runtime writes where the CLI reads (both ask ops.resources.sandbox_state_file)
    assert runtime.sandbox_state_file is sandbox_state_file
    monkeypatch.setenv("AFTERSYNC_STATE_DIR", str(tmp_path))
    assert sandbox_state_file() == tmp_path / "sandbox.json"
    monkeypatch.delenv("AFTERSYNC_STATE_DIR")
    assert sandbox_state_file() == ROOT / ".aftersync" / "sandbox.json"


OUTPUTS = [
    {"OutputKey": "WebhookUrl", "OutputValue": "https://abc.execute-api.eu-west-1.amazonaws.com/prod/"},
    {"OutputKey": "StateTable", "OutputValue": "aftersync-prod-state"},
    {"OutputKey": "ViewTable", "OutputValue": "aftersync-prod-view"},
    {"OutputKey": "ArchiveBucket", "OutputValue": "aftersync-prod-archive-111122223333-eu-west-1"},
    {"OutputKey": "IdempotencyTable", "OutputValue": "aftersync-prod-idempotency"},
    {"OutputKey": "Dashboard", "OutputValue": "aftersync-prod"},
    {
        "OutputKey": "QueueInbox",
        "OutputValue": "https://sqs.eu-west-1.amazonaws.com/111122223333/aftersync-prod-inbox",
        "Description": "queue:inbox",
    },
    {
        "OutputKey": "QueueInboxDlq",
        "OutputValue": "https://sqs.eu-west-1.amazonaws.com/111122223333/aftersync-prod-inbox-dlq",
        "Description": "queue:inbox-dlq",
    },
]


def test_a_deployed_stack_resolves_from_its_outputs() -> None:
    resources = stack_resources("prod", OUTPUTS, "eu-west-1")
    assert resources == Resources(
        where="stack",
        environment="prod",
        region="eu-west-1",
        endpoint_url=None,
        state_table="aftersync-prod-state",
        view_table="aftersync-prod-view",
        idempotency_table="aftersync-prod-idempotency",
        archive_bucket="aftersync-prod-archive-111122223333-eu-west-1",
        queues={
            "inbox": "https://sqs.eu-west-1.amazonaws.com/111122223333/aftersync-prod-inbox",
            "inbox-dlq": "https://sqs.eu-west-1.amazonaws.com/111122223333/aftersync-prod-inbox-dlq",
        },
        api_url="https://abc.execute-api.eu-west-1.amazonaws.com/prod/",
        keys=None,
    )


def test_a_stack_missing_an_output_is_named() -> None:
    outputs = [o for o in OUTPUTS if o["OutputKey"] not in ("StateTable", "IdempotencyTable")]
    with pytest.raises(ResourcesUnavailable) as refused:
        stack_resources("prod", outputs, "eu-west-1")
    assert str(refused.value) == (
        "aftersync: the stack Aftersync-prod has no output IdempotencyTable, StateTable (deploy the current version)"
    )


def test_the_stack_name_is_the_configs() -> None:
    config = environment_config("staging", ROOT / "cdk.json")
    assert stack_name("staging") == config.stack_name == "Aftersync-staging"


def test_the_config_is_the_one_given_else_the_working_directorys_else_the_checkouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "elsewhere.json"
    assert config_path(given) == given
    monkeypatch.chdir(tmp_path)
    assert config_path() == ROOT / "cdk.json"  # none here: the checkout's
    (tmp_path / "cdk.json").write_text((ROOT / "cdk.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert config_path() == tmp_path / "cdk.json"
    assert isinstance(environment_config("dev"), EnvironmentConfig)


def test_an_unknown_environment_is_refused_in_one_line() -> None:
    with pytest.raises(ResourcesUnavailable) as refused:
        resolve(aws=True, environment="qa", config=ROOT / "cdk.json")
    assert str(refused.value) == (
        f"aftersync: {ROOT / 'cdk.json'}: no environment 'qa' in cdk.json (have ['dev', 'prod', 'staging'])"
    )
