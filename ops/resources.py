"""Where the operator's commands act: the running sandbox or a deployed stack, resolved once.

``resolve`` reads the sandbox's state file (``aftersync local`` writes it) or a deployed stack's
CloudFormation outputs (``--aws --env``) and returns a frozen ``Resources``: the names and URLs the
commands need and the credentials and endpoint to reach them. Clients come from ``Resources``,
built from its own session: nothing here changes ``os.environ``, so what one command resolved can
never leak into a client another part of the process creates.

The environment's config (``cdk.json``) is found by an explicit path, else ``./cdk.json``, else the
checkout's; only the commands that need the config (reconcile, backfill) ask for it, so an installed
``aftersync`` drives a deployed stack from its outputs alone.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.config import ROOT, EnvironmentConfig, load_environment
from shared.constants import resource_name
from shared.errors import ConfigurationError

if TYPE_CHECKING:
    from types_boto3_cloudformation import CloudFormationClient
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

# The sandbox's operator keys when its state file names none (IAM not enforced): moto accepts any.
OPEN_SANDBOX_KEYS = ("sandbox", "sandbox")
# Stack outputs by what they name (infra/stack.py); every queue's output is described "queue:<purpose>".
STACK_OUTPUTS = {
    "state_table": "StateTable",
    "view_table": "ViewTable",
    "idempotency_table": "IdempotencyTable",
    "archive_bucket": "ArchiveBucket",
    "api_url": "WebhookUrl",
}
QUEUE_OUTPUT_PREFIX = "queue:"


class ResourcesUnavailable(Exception):
    """The sandbox or stack (or the config) is not there: the message is the one line to show."""


@dataclass(frozen=True)
class Resources:
    """An environment's resources and how to reach them (the sandbox's or a deployed stack's)."""

    where: Literal["sandbox", "stack"]
    environment: str
    region: str | None  # None: the session's default (a deployed stack resolved without its config)
    endpoint_url: str | None  # the sandbox's AWS stand-in; None for AWS itself
    state_table: str
    view_table: str  # the customer view (``aftersync lookup rebuild`` writes it)
    idempotency_table: str
    archive_bucket: str
    queues: Mapping[str, str]  # purpose -> URL, including "<purpose>-dlq" and "quarantine"
    api_url: str | None
    keys: tuple[str, str] | None = None  # (access key id, secret) of the sandbox's operator

    def session(self) -> boto3.session.Session:
        if self.keys is None:  # a deployed stack: the operator's own profile and credentials
            return boto3.session.Session(region_name=self.region)
        access_key, secret_key = self.keys
        return boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=self.region
        )

    def dynamodb(self) -> DynamoDBClient:
        return self.session().client("dynamodb", endpoint_url=self.endpoint_url)

    def s3(self) -> S3Client:
        return self.session().client("s3", endpoint_url=self.endpoint_url)

    def sqs(self) -> SQSClient:
        return self.session().client("sqs", endpoint_url=self.endpoint_url)


# ---- the sandbox ------------------------------------------------------------------------------
def sandbox_state_file() -> Path:
    """Where a running sandbox announces itself: ``$AFTERSYNC_STATE_DIR/sandbox.json``, else the
    checkout's ``.aftersync/sandbox.json`` (test runs set the variable so they never meet)."""
    return Path(os.environ.get("AFTERSYNC_STATE_DIR") or ROOT / ".aftersync") / "sandbox.json"


def from_sandbox(state_file: Path | None = None) -> Resources:
    """What the running sandbox announced; ``ResourcesUnavailable`` if there is none, or if it died
    (kill -9, a closed laptop) and left its file behind."""
    path = state_file or sandbox_state_file()
    if not path.exists():
        raise ResourcesUnavailable(
            "aftersync: no sandbox is running (start `aftersync local`, or pass --aws for a deployed stack)"
        )
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        alive = _answers(info["aws_endpoint_url"]) and _process_exists(info.get("pid"))
        resources = _sandbox_resources(info) if alive else None
    except (ValueError, KeyError, TypeError, AttributeError):
        resources = None
    if resources is None:
        raise ResourcesUnavailable(
            f"aftersync: the sandbox recorded in {path} is not running any more (it stopped without "
            "cleaning up); start one with `aftersync local`"
        )
    return resources


