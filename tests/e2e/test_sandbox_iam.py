"""The sandbox runs every function with exactly the IAM policy its stack role has, and the AWS
stand-in enforces it: a call the policy does not allow fails as it would on AWS."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra.config import load_environment
from infra.sandbox.iam import SandboxArns, function_policies, synthesized_template
from infra.sandbox.samples import signed
from tests.e2e.conftest import RunningSandbox, quiet_shared_sandbox, start_local, stop_local


@pytest.fixture(scope="module")
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The package's shared sandbox: these tests read its roles, and the projector's test waits for the view
    items of an order no other module posts (the missing grant is tested on a sandbox of its own)."""
    return quiet_shared_sandbox(shared_sandbox)


ACCOUNT = "123456789012"
ORDER = "shopify:820982911946154508"


def _role_documents(sandbox: RunningSandbox, role: str) -> dict[str, Any]:
    iam = sandbox.client("iam")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return {name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"] for name in names}


def _as_role(sandbox: RunningSandbox, role: str, service: str) -> Any:
    """A client signing as ``role`` (the operator stands in for the Lambda service that assumes it)."""
    arn = f"arn:aws:iam::{ACCOUNT}:role/{role}"
    credentials = sandbox.client("sts").assume_role(RoleArn=arn, RoleSessionName="e2e")["Credentials"]
    return boto3.client(
        service,
        endpoint_url=sandbox.info["aws_endpoint_url"],
        region_name=sandbox.info["region"],
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def test_every_function_role_carries_exactly_its_synthesized_policy_statements(sandbox: RunningSandbox) -> None:
    cfg = load_environment("dev")
    state = sandbox.client("dynamodb").describe_table(TableName=sandbox.info["state_table"])["Table"]
    arns = SandboxArns(
        synthesized_template("dev"),
        cfg.region,
        ACCOUNT,
        stream_arns={state["TableName"]: state["LatestStreamArn"]},
        names={"/Storage/Archive/Resource": sandbox.info["archive_bucket"]},
    )
    expected = function_policies(arns)
    assert set(expected) == {cfg.resource(f) for f in ("ingest", "normalise", "sync", "publish", "deliver")} | {
        cfg.resource(f)
        for f in ("audit-archive", "notify", "automate", "amazon-intake", "reconcile", "project", "lookup", "sidebar")
    }
    for role, policies in expected.items():
        assert _role_documents(sandbox, role) == policies.inline, role


def test_a_caller_the_stand_in_does_not_know_is_refused(sandbox: RunningSandbox) -> None:
    stranger = boto3.client(
        "sqs",
        endpoint_url=sandbox.info["aws_endpoint_url"],
        region_name=sandbox.info["region"],
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",
    )
    with pytest.raises(ClientError) as refused:
        stranger.get_queue_attributes(QueueUrl=sandbox.info["queues"]["inbox"], AttributeNames=["All"])
    # (moto answers this JSON-protocol call in XML, so botocore sees the code only in the message)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "<Code>InvalidClientTokenId</Code>" in refused.value.response["Error"]["Message"]


def test_the_automate_role_may_text_a_phone_but_not_post_to_an_alarm_topic(sandbox: RunningSandbox) -> None:
    sns = _as_role(sandbox, load_environment("dev").resource("automate"), "sns")
    assert sns.publish(PhoneNumber="+8613800000000", Message="您的退款已处理")["MessageId"]
    topic = f"arn:aws:sns:{sandbox.info['region']}:{ACCOUNT}:{load_environment('dev').resource('alarms-critical')}"
    with pytest.raises(ClientError) as denied:
        sns.publish(TopicArn=topic, Message="fake alarm")
    assert denied.value.response["Error"]["Code"] in ("AccessDenied", "AuthorizationError")


def test_a_grant_missing_from_a_role_fails_the_handler_call_with_access_denied(
    shopify_secret: str, tmp_path: Path
) -> None:
    # Given a sandbox (of its own) whose deliver role lacks dynamodb:UpdateItem (its rate-limit counters need it)
    process, info = start_local(state_dir=tmp_path)
    try:
        sandbox = RunningSandbox(info)
        role = load_environment("dev").resource("deliver")
        iam = sandbox.client("iam")
        for name, document in _role_documents(sandbox, role).items():
            kept = []
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                actions = [a for a in actions if a != "dynamodb:UpdateItem"]
                if actions:
                    kept.append({**statement, "Action": actions})
            iam.put_role_policy(
                RoleName=role, PolicyName=name, PolicyDocument=json.dumps({**document, "Statement": kept})
            )

        # When an order arrives and is delivered to the rate-limited ERP target
        assert sandbox.post(signed("shopify_orders_create", shopify_secret))[0] == 200

        # Then the stand-in denies deliver's UpdateItem, and the ERP gets nothing
        log = Path(info["handler_logs"])
        denial = (
            f"IAM denied: arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{role} dynamodb:UpdateItem on "
            f"arn:aws:dynamodb:{info['region']}:{ACCOUNT}:table/{info['state_table']}"
        )
        deadline = time.monotonic() + 60
        while denial not in log.read_text(encoding="utf-8").splitlines() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert denial in log.read_text(encoding="utf-8").splitlines()
        assert [d for d in sandbox.deliveries("erp") if d["body"].get("entity_id") == ORDER] == []
    finally:
        stop_local(process)


def test_the_projector_writes_the_customer_view_with_its_own_role(sandbox: RunningSandbox, shopify_secret: str) -> None:
    # An order reaches the state; the projector (its stack role: entity states and profiles read, the
    # view table written, nothing of the state table) puts its summary, its selectors and its timeline
    # into its customer's view, in the view table.
    assert sandbox.post(signed("shopify_orders_create", shopify_secret))[0] == 200
    dynamodb = sandbox.client("dynamodb")
    wanted = {"E#order", "E#customer", "T#", "SEL"}

    def kind(sk: str) -> str:
        return "T#" if sk.startswith("T#") else "#".join(sk.split("#")[:2])

    kinds: set[str] = set()
    deadline = time.monotonic() + 60
    while not wanted <= kinds and time.monotonic() < deadline:
        time.sleep(0.5)
        items = dynamodb.scan(TableName=load_environment("dev").resource("view"))["Items"]
        kinds = {kind(i["sk"]["S"]) for i in items if "#view#" in i["pk"]["S"] or "#sel#" in i["pk"]["S"]}
    assert wanted <= kinds
    state = dynamodb.scan(TableName=sandbox.info["state_table"])["Items"]
    assert not [i for i in state if any(p in i["pk"]["S"] for p in ("#view#", "#viewown#", "#sel#"))]
    # (and the shared sandbox's teardown fails the run if any of its calls was denied)
