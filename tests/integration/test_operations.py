"""Operations must-shows on the real handlers: a poison message is dead-lettered with its reason,
raises the DLQ alarm in the WeCom group, and after the fix one redrive processes it exactly once."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from typer.testing import CliRunner

from infra.sandbox.alarms import SandboxAlarms
from infra.sandbox.samples import signed
from ops.cli import app
from ops.dlq import dead_letter_queues, describe, peek, redrive
from ops.resources import ResourcesUnavailable, from_stack, resolve
from shared.adapters.state_store import DynamoStateStore
from shared.constants import source_secret_name, tenant_salt_secret_name
from tests.integration.conftest import Stack

ORDER = "shopify:820982911946154508"


def test_poison_to_dlq_to_alarm_then_fix_and_redrive_processes_it_once(stack: Stack, sandbox_secrets: dict) -> None:  # type: ignore[type-arg]
    sm, sqs = boto3.client("secretsmanager"), boto3.client("sqs")
    prefix = stack.cfg.secrets_prefix
    shop_secret = sandbox_secrets["sources"]["shopify"]["demo"][0]
    # A new tenant whose identity salt was forgotten: its webhooks verify, but every merge fails
    sm.create_secret(
        Name=source_secret_name(prefix, "shopify", "acme"), SecretString=json.dumps({"secrets": [shop_secret]})
    )
    assert stack.post(signed("shopify_orders_create", shop_secret), tenant="acme")["statusCode"] == 200
    stack.run_until_quiet()

    # Dead-lettered after maxReceiveCount, with its reason; nothing half-written
    urls = stack.resources.queue_urls
    dlq = {d.name: d for d in dead_letter_queues(urls)}["orders-dlq"]
    assert dlq.source == "orders"
    [dead] = peek(sqs, dlq)
    assert dead["reason"] == (
        "ConfigurationError: secret 'aftersync/dev/tenants/acme/identity' must be "
        '{"salt": "<at least 32 characters>"}'
    )
    assert (dead["source_queue"], dead["receive_count"]) == ("aftersync-dev-orders", "5")
    store = DynamoStateStore(stack.resources.refs.state_table)
    assert store.load("acme", "order", ORDER)[0] is None

    # The DLQ alarm fires and reaches the WeCom group through SNS, the alarms queue and notify
    alarms = SandboxAlarms(
        stack.cfg, stack.functions.emf, lambda: {p: stack.depth(p) for p in urls}, stack.resources.alarm_topics
    )
    alarms.evaluate(time.time())
    stack.run_until_quiet()
    # One digest for both changes of the batch (the failed merges also sank the success rate), and the
    # on-call mention for the critical ones
    digest, mention = stack.robot.service.contents()
    assert digest.startswith("### Aftersync dev: 2 alarm change(s), 2 firing")
    assert '**<font color="warning">ALARM</font>** aftersync-dev-orders-dlq-not-empty\n' in digest
    assert "value **1** vs threshold > 0" in digest
    assert '**<font color="warning">ALARM</font>** aftersync-dev-sync-success-rate\n' in digest
    assert mention == (
        "Aftersync dev: critical alarm firing: aftersync-dev-sync-success-rate, aftersync-dev-orders-dlq-not-empty"
    )

    # Fixed: the salt is created. One redrive, and the order is merged exactly once
    sm.create_secret(Name=tenant_salt_secret_name(prefix, "acme"), SecretString=json.dumps({"salt": "s" * 40}))
    result = redrive(sqs, dlq, urls["orders"], rate_per_second=20)
    assert (result.method, result.moved) == ("copy", 1)  # moto has no StartMessageMoveTask: the fallback ran
    stack.run_until_quiet()
    state, _ = store.load("acme", "order", ORDER)
    assert state is not None and state.version == 1
    assert [r.version for r in store.audit_trail("acme", "order", ORDER)] == [1]
    assert stack.depth("orders-dlq") == 0 and stack.depth("orders") == 0

    # ...and the group hears that the DLQ is empty again
    alarms.evaluate(time.time())
    stack.run_until_quiet()
    recovered = [c for c in stack.robot.service.contents() if "orders-dlq-not-empty" in c and "OK (recovered)" in c]
    assert len(recovered) == 1


def test_an_alarm_for_a_robot_with_an_invalid_key_is_dead_lettered_with_the_reason(stack: Stack) -> None:
    sm = boto3.client("secretsmanager")
    sm.put_secret_value(
        SecretId=f"{stack.cfg.secrets_prefix}/wecom/dev", SecretString=json.dumps({"key": "revoked-robot-key"})
    )
    alarms = SandboxAlarms(stack.cfg, stack.functions.emf, lambda: {"inbox-dlq": 1}, stack.resources.alarm_topics)
    alarms.evaluate(time.time())
    stack.run_until_quiet()
    assert stack.robot.service.messages == [] and stack.robot.service.refused == [("revoked-robot-key", 93000)]
    [dead] = stack.messages("alarms-dlq")
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason == "PermanentFailure: robot dev: errcode 93000 (invalid key)"
    assert dead["MessageAttributes"]["receive_count"]["StringValue"] == "1"  # not retried


def test_the_quarantine_is_listed_with_the_dead_letter_queues_and_shown_with_its_reasons(
    stack: Stack, shopify_secret: str
) -> None:
    # Given three verified deliveries that can never be processed: they wait in the quarantine
    for n in range(3):
        hook = signed(
            "shopify_orders_create",
            shopify_secret,
            **{"X-Shopify-Topic": "products/update", "X-Shopify-Event-Id": f"product-{n}"},
        )
        assert stack.post(hook)["statusCode"] == 200
    stack.run_until_quiet()
    assert stack.depth("quarantine") == 3

    # When an operator lists the queues that hold messages for a person
    sqs = boto3.client("sqs")
    listed = {d.name: d for d in dead_letter_queues(stack.resources.queue_urls)}

    # Then the quarantine is among them, with its depth and reasons, and it does not redrive anywhere
    quarantine = listed["quarantine"]
    assert quarantine.source is None
    assert describe(sqs, quarantine)["messages"] == 3
    assert [m["reason"] for m in peek(sqs, quarantine)] == ["unsupported topic 'products/update'"] * 3
    with pytest.raises(ValueError, match=r"quarantine cannot be redriven: .*aftersync replay"):
        redrive(sqs, quarantine, stack.resources.queue_urls["inbox"])


def _deploy_outputs(stack: Stack) -> None:
    """A CloudFormation stack named as the deployed one, whose outputs name the moto resources as
    infra/stack.py's outputs name the real ones."""
    refs = stack.resources.refs
    outputs: dict[str, dict[str, str]] = {
        "WebhookUrl": {"Value": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/"},
        "StateTable": {"Value": refs.state_table},
        "ArchiveBucket": {"Value": refs.archive_bucket},
        "IdempotencyTable": {"Value": refs.idempotency_table},
        "ViewTable": {"Value": refs.view_table},
    }
    for purpose, url in stack.resources.queue_urls.items():
        outputs[f"Queue{purpose.title().replace('-', '')}"] = {"Value": url, "Description": f"queue:{purpose}"}
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "cfn-placeholder"}}},
        "Outputs": outputs,
    }
    boto3.client("cloudformation").create_stack(StackName=stack.cfg.stack_name, TemplateBody=json.dumps(template))