def _sandbox_resources(info: dict[str, Any]) -> Resources:
    operator = info.get("operator")
    keys = (operator["aws_access_key_id"], operator["aws_secret_access_key"]) if operator else OPEN_SANDBOX_KEYS
    return Resources(
        where="sandbox",
        environment=str(info.get("environment", "dev")),
        region=str(info["region"]),
        endpoint_url=str(info["aws_endpoint_url"]),
        state_table=str(info["state_table"]),
        # (a sandbox names its view table by the config's rule, as the stack does)
        view_table=str(info.get("view_table") or resource_name(str(info.get("environment", "dev")), "view")),
        idempotency_table=str(info["idempotency_table"]),
        archive_bucket=str(info["archive_bucket"]),
        queues=MappingProxyType({str(k): str(v) for k, v in info["queues"].items()}),
        api_url=info.get("api"),
        keys=(str(keys[0]), str(keys[1])),
    )


def _process_exists(pid: object) -> bool:
    if not isinstance(pid, int):
        return True  # a file from before pids were recorded: the endpoint decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process has this pid
    return True


def _answers(endpoint: str) -> bool:
    url = urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=2).close()
    except OSError:
        return False
    return True


# ---- a deployed stack -------------------------------------------------------------------------
def stack_name(environment: str) -> str:
    """The stack of an environment, as ``EnvironmentConfig.stack_name`` names it (no config needed)."""
    return f"Aftersync-{environment}"


def from_stack(
    environment: str, region: str | None = None, cloudformation: CloudFormationClient | None = None
) -> Resources:
    """The resources of the deployed stack of ``environment``, from its CloudFormation outputs."""
    name = stack_name(environment)
    client = cloudformation or boto3.session.Session(region_name=region).client("cloudformation")
    try:
        stacks = client.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise ResourcesUnavailable(
            f"aftersync: cannot read the stack {name}: {error.get('Code', 'error')}: {error.get('Message', '')}"
        ) from None
    except BotoCoreError as exc:  # no credentials, no region, no network
        raise ResourcesUnavailable(f"aftersync: cannot read the stack {name}: {exc}") from None
    if not stacks:
        raise ResourcesUnavailable(f"aftersync: no stack {name}")
    return stack_resources(environment, stacks[0].get("Outputs", []), region or client.meta.region_name)


def stack_resources(environment: str, outputs: list[Any], region: str | None) -> Resources:
    """``Resources`` from a stack's outputs (``[{"OutputKey", "OutputValue", "Description"}]``)."""
    values = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    missing = sorted(key for key in STACK_OUTPUTS.values() if key not in values)
    if missing:
        raise ResourcesUnavailable(
            f"aftersync: the stack {stack_name(environment)} has no output {', '.join(missing)} "
            "(deploy the current version)"
        )
    queues = {
        o["Description"].removeprefix(QUEUE_OUTPUT_PREFIX): o["OutputValue"]
        for o in outputs
        if o.get("Description", "").startswith(QUEUE_OUTPUT_PREFIX)
    }
    return Resources(
        where="stack",
        environment=environment,
        region=region,
        endpoint_url=None,
        state_table=values[STACK_OUTPUTS["state_table"]],
        view_table=values[STACK_OUTPUTS["view_table"]],
        idempotency_table=values[STACK_OUTPUTS["idempotency_table"]],
        archive_bucket=values[STACK_OUTPUTS["archive_bucket"]],
        queues=MappingProxyType(queues),
        api_url=values[STACK_OUTPUTS["api_url"]],
    )


# ---- the config -------------------------------------------------------------------------------
def config_path(explicit: Path | None = None) -> Path | None:
    """The ``cdk.json`` to read: the one given, else ``./cdk.json``, else the checkout's (None: none)."""
    if explicit is not None:
        return explicit
    for candidate in (Path.cwd() / "cdk.json", ROOT / "cdk.json"):
        if candidate.is_file():
            return candidate
    return None


def environment_config(environment: str, explicit: Path | None = None) -> EnvironmentConfig:
    path = config_path(explicit)
    if path is None:
        raise ResourcesUnavailable(
            "aftersync: this command needs the environments' config: pass --config PATH/TO/cdk.json"
        )
    try:
        return load_environment(environment, path)
    except OSError as exc:
        raise ResourcesUnavailable(f"aftersync: cannot read {path}: {exc.strerror or exc}") from None
    except (ConfigurationError, ValueError) as exc:
        raise ResourcesUnavailable(f"aftersync: {path}: {exc}") from None


def resolve(aws: bool, environment: str, config: Path | None = None) -> Resources:
    """The sandbox's resources, or with ``aws`` the deployed stack's of ``environment`` (in the
    config's region when a config is found, else the session's default region)."""
    if not aws:
        return from_sandbox()
    path = config_path(config)
    region = environment_config(environment, path).region if path is not None else None
    return from_stack(environment, region)
