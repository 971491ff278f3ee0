"""Create the stack's resources in the AWS stand-in, from the same config and names as the CDK stack."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from infra.config import EnvironmentConfig
from infra.sandbox.wecom_app import FakeCorp
from infra.wiring import DOMAINS, ResourceRefs, change_routes, queues, routes
from shared.constants import (
    ALARM_TOPIC_SUFFIXES,
    pull_secret_name,
    reader_secret_name,
    robot_secret_name,
    sidebar_key_secret_name,
    source_secret_name,
    target_secret_name,
    tenant_salt_secret_name,
    wecom_app_secret_name,
)
from shared.delivery.targets import TargetConfig
from shared.pulls.reconcile import ReconcileJob

ACCOUNT = "123456789012"


@dataclass
class SandboxResources:
    refs: ResourceRefs
    queue_urls: dict[str, str] = field(default_factory=dict)  # purpose -> url (incl. "<purpose>-dlq")
    queue_arns: dict[str, str] = field(default_factory=dict)
    stream_arn: str = ""
    alarm_topics: dict[str, str] = field(default_factory=dict)  # severity -> topic ARN


def local_targets(cfg: EnvironmentConfig, fake_target: str, fake_robot: str) -> EnvironmentConfig:
    """The environment with its targets pointed at the local fakes: REST targets at the recording
    fake target (``<url>/<target name>``), WeCom group targets at the fake robot; SMS and e-mail go
    through the AWS stand-in as they are."""

    def local(target: TargetConfig) -> TargetConfig:
        url = {"http": f"{fake_target}/{target.name}", "wecom": fake_robot}.get(target.kind)
        return target if url is None else type(target).model_validate({**target.model_dump(), "url": url})

    return cfg.model_copy(update={"targets": tuple(local(t) for t in cfg.targets)})


def local_shop(cfg: EnvironmentConfig, fakes: Mapping[str, str]) -> EnvironmentConfig:
    """The environment with its scheduled pulls pointed at the local fakes of their platforms' APIs
    (``fakes``: source -> the fake's URL); a pull is dropped where no fake runs for it: no pull may leave
    the machine."""

    def local(job: ReconcileJob) -> ReconcileJob:
        url = fakes[job.source]
        auth = {"auth_url": f"{url}/auth/o2/token"} if job.source == "amazon" else {}  # its fake is LWA's too
        return type(job).model_validate({**job.model_dump(), "url": url, **auth})

    jobs = tuple(local(j) for j in cfg.reconcile if fakes.get(j.source))
    return cfg.model_copy(update={"reconcile": jobs})


def robot_keys(secrets: dict[str, Any]) -> set[str]:
    """The keys the fake robot accepts: the alarm robots' and the WeCom group targets'."""
    keys = {robot["key"] for robot in secrets.get("wecom", {}).values()}
    return keys | {c["key"] for c in secrets.get("targets", {}).values() if isinstance(c.get("key"), str)}


def create_pk_sk_table(dynamodb: Any, name: str, *, stream: bool = False) -> dict[str, Any]:
    """A table with the state and view tables' key schema (string pk and sk, on demand), with a stream of
    new and old images if asked (the state table's); CreateTable's answer."""
    spec: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    answer: dict[str, Any] = dynamodb.create_table(**spec)
    return answer


def create_resources(cfg: EnvironmentConfig, secrets: dict[str, Any], visibility_timeout: int) -> SandboxResources:
    dynamodb, sqs, s3 = boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("s3")
    events, sm = boto3.client("events"), boto3.client("secretsmanager")

    state = create_pk_sk_table(dynamodb, cfg.resource("state"), stream=True)
    # the customer view (derived: no stream; TTL on expires_at for tombstones)
    create_pk_sk_table(dynamodb, cfg.resource("view"))
    dynamodb.update_time_to_live(
        TableName=cfg.resource("view"), TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    dynamodb.create_table(
        TableName=cfg.resource("idempotency"),
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=cfg.resource("idempotency"),
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    bucket = cfg.archive_bucket(ACCOUNT)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region})

    result = SandboxResources(
        refs=ResourceRefs(
            idempotency_table=cfg.resource("idempotency"),
            state_table=cfg.resource("state"),
            archive_bucket=bucket,
            inbox_queue_url="",
            quarantine_queue_url="",
            event_bus=cfg.resource("bus"),
            view_table=cfg.resource("view"),
            domain_queue_urls={},
            change_queue_urls={},
        ),
        stream_arn=state["TableDescription"]["LatestStreamArn"],
    )
    attempts = {f"deliver-{t.name}": t.retry.max_attempts for t in cfg.targets}
    for spec in queues(cfg):
        dlq_url = sqs.create_queue(QueueName=cfg.resource(f"{spec.purpose}-dlq"))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        if spec.consumer:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": attempts.get(spec.purpose, cfg.max_receive_count)}
            )
        url = sqs.create_queue(QueueName=cfg.resource(spec.purpose), Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if spec.external_writer:  # the same access policy as the stack gives the SP-API queue
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AllowExternalWriter",
                        "Effect": "Allow",
                        "Principal": {"AWS": spec.external_writer},
                        "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes"],
                        "Resource": arn,
                    }
                ],
            }
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        result.queue_urls[spec.purpose], result.queue_arns[spec.purpose] = url, arn
        result.queue_urls[f"{spec.purpose}-dlq"], result.queue_arns[f"{spec.purpose}-dlq"] = dlq_url, dlq_arn
    result.refs = ResourceRefs(
        **{
            **result.refs.__dict__,
            "inbox_queue_url": result.queue_urls["inbox"],
            "quarantine_queue_url": result.queue_urls["quarantine"],
            "alarms_queue_url": result.queue_urls["alarms"],
            "domain_queue_urls": {domain: result.queue_urls[domain] for domain in DOMAINS},
            "change_queue_urls": {r.queue_purpose: result.queue_urls[r.queue_purpose] for r in change_routes(cfg)},
        }
    )

    events.create_event_bus(Name=result.refs.event_bus)
    for route in routes(cfg):
        rule = cfg.resource(route.purpose)
        events.put_rule(Name=rule, EventBusName=result.refs.event_bus, EventPattern=json.dumps(route.pattern))
        events.put_targets(
            Rule=rule,
            EventBusName=result.refs.event_bus,
            Targets=[{"Id": "queue", "Arn": result.queue_arns[route.queue_purpose]}],
        )

    for source, tenants in secrets.get("sources", {}).items():
        for tenant, values in tenants.items():
            sm.create_secret(
                Name=source_secret_name(cfg.secrets_prefix, source, tenant),
                SecretString=json.dumps({"secrets": values}),
            )
    for tenant, values in secrets.get("tenants", {}).items():
        sm.create_secret(
            Name=tenant_salt_secret_name(cfg.secrets_prefix, tenant),
            SecretString=json.dumps({"salt": values["identity_salt"]}),
        )
    sns = boto3.client("sns")
    for severity, suffix in ALARM_TOPIC_SUFFIXES.items():  # alarm topics -> the alarms queue, as deployed
        topic = sns.create_topic(Name=cfg.resource(suffix))["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=result.queue_arns["alarms"])
        result.alarm_topics[severity] = topic
    for target in cfg.targets:  # an e-mail target's sender is a verified SES identity, as deployed
        if target.kind == "email" and target.sender:
            boto3.client("sesv2").create_email_identity(EmailIdentity=target.sender)
    for robot, value in secrets.get("wecom", {}).items():
        sm.create_secret(Name=robot_secret_name(cfg.secrets_prefix, robot), SecretString=json.dumps(value))
    for source, tenants in secrets.get("pull", {}).items():  # a scheduled pull's API credentials
        for tenant, credentials in tenants.items():
            sm.create_secret(
                Name=pull_secret_name(cfg.secrets_prefix, source, tenant), SecretString=json.dumps(credentials)
            )
    for target, credentials in secrets.get("targets", {}).items():
        sm.create_secret(Name=target_secret_name(cfg.secrets_prefix, target), SecretString=json.dumps(credentials))
    for name, reader in secrets.get("readers", {}).items():  # the lookup API's readers, one key each
        sm.create_secret(
            Name=reader_secret_name(cfg.secrets_prefix, name), SecretString=json.dumps(reader_secret(reader))
        )
    for tenant, credentials in secrets.get("wecom_apps", {}).items():  # the sidebar's WeCom apps
        sm.create_secret(Name=wecom_app_secret_name(cfg.secrets_prefix, tenant), SecretString=json.dumps(credentials))
    if "sidebar" in secrets:  # the sidebar's session and link signing keys
        sm.create_secret(Name=sidebar_key_secret_name(cfg.secrets_prefix), SecretString=json.dumps(secrets["sidebar"]))
    return result


def local_wecom_app(cfg: EnvironmentConfig, fake_wecom: str) -> EnvironmentConfig:
    """The environment with the sidebar's WeCom (server API, OAuth page, JS-SDK) pointed at the local fake."""
    sidebar = cfg.sidebar.model_copy(
        update={"api_base": fake_wecom, "oauth_base": fake_wecom, "jssdk_scripts": (f"{fake_wecom}/jwxwork.js",)}
    )
    return cfg.model_copy(update={"sidebar": sidebar})


def fake_corps(cfg: EnvironmentConfig, secrets: dict[str, Any]) -> list[FakeCorp]:
    """The enterprises the fake WeCom knows: each tenant's app in the config, its secret from the file."""
    apps = secrets.get("wecom_apps", {})
    return [
        FakeCorp(app.corp_id, apps[tenant]["corp_secret"], app.agent_id)
        for tenant, app in cfg.sidebar.tenants.items()
        if tenant in apps
    ]


def reader_secret(reader: dict[str, Any]) -> dict[str, Any]:
    """A reader as the secrets file gives it (``{"tenant", "key", "role"}``) as its secret holds it:
    ``{"tenant", "role", "keys": [key]}`` (a deployed reader's secret may hold several keys)."""
    return {"tenant": reader["tenant"], "role": reader["role"], "keys": [reader["key"]]}