def test_aws_mode_resolves_the_stack_from_its_outputs_and_the_commands_act_on_it(
    stack: Stack, shopify_secret: str
) -> None:
    # Given a deployed stack (its outputs in CloudFormation) holding an order and a quarantined delivery
    _deploy_outputs(stack)
    assert stack.post(signed("shopify_orders_create", shopify_secret))["statusCode"] == 200
    unsupported = signed(
        "shopify_orders_create",
        shopify_secret,
        **{"X-Shopify-Topic": "products/update", "X-Shopify-Event-Id": "product-1"},
    )
    assert stack.post(unsupported)["statusCode"] == 200
    stack.run_until_quiet()

    # When the resolver reads the stack of --env (in the config's region)
    resources = resolve(aws=True, environment="dev")

    # Then it names the stack's resources, and the commands act on them
    assert (resources.where, resources.region, resources.endpoint_url) == ("stack", "eu-west-1", None)
    assert resources.state_table == stack.resources.refs.state_table
    assert dict(resources.queues) == stack.resources.queue_urls
    assert resources.api_url == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/"
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--aws", "--env", "dev", "--json"])
    assert listed.exit_code == 0, listed.output
    depths = {row["name"]: row["messages"] for row in json.loads(listed.output)}
    assert depths["quarantine"] == 1 and depths["orders-dlq"] == 0
    shown = runner.invoke(app, ["entity", "show", "order", ORDER, "--tenant", "demo", "--aws", "--json"])
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.output)
    assert (document["state"]["version"], document["audit_problems"]) == (1, [])
    verified = runner.invoke(app, ["audit", "verify", "--aws", "--json"])
    assert (verified.exit_code, json.loads(verified.output)["broken"]) == (0, [])


def test_aws_mode_without_the_stack_says_so_in_one_line(stack: Stack) -> None:
    with pytest.raises(ResourcesUnavailable) as refused:
        from_stack("staging", "eu-west-1")
    assert str(refused.value) == (
        "aftersync: cannot read the stack Aftersync-staging: ValidationError: Stack with id Aftersync-staging "
        "does not exist"
    )
