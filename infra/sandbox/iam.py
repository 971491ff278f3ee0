"""IAM in the sandbox: every function runs with exactly the policy the CDK stack gives its role.

- The policies come from the synthesized template (``app.build_app`` for the environment), cached in
  ``.aftersync/synth/`` under a hash of everything the template is built from, so a change to a
  construct is seen on the next start and an unchanged tree starts without Node.
- Their intrinsics (``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``) resolve to the sandbox's ARNs.
- In the AWS stand-in each function gets a role carrying those statements and the Lambda service's
  stand-in assumes it; an invocation's boto3 calls (and the event source mapping's receives and
  deletes, which Lambda makes with the function's role) sign with that role's session credentials.
  Everything else in the process (the sandbox itself, the demo, the operator CLI) is the operator,
  an IAM user allowed everything.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.credentials
import requests

from infra.config import ROOT

SYNTH_CACHE = ROOT / ".aftersync" / "synth"
# What the template is built from: the app, its config, the constructs and the shared code they import.
TEMPLATE_INPUTS = ("app.py", "cdk.json", "pyproject.toml", "infra", "shared")
OPERATOR = "aftersync-sandbox-operator"
ALLOW_EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class SandboxIamError(Exception):
    """The sandbox cannot give its functions their stack's IAM policies (a synth failed, an unknown ref)."""


# -- the template --------------------------------------------------------------------------------
def template_inputs_hash(root: Path = ROOT) -> str:
    digest = hashlib.sha256(b"synth v2\0")  # bumped when the way of synthesizing changes
    for name in TEMPLATE_INPUTS:
        path = root / name
        files = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in files:
            relative = file.relative_to(root).as_posix()
            if not file.is_file() or file.suffix not in (".py", ".json", ".toml"):
                continue
            if relative.startswith("infra/sandbox/") or "__pycache__" in relative:
                continue  # the sandbox does not shape the stack
            digest.update(relative.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def synthesized_template(environment: str, cache: Path = SYNTH_CACHE) -> dict[str, Any]:
    """The stack's template for ``environment``: from the cache, or synthesized once (about 10 s)."""
    cached = cache / f"Aftersync-{environment}-{template_inputs_hash()}.template.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synth-", dir=cache) as out:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
        env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
        # as the CDK CLI does: each resource's construct path, how the sandbox finds the unnamed bucket
        env["CDK_CONTEXT_JSON"] = json.dumps({"aws:cdk:enable-path-metadata": True})
        result = subprocess.run(  # noqa: S603 - our own interpreter on our own app
            [
                sys.executable,
                "-c",
                "import sys; from app import build_app; build_app(sys.argv[1], outdir=sys.argv[2]).synth()",
                environment,
                out,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        produced = Path(out) / f"Aftersync-{environment}.template.json"
        if result.returncode != 0 or not produced.exists():
            last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise SandboxIamError(f"cannot synthesize Aftersync-{environment} for its IAM policies: {last}")
        # Atomic: two sandboxes starting at once each write a whole file, never half of one.
        staged = cache / f".{cached.name}.{os.getpid()}"
        staged.write_bytes(produced.read_bytes())
        os.replace(staged, cached)
    for stale in cache.glob(f"Aftersync-{environment}-*.template.json"):
        if stale != cached:
            stale.unlink(missing_ok=True)
    return json.loads(cached.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# -- intrinsics ----------------------------------------------------------------------------------
@dataclass
class SandboxArns:
    """Resolves a template's intrinsics to the sandbox's resources (same names as the stack's)."""

    template: dict[str, Any]
    region: str
    account: str
    stream_arns: dict[str, str] = field(default_factory=dict)  # table name -> its stream's ARN
    names: dict[str, str] = field(default_factory=dict)  # construct path suffix -> physical name

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical_id, attribute)
            if key == "Fn::Join":
                separator, parts = argument
                return separator.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise SandboxIamError(f"the sandbox cannot resolve {key} in a policy")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.attribute(logical_id, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.template["Resources"][logical_id]  # type: ignore[no-any-return]
        except KeyError:
            raise SandboxIamError(f"a policy names {logical_id}, which the template does not have") from None

    def name(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        properties = resource.get("Properties", {})
        key = {
            "AWS::SQS::Queue": "QueueName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::Events::EventBus": "Name",
            "AWS::SNS::Topic": "TopicName",
            "AWS::IAM::Role": "RoleName",
        }.get(resource["Type"])
        if key and key in properties:
            return str(self.resolve(properties[key]))
        path = resource.get("Metadata", {}).get("aws:cdk:path", "")
        for suffix, name in self.names.items():
            if path.endswith(suffix):
                return name
        if resource["Type"] in ("AWS::KMS::Key", "AWS::IAM::Role"):
            return logical_id  # the sandbox has no such resource; nothing calls it by name
        raise SandboxIamError(f"{logical_id} ({resource['Type']}) has no physical name the sandbox knows")

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Partition": "aws",
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.template.get("Description", "sandbox"),
        }
        if name in pseudo:
            return pseudo[name]
        kind = self._resource(name)["Type"]
        if kind == "AWS::SNS::Topic":
            return self.attribute(name, "TopicArn")
        return self.name(name)

    def attribute(self, logical_id: str, attribute: str) -> str:
        kind = self._resource(logical_id)["Type"]
        r, a = self.region, self.account
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            table = self.name(logical_id)
            if table not in self.stream_arns:
                raise SandboxIamError(f"the sandbox's table {table} has no stream")
            return self.stream_arns[table]
        arns: dict[str, Callable[[str], str]] = {
            "AWS::SQS::Queue": lambda n: f"arn:aws:sqs:{r}:{a}:{n}",
            "AWS::DynamoDB::Table": lambda n: f"arn:aws:dynamodb:{r}:{a}:table/{n}",
            "AWS::S3::Bucket": lambda n: f"arn:aws:s3:::{n}",
            "AWS::Events::EventBus": lambda n: f"arn:aws:events:{r}:{a}:event-bus/{n}",
            "AWS::SNS::Topic": lambda n: f"arn:aws:sns:{r}:{a}:{n}",
            "AWS::KMS::Key": lambda n: f"arn:aws:kms:{r}:{a}:key/{n}",
            "AWS::IAM::Role": lambda n: f"arn:aws:iam::{a}:role/{n}",
        }
        if kind in arns and attribute in ("Arn", "TopicArn"):
            return arns[kind](self.name(logical_id))
        raise SandboxIamError(f"the sandbox cannot resolve {logical_id}.{attribute} ({kind})")


# -- the functions' policies ---------------------------------------------------------------------
@dataclass(frozen=True)
class RolePolicies:
    function_name: str  # physical, e.g. aftersync-dev-deliver
    inline: dict[str, dict[str, Any]]  # policy name -> resolved document
    managed: tuple[str, ...]  # managed policy ARNs on the role (AWS's: not in the stand-in)


def function_policies(arns: SandboxArns) -> dict[str, RolePolicies]:
    """Each function's role policies from the template, by physical function name, resolved."""
    resources = arns.template["Resources"]
    result = {}
    for function in (r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"):
        properties = function["Properties"]
        role_id = properties["Role"]["Fn::GetAtt"][0]
        role = resources[role_id]["Properties"]
        inline = {p["PolicyName"]: arns.resolve(p["PolicyDocument"]) for p in role.get("Policies", [])}
        for logical_id, resource in resources.items():
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"]["Roles"]:
                inline[logical_id] = arns.resolve(resource["Properties"]["PolicyDocument"])
        name = str(arns.resolve(properties["FunctionName"]))
        result[name] = RolePolicies(name, inline, tuple(arns.resolve(role.get("ManagedPolicyArns", []))))
    return result


# -- principals in the stand-in --------------------------------------------------------------------
Frozen = botocore.credentials.ReadOnlyCredentials


def create_operator(endpoint: str, region: str) -> tuple[Frozen, str]:
    """The operator (an IAM user allowed everything) and its ARN; then authentication is switched on:
    from here on every request to the stand-in must be signed by a known principal and allowed."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",  # noqa: S106 - auth is off
    )
    user = iam.create_user(UserName=OPERATOR)["User"]
    iam.put_user_policy(UserName=OPERATOR, PolicyName="everything", PolicyDocument=json.dumps(ALLOW_EVERYTHING))
    key = iam.create_access_key(UserName=OPERATOR)["AccessKey"]
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    return Frozen(key["AccessKeyId"], key["SecretAccessKey"], None), str(user["Arn"])


def disable_authentication(endpoint: str) -> None:
    with contextlib.suppress(requests.RequestException):
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=5)


def create_function_roles(policies: dict[str, RolePolicies], lambda_service: str) -> dict[str, Frozen]:
    """A role per function carrying its policies, assumed by the Lambda service's stand-in (the
    operator): the credentials each invocation signs with, by physical function name."""
    iam, sts = boto3.client("iam"), boto3.client("sts")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": lambda_service}, "Action": "sts:AssumeRole"}],
    }
    result = {}
    for name, role in policies.items():
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        for policy_name, document in role.inline.items():
            iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
        session = sts.assume_role(RoleArn=arn, RoleSessionName=name)
        c = session["Credentials"]
        result[name] = Frozen(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    return result


# -- which principal signs -----------------------------------------------------------------------
# A context variable, not a thread-local: a handler that fans work out to a thread pool (copying its
# context into each task, as sync does) keeps signing as its function there, as it would on Lambda.
_ACTING: contextvars.ContextVar[Frozen | None] = contextvars.ContextVar("acting_as", default=None)


@contextlib.contextmanager
def acting_as(credentials: Frozen | None) -> Iterator[None]:
    """Within this block, on this thread, every boto3 call signs with ``credentials`` (None: as before)."""
    token = _ACTING.set(credentials if credentials is not None else _ACTING.get())
    try:
        yield
    finally:
        _ACTING.reset(token)


class _ActingCredentials(botocore.credentials.Credentials):
    """The environment's credentials (the operator's), except on a thread acting as a function."""

    def get_frozen_credentials(self) -> Frozen:
        acting = _ACTING.get()
        return acting if acting is not None else super().get_frozen_credentials()


_env_load = botocore.credentials.EnvProvider.load


def _load_acting(self: botocore.credentials.EnvProvider) -> Any:
    loaded = _env_load(self)
    if type(loaded) is botocore.credentials.Credentials:
        return _ActingCredentials(loaded.access_key, loaded.secret_key, loaded.token, loaded.method)
    return loaded


def install_acting_credentials() -> None:
    """Every boto3 client that takes its credentials from the environment (the handlers', Powertools'
    and the sandbox's own) signs as whoever the calling thread acts as."""
    botocore.credentials.EnvProvider.load = _load_acting  # type: ignore[method-assign]
