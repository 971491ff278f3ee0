"""Properties of the synthesized templates that matter, per environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from moto.iam.access_control import IAMPolicy, PermissionResult

from app import build_app
from infra.config import load_environment
from infra.sandbox.iam import SandboxArns, function_policies
from infra.wiring import DOMAINS, FUNCTIONS, change_routes
from shared.constants import Env
from shared.settings import (
    AmazonIntakeSettings,
    AuditArchiveSettings,
    AutomateSettings,
    DeliverSettings,
    IngestSettings,
    NormaliseSettings,
    NotifySettings,
    ProjectSettings,
    PublishSettings,
    ReconcileSettings,
    SyncSettings,
)
from shared.sources.amazon import AMAZON_SP_API_PRINCIPAL
from tests.infra.conftest import ROOT, resources

ENVS = ("dev", "staging", "prod")


def by_name(template: dict[str, Any], kind: str, prop: str) -> dict[str, dict[str, Any]]:
    return {v["Properties"][prop]: v for v in resources(template, kind).values()}


def function_for(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]


def queue_logical_id(template: dict[str, Any], name: str) -> str:
    return next(k for k, v in resources(template, "AWS::SQS::Queue").items() if v["Properties"]["QueueName"] == name)


@pytest.mark.parametrize("env", ENVS)
def test_every_consumer_queue_has_a_dlq_and_a_visibility_of_six_consumer_timeouts(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    cfg = load_environment(env)
    mappings = [
        m
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "Fn::GetAtt" in m["Properties"]["EventSourceArn"]
    ]
    sqs_mappings = [
        m
        for m in mappings
        if m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] in resources(template, "AWS::SQS::Queue")
    ]
    consumed = {m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m for m in sqs_mappings}
    amazon = ("amazon",) if cfg.amazon_sellers else ()
    pushed = (f"deliver-{t.name}" for t in cfg.targets if t.push_changes)  # action-only targets have no queue
    reconcile = ("reconcile",) if cfg.reconcile else ()
    consumed_purposes = ("inbox", *DOMAINS, *pushed, "alarms", "automation", *amazon, *reconcile)
    expected = {cfg.resource(p) for p in consumed_purposes}
    names = {template["Resources"][q]["Properties"]["QueueName"] for q in consumed}
    assert names == expected
    for queue_id, mapping in consumed.items():
        queue = template["Resources"][queue_id]["Properties"]
        assert queue["RedrivePolicy"]["maxReceiveCount"] >= 5
        function = function_for(template, mapping["Properties"]["FunctionName"]["Ref"])
        assert queue["VisibilityTimeout"] >= 6 * function["Properties"]["Timeout"]
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # Encrypted: with the environment's key, or SQS-managed where Amazon must write (see the SP-API test)
        assert queue.get("KmsMasterKeyId") or queue["QueueName"] == cfg.resource("amazon")


@pytest.mark.parametrize("env", ENVS)
def test_the_stream_publisher_sees_only_audit_inserts_and_has_a_failure_queue(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    stream_mappings = {
        json.dumps(m["Properties"]["FilterCriteria"]): m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" in m["Properties"]
    }
    [mapping] = [m for key, m in stream_mappings.items() if "INSERT" in key and "PROFILE" not in key]
    [archiver] = [m for key, m in stream_mappings.items() if "REMOVE" in key]
    assert json.loads(archiver["FilterCriteria"]["Filters"][0]["Pattern"]) == {
        "eventName": ["REMOVE"],
        "userIdentity": {"type": ["Service"], "principalId": ["dynamodb.amazonaws.com"]},
    }
    assert "OnFailure" in archiver["DestinationConfig"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert json.loads(mapping["FilterCriteria"]["Filters"][0]["Pattern"]) == {
        "eventName": ["INSERT"],
        "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "AUDIT#"}]}}},
    }
    assert "OnFailure" in mapping["DestinationConfig"]


def test_the_projector_reads_states_and_audit_inserts_and_only_reads_entities_and_profiles(
    templates: dict[str, Any],
) -> None:
    template = templates["prod"]
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    project = next(
        k for k, v in resources(template, "AWS::Lambda::Function").items() if v is functions["aftersync-prod-project"]
    )
    [mapping] = [
        m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": project}
    ]
    assert [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]] == [
        {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"Keys": {"sk": {"S": ["STATE"]}}}},
        {"eventName": ["INSERT"], "dynamodb": {"Keys": {"sk": {"S": [{"prefix": "AUDIT#"}]}}}},
        *(
            {
                "eventName": ["INSERT", "MODIFY"],
                "dynamodb": {"Keys": {"sk": {"S": ["PROFILE"]}}, image: {"alias_of": {"S": [{"exists": True}]}}},
            }
            for image in ("NewImage", "OldImage")
        ),
    ]
    assert mapping["BisectBatchOnFunctionError"] is True and "OnFailure" in mapping["DestinationConfig"]
    assert (mapping["BatchSize"], mapping["ParallelizationFactor"]) == (100, 10)
    role = functions["aftersync-prod-project"]["Properties"]["Role"]["Fn::GetAtt"][0]
    state = table_id(template, "aftersync-prod-state")
    reads = [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "dynamodb:GetItem" in statement["Action"] and state in json.dumps(statement["Resource"])
    ]
    assert [s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] for s in reads] == [
        ["*#customer#*", "*#order#*", "*#after_sales_case#*", "*#shipment#*", "*#ticket#*", "*#idprofile#*"]
    ]
    assert secret_patterns(template, "project", "prod") == ["aftersync/prod/tenants/*"]  # identity salts only
    assert not any(a.startswith(("s3:", "events:")) for a in policy_actions(template, "project", "prod"))


@pytest.mark.parametrize("env", ENVS)
def test_api_is_throttled_access_logged_and_binary_safe(templates: dict[str, Any], env: str) -> None:
    template = templates[env]
    cfg = load_environment(env)
    [api] = resources(template, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["BinaryMediaTypes"] == ["*/*"]
    [stage] = resources(template, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["AccessLogSetting"]["DestinationArn"]
    assert props["TracingEnabled"] is True
    [settings] = props["MethodSettings"]
    assert (settings["ThrottlingRateLimit"], settings["ThrottlingBurstLimit"]) == (
        cfg.api_throttle.rate_limit,
        cfg.api_throttle.burst_limit,
    )
    assert settings["DataTraceEnabled"] is False
    [method] = [
        m for m in resources(template, "AWS::ApiGateway::Method").values() if m["Properties"]["HttpMethod"] == "POST"
    ]
    assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"


def test_only_prod_has_a_waf(templates: dict[str, Any]) -> None:
    assert len(resources(templates["prod"], "AWS::WAFv2::WebACLAssociation")) == 1
    assert resources(templates["dev"], "AWS::WAFv2::WebACLAssociation") == {}


SETTINGS = {
    "ingest": IngestSettings,
    "normalise": NormaliseSettings,
    "sync": SyncSettings,
    "publish": PublishSettings,
    "project": ProjectSettings,
    "audit-archive": AuditArchiveSettings,
    "deliver": DeliverSettings,
    "amazon-intake": AmazonIntakeSettings,
    "notify": NotifySettings,
    "automate": AutomateSettings,
    "reconcile": ReconcileSettings,
}


@pytest.mark.parametrize("env", ENVS)
def test_each_function_gets_exactly_the_variables_its_settings_require(templates: dict[str, Any], env: str) -> None:
    functions = by_name(templates[env], "AWS::Lambda::Function", "FunctionName")
    cfg = load_environment(env)
    for name, model in SETTINGS.items():
        if cfg.resource(name) not in functions:
            optional = {"amazon-intake": bool(cfg.amazon_sellers), "reconcile": bool(cfg.reconcile)}
            assert name in optional and not optional[name]  # deployed only where sellers / pulls are configured
            continue
        variables = set(functions[cfg.resource(name)]["Properties"]["Environment"]["Variables"])
        required = {f.alias for f in model.model_fields.values() if f.is_required()}
        assert required <= variables, f"{name} misses {required - variables}"
        ours = {v for v in variables if not v.startswith(("POWERTOOLS_", "PYDANTIC_"))}  # runtime tuning
        assert ours == required, f"{name} gets variables it does not read: {ours - required}"


def table_id(template: dict[str, Any], name: str) -> str:
    return next(
        k for k, v in resources(template, "AWS::DynamoDB::Table").items() if v["Properties"]["TableName"] == name
    )


def table_statements(template: dict[str, Any], function: str, cfg_env: str, table: str) -> list[dict[str, Any]]:
    """The DynamoDB statements of a function's role that name a table (by its physical name)."""
    cfg = load_environment(cfg_env)
    role = by_name(template, "AWS::Lambda::Function", "FunctionName")[cfg.resource(function)]["Properties"]["Role"]
    logical = table_id(template, table)
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role["Fn::GetAtt"][0]} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if logical in json.dumps(statement["Resource"])
    ]


def _actions(statement: dict[str, Any]) -> set[str]:
    found = statement["Action"]
    return {found} if isinstance(found, str) else set(found)


@pytest.mark.parametrize("env", ENVS)
def test_the_customer_view_is_a_table_of_its_own_written_by_project_alone_and_read_by_the_read_side(
    templates: dict[str, Any], env: str
) -> None:
    template = templates[env]
    cfg = load_environment(env)
    view_name, state_name = cfg.resource("view"), cfg.resource("state")
    props = by_name(template, "AWS::DynamoDB::Table", "TableName")[view_name]["Properties"]
    # on demand, or provisioned where the environment says (prod: see the auto-scaling test)
    assert props.get("BillingMode", "PROVISIONED") == (
        "PROVISIONED" if "view" in cfg.table_capacity else "PAY_PER_REQUEST"
    )
    assert [k["AttributeName"] for k in props["KeySchema"]] == ["pk", "sk"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}  # tombstones
    assert "StreamSpecification" not in props  # nothing consumes its changes
    state = by_name(template, "AWS::DynamoDB::Table", "TableName")[state_name]["Properties"]
    assert props["SSESpecification"] == state["SSESpecification"]  # the environment's key, as the state table
    writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    # project: the view table read and written, unconditionally (nothing else is in it); the state table
    # read only (entities and identity profiles) and its stream
    [project_view] = table_statements(template, "project", env, view_name)
    assert _actions(project_view) == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }
    assert "Condition" not in project_view
    project_state = table_statements(template, "project", env, state_name)
    assert not any(_actions(s) & writes for s in project_state)
    assert set().union(*(_actions(s) for s in project_state)) <= {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    for reader in ("lookup", "sidebar"):
        [view_read] = table_statements(template, reader, env, view_name)
        assert _actions(view_read) == {"dynamodb:BatchGetItem", "dynamodb:Query"}
        on_state = sorted(
            (sorted(_actions(s)), s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
            for s in table_statements(template, reader, env, state_name)
        )
        assert on_state == [
            (["dynamodb:BatchGetItem"], ["*#idkey#*"]),  # the identity index's keys, in the lookup's first call
            (["dynamodb:PutItem"], ["*#reads#*"]),  # the read audit
        ], reader
    deployed = by_name(template, "AWS::Lambda::Function", "FunctionName")
    others = [f for f in FUNCTIONS if f not in ("project", "lookup", "sidebar") and cfg.resource(f) in deployed]
    assert "sync" in others and "deliver" in others
    assert not [f for f in others if table_statements(template, f, env, view_name)]  # nobody else touches it
    for function in ("project", "lookup", "sidebar"):
        fn = by_name(template, "AWS::Lambda::Function", "FunctionName")[cfg.resource(function)]["Properties"]
        assert fn["Environment"]["Variables"][Env.VIEW_TABLE] == {"Ref": table_id(template, view_name)}
    outputs = template["Outputs"]
    assert outputs["ViewTable"]["Value"] == {"Ref": table_id(template, view_name)}  # ops.resources reads it


def policy_actions(template: dict[str, Any], function: str, cfg_env: str) -> set[str]:
    cfg = load_environment(cfg_env)
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    role = functions[cfg.resource(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                found = statement["Action"]
                actions |= {found} if isinstance(found, str) else set(found)
    return actions


def secret_patterns(template: dict[str, Any], function: str, cfg_env: str) -> list[str]:
    cfg = load_environment(cfg_env)
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    role = functions[cfg.resource(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
    patterns = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Action"] == "secretsmanager:GetSecretValue":
                    joined = "".join(p if isinstance(p, str) else "" for p in statement["Resource"]["Fn::Join"][1])
                    patterns.append(joined.split(":secret:")[1])
    return patterns


def test_least_privilege_per_function(templates: dict[str, Any]) -> None:
    template = templates["prod"]
    ingest = policy_actions(template, "ingest", "prod")
    sync = policy_actions(template, "sync", "prod")
    deliver = policy_actions(template, "deliver", "prod")
    assert {"s3:PutObject", "sqs:SendMessage", "secretsmanager:GetSecretValue", "dynamodb:PutItem"} <= ingest
    assert not any(a.startswith("events:") or a == "dynamodb:Scan" or a.endswith(":*") for a in ingest)
    assert secret_patterns(template, "sync", "prod") == ["aftersync/prod/tenants/*"]  # identity salts only
    assert secret_patterns(template, "ingest", "prod") == ["aftersync/prod/sources/*"]
    assert secret_patterns(template, "deliver", "prod") == ["aftersync/prod/targets/*"]
    assert not any(a.startswith(("s3:", "events:")) for a in sync)
    assert "events:PutEvents" not in deliver
    for actions in (ingest, sync, deliver):
        assert "dynamodb:DeleteTable" not in actions and "*" not in actions


def test_state_is_encrypted_recoverable_and_retained_in_prod(templates: dict[str, Any]) -> None:
    for env in ENVS:
        for table in resources(templates[env], "AWS::DynamoDB::Table").values():
            props = table["Properties"]
            assert props["SSESpecification"]["SSEEnabled"] is True
            assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
            assert table["DeletionPolicy"] == ("Retain" if env == "prod" else "Delete")
    state = by_name(templates["prod"], "AWS::DynamoDB::Table", "TableName")["aftersync-prod-state"]["Properties"]
    assert state["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"  # outbox + audit archive
    idem = by_name(templates["prod"], "AWS::DynamoDB::Table", "TableName")["aftersync-prod-idempotency"]["Properties"]
    assert idem["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_every_acknowledgement_carries_a_reason(templates: dict[str, Any]) -> None:
    count = 0
    for template in templates.values():
        for resource in template["Resources"].values():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                count += 1
                assert len(rule["reason"]) >= 30, rule
    assert count > 0


def test_cfn_lint_passes_on_every_template(cdk_out: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--config-file",
            str(ROOT / ".cfnlintrc.yaml"),
            "--",
            *map(str, sorted(cdk_out.glob("*.template.json"))),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cdk_nag_fails_the_synth_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    app = build_app("dev", outdir=str(tmp_path))
    stack = next(c for c in app.node.children if isinstance(c, cdk.Stack))
    sqs.Queue(stack, "PlainQueue")  # no DLQ, no SSL enforcement: AwsSolutions-SQS3/SQS4 must fire
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_the_dependencies_layer_carries_phonenumbers_for_the_runtime(cdk_out: Path) -> None:
    [layer] = [p for p in cdk_out.glob("asset.*") if (p / "python" / "phonenumbers").is_dir()]
    assert (layer / "python" / "phonenumbers" / "__init__.py").exists()


def test_the_function_asset_holds_only_the_project_code(cdk_out: Path) -> None:
    [asset] = [p for p in cdk_out.glob("asset.*") if p.is_dir() and (p / "functions").exists()]
    assert sorted(p.name for p in asset.iterdir()) == ["functions", "shared"]


def test_the_sp_api_queue_admits_only_amazon_and_only_where_sellers_are_configured(templates: dict[str, Any]) -> None:
    for env in ENVS:
        cfg = load_environment(env)
        queues = by_name(templates[env], "AWS::SQS::Queue", "QueueName")
        if not cfg.amazon_sellers:
            assert cfg.resource("amazon") not in queues and cfg.resource("amazon-intake") not in by_name(
                templates[env], "AWS::Lambda::Function", "FunctionName"
            )
            continue
        queue = queues[cfg.resource("amazon")]["Properties"]
        # Amazon writes to it, so it uses SQS-managed encryption rather than the environment's key
        assert queue["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in queue
        assert queue["RedrivePolicy"]["maxReceiveCount"] == cfg.max_receive_count
        [policy] = [
            p
            for p in resources(templates[env], "AWS::SQS::QueuePolicy").values()
            if any(s.get("Sid") == "AllowExternalWriter" for s in p["Properties"]["PolicyDocument"]["Statement"])
        ]
        [allow] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
        assert allow["Principal"] == {"AWS": AMAZON_SP_API_PRINCIPAL}
        assert sorted(allow["Action"]) == ["sqs:GetQueueAttributes", "sqs:SendMessage"]
        intake = policy_actions(templates[env], "amazon-intake", env)
        assert {"sqs:ReceiveMessage", "s3:PutObject", "dynamodb:PutItem"} <= intake
        assert not any(a.startswith(("secretsmanager:", "events:")) for a in intake)


def alarms_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }


def topic_ref(template: dict[str, Any], severity: str) -> dict[str, str]:
    [logical] = [
        k
        for k, v in resources(template, "AWS::SNS::Topic").items()
        if v["Properties"]["TopicName"].endswith(f"-alarms-{severity}")
    ]
    return {"Ref": logical}


@pytest.mark.parametrize(("env", "threshold"), [("prod", 0.999), ("staging", 0.995), ("dev", 0.99)])
def test_the_sync_success_rate_alarm_is_metric_math_at_the_environments_threshold(
    templates: dict[str, Any], env: str, threshold: float
) -> None:
    template = templates[env]
    alarm = alarms_by_name(template)[f"aftersync-{env}-sync-success-rate"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
        threshold,
        "LessThanThreshold",
        "notBreaching",  # no traffic is not an alarm
    )
    [expression] = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["ReturnData"] is True
    assert expression["Expression"] == (
        "IF((FILL(processed, 0) + FILL(failed, 0)) > 0, "
        "(FILL(processed, 0) - FILL(quarantined, 0)) / (FILL(processed, 0) + FILL(failed, 0)))"
    )
    inputs = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {i: (s["Metric"]["MetricName"], s["Metric"]["Namespace"], s["Stat"]) for i, s in inputs.items()} == {
        "processed": ("RecordProcessed", f"Aftersync/{env}", "Sum"),
        "failed": ("RecordFailed", f"Aftersync/{env}", "Sum"),
        "quarantined": ("EventQuarantined", f"Aftersync/{env}", "Sum"),
    }
    # It raises and it clears: both go to the critical topic
    assert alarm["AlarmActions"] == alarm["OKActions"] == [topic_ref(template, "critical")]


@pytest.mark.parametrize("env", ENVS)
def test_every_dlq_has_an_alarm_on_any_message(templates: dict[str, Any], env: str) -> None:
    template = templates[env]
    queues = resources(template, "AWS::SQS::Queue")
    dlq_ids = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    # Also the stream's on-failure queue, EventBridge's target DLQ and the SNS subscriptions' DLQ
    dlq_ids |= {k for k, q in queues.items() if q["Properties"]["QueueName"].endswith(("-publish-dlq", "-events-dlq"))}
    dlq_ids |= {
        s["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for s in resources(template, "AWS::SNS::Subscription").values()
    }
    watched = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms_by_name(template).values()
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and a["Threshold"] == 0
        and a["ComparisonOperator"] == "GreaterThanThreshold"
        and a["AlarmActions"] == [topic_ref(template, "critical")]
    }
    assert dlq_ids and dlq_ids <= watched, f"DLQs without an alarm: {dlq_ids - watched}"


def test_alarm_topics_reach_the_notify_function_through_the_alarms_queue(templates: dict[str, Any]) -> None:
    template = templates["prod"]
    queues = by_name(template, "AWS::SQS::Queue", "QueueName")
    alarms_queue = next(
        k
        for k, v in resources(template, "AWS::SQS::Queue").items()
        if v["Properties"]["QueueName"] == "aftersync-prod-alarms"
    )
    subscriptions = resources(template, "AWS::SNS::Subscription").values()
    assert sorted(s["Properties"]["TopicArn"]["Ref"] for s in subscriptions) == sorted(
        topic_ref(template, s)["Ref"] for s in ("critical", "warning")
    )
    assert all(s["Properties"]["Endpoint"] == {"Fn::GetAtt": [alarms_queue, "Arn"]} for s in subscriptions)
    [mapping] = [
        m
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [alarms_queue, "Arn"]}
    ]
    notify = function_for(template, mapping["Properties"]["FunctionName"]["Ref"])
    assert notify["Properties"]["FunctionName"] == "aftersync-prod-notify"
    # One digest per batch: up to 100 changes gathered for up to 10 s
    assert (mapping["Properties"]["BatchSize"], mapping["Properties"]["MaximumBatchingWindowInSeconds"]) == (100, 10)
    variables = notify["Properties"]["Environment"]["Variables"]
    assert json.loads(variables["WECOM_ROBOTS_JSON"]) == {"critical": ["oncall"], "warning": ["ops"]}
    assert variables["WECOM_API_BASE"] == "https://qyapi.weixin.qq.com"
    assert queues["aftersync-prod-alarms"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 5
    topics = resources(template, "AWS::SNS::Topic").values()
    assert all("KmsMasterKeyId" in t["Properties"] for t in topics)
    assert secret_patterns(template, "notify", "prod") == ["aftersync/prod/wecom/*"]


def test_every_alarm_clears_too_and_missing_data_never_alarms(templates: dict[str, Any]) -> None:
    for env in ENVS:
        for name, alarm in alarms_by_name(templates[env]).items():
            assert alarm["TreatMissingData"] == "notBreaching", name
            assert alarm["OKActions"] == alarm["AlarmActions"], name
            assert alarm["AlarmDescription"], name


def test_prod_and_dev_have_their_own_thresholds(templates: dict[str, Any]) -> None:
    prod, dev = alarms_by_name(templates["prod"]), alarms_by_name(templates["dev"])
    assert prod["aftersync-prod-freshness-p99"]["Threshold"] == 120_000
    assert prod["aftersync-prod-freshness-p99"]["ExtendedStatistic"] == "p99"
    assert dev["aftersync-dev-freshness-p99"]["Threshold"] == 900_000
    assert prod["aftersync-prod-inbox-oldest-message-age"]["Threshold"] == 600
    assert dev["aftersync-dev-inbox-oldest-message-age"]["Threshold"] == 1800
    for env, alarms in (("prod", prod), ("dev", dev)):
        for function in ("ingest", "normalise", "sync", "deliver", "notify"):
            assert f"aftersync-{env}-{function}-errors" in alarms and f"aftersync-{env}-{function}-throttles" in alarms
        assert alarms[f"aftersync-{env}-api-5xx"]["MetricName"] == "5XXError"
        surge = alarms[f"aftersync-{env}-api-4xx-surge"]
        assert [m["Expression"] for m in surge["Metrics"] if "Expression" in m] == [
            "IF(requests >= 20, errors / requests)"
        ]


def test_each_environment_has_a_pipeline_dashboard(templates: dict[str, Any]) -> None:
    for env in ENVS:
        [dashboard] = resources(templates[env], "AWS::CloudWatch::Dashboard").values()
        assert dashboard["Properties"]["DashboardName"] == f"aftersync-{env}-pipeline"
        body = json.dumps(dashboard["Properties"]["DashboardBody"], ensure_ascii=False)
        for stage in ("1 · Ingest", "2 · Normalise", "3 · Sync", "4 · Deliver", "Sync success rate", "Dead letters"):
            assert stage in body


def dashboard_widgets(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline dashboard's widgets, its body's references resolved: a function's name where the
    template names it (``Ref`` of a function), ``${Ref}`` / ``${Logical.Attribute}`` otherwise."""
    [dashboard] = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    names = {k: v["Properties"]["FunctionName"] for k, v in resources(template, "AWS::Lambda::Function").items()}

    def resolved(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part:
            return str(names.get(part["Ref"], "${" + part["Ref"] + "}"))
        return "${" + ".".join(part["Fn::GetAtt"]) + "}"

    if isinstance(body, str):
        return list(json.loads(body)["widgets"])
    separator, parts = body["Fn::Join"]
    return list(json.loads(separator.join(resolved(part) for part in parts))["widgets"])


def test_the_dashboard_has_a_read_side_row_with_the_lookup_metrics_and_the_lookup_function_s_health(
    templates: dict[str, Any],
) -> None:
    for env in ENVS:
        cfg = load_environment(env)
        widgets = dashboard_widgets(templates[env])
        row = [w for w in widgets if str(w.get("properties", {}).get("title", "")).startswith("5 · Read side")]
        assert [w["properties"]["title"] for w in row] == [
            "5 · Read side: lookups",
            "5 · Read side: lookup errors",
            "5 · Read side: lookup duration p99 (ms)",
        ]
        assert {w["y"] for w in row} == {row[0]["y"]} and [w["x"] for w in row] == [0, 8, 16]  # one row
        every = {} if cfg.alarms.period_minutes == 5 else {"period": cfg.alarms.period_minutes * 60}  # 5: the default
        namespace, lookup = f"Aftersync/{env}", f"aftersync-{env}-lookup"
        assert [w["properties"]["metrics"] for w in row] == [
            [
                [namespace, name, "service", "aftersync", {"label": label, **every, "stat": "Sum"}]
                for name, label in (
                    ("LookupServed", "served (200)"),
                    ("LookupNotFound", "not found (404)"),
                    ("LookupRefused", "refused (401)"),
                )
            ],
            [["AWS/Lambda", "Errors", "FunctionName", lookup, {"label": "errors", **every, "stat": "Sum"}]],
            [["AWS/Lambda", "Duration", "FunctionName", lookup, {"label": "p99", **every, "stat": "p99"}]],
        ]
        # the namespace and dimension are the ones the lookup function emits under
        [function] = [
            f
            for f in resources(templates[env], "AWS::Lambda::Function").values()
            if f["Properties"].get("FunctionName") == lookup
        ]
        variables = function["Properties"]["Environment"]["Variables"]
        assert (variables["POWERTOOLS_METRICS_NAMESPACE"], variables["POWERTOOLS_SERVICE_NAME"]) == (
            namespace,
            "aftersync",
        )


def test_prod_is_sized_for_the_peak_as_cdk_json_says(templates: dict[str, Any]) -> None:
    """The sizing `aftersync capacity --env prod` models is the sizing the prod template deploys."""
    from infra.config import load_environment
    from infra.wiring import function_memory_mb, queue_batching, stream_batching

    cfg = load_environment("prod")
    template = templates["prod"]
    names = {k: v["Properties"]["QueueName"] for k, v in resources(template, "AWS::SQS::Queue").items()}
    mappings = resources(template, "AWS::Lambda::EventSourceMapping").values()
    by_queue = {
        names[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]: m["Properties"]
        for m in mappings
        if m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] in names
    }
    functions = {f["Properties"]["FunctionName"]: f for f in resources(template, "AWS::Lambda::Function").values()}
    for purpose, cap in cfg.consumer_concurrency.items():
        mapping = by_queue[cfg.resource(purpose)]
        batching = queue_batching(cfg, purpose)
        assert mapping["ScalingConfig"]["MaximumConcurrency"] == cap
        assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (
            batching.batch_size,
            batching.window_seconds,
        )
    assert by_queue["aftersync-prod-orders"]["ScalingConfig"]["MaximumConcurrency"] == 85
    assert by_queue["aftersync-prod-deliver-crm"]["ScalingConfig"]["MaximumConcurrency"] == 160
    assert by_queue["aftersync-prod-alarms"]["ScalingConfig"]["MaximumConcurrency"] == 2
    streams = {
        fn: m["Properties"]
        for m in mappings
        for fn in ("publish", "audit-archive")
        if "StreamArn" in json.dumps(m["Properties"]["EventSourceArn"])
        and m["Properties"]["FunctionName"]["Ref"].startswith("ComputeFn" + fn.replace("-", ""))
    }
    for fn in ("publish", "audit-archive"):
        sizing = stream_batching(cfg, fn)
        assert streams[fn]["ParallelizationFactor"] == sizing.parallelization_factor == 10
        assert streams[fn]["BatchSize"] == sizing.batch_size
    for name in cfg.function_memory_mb:
        assert functions[cfg.resource(name)]["Properties"]["MemorySize"] == function_memory_mb(cfg, name)
    assert functions["aftersync-prod-ingest"]["Properties"]["ReservedConcurrentExecutions"] == 300
    assert "ReservedConcurrentExecutions" not in functions["aftersync-prod-sync"]["Properties"]
    stage = next(iter(resources(template, "AWS::ApiGateway::Stage").values()))["Properties"]
    throttle = stage["MethodSettings"][0]
    assert (throttle["ThrottlingRateLimit"], throttle["ThrottlingBurstLimit"]) == (12_000, 6_000)


def test_dev_keeps_the_default_sizing(templates: dict[str, Any]) -> None:
    functions = {
        f["Properties"]["FunctionName"]: f for f in resources(templates["dev"], "AWS::Lambda::Function").values()
    }
    assert functions["aftersync-dev-sync"]["Properties"]["MemorySize"] == 256
    assert "ReservedConcurrentExecutions" not in functions["aftersync-dev-ingest"]["Properties"]
    for mapping in resources(templates["dev"], "AWS::Lambda::EventSourceMapping").values():
        assert mapping["Properties"].get("ParallelizationFactor", 1) == 1


def test_a_rate_limited_targets_queue_runs_only_the_containers_its_limit_needs(templates: dict[str, Any]) -> None:
    # dev: the ERP takes 20 a second and the help desk 10: 2 containers each (SQS's floor), each leasing
    # its share of a second's slots; the CRM has no limit and no cap
    template = templates["dev"]
    names = {k: v["Properties"]["QueueName"] for k, v in resources(template, "AWS::SQS::Queue").items()}
    caps = {
        names[m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]]: m["Properties"]
        .get("ScalingConfig", {})
        .get("MaximumConcurrency")
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "Fn::GetAtt" in m["Properties"]["EventSourceArn"]
        and m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0] in names
    }
    assert caps["aftersync-dev-deliver-erp"] == 2 and caps["aftersync-dev-deliver-zendesk"] == 2
    assert caps["aftersync-dev-deliver-crm"] is None


def test_automate_and_notify_may_write_only_their_own_items_in_the_state_table(templates: dict[str, Any]) -> None:
    template = templates["dev"]
    for function, prefixes in (
        ("automate", [["ops#action#*"], ["ops#dispatch#*"]]),  # its action ledger; agents' workload
        ("notify", [["ops#wecom#*"]]),
        ("deliver", [["ops#circuit#*", "ops#rate#*", "ops#wecom#*"]]),
    ):
        cfg = load_environment("dev")
        role = by_name(template, "AWS::Lambda::Function", "FunctionName")[cfg.resource(function)]["Properties"]["Role"]
        writes = [
            statement
            for policy in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role["Fn::GetAtt"][0]} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
            & ({"dynamodb:UpdateItem"} if function == "deliver" else {"dynamodb:PutItem", "dynamodb:UpdateItem"})
        ]
        assert writes, function
        # (deliver's PutItem writes acks on entity keys; its updates are ops# only)
        conditions = [s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] for s in writes]
        assert sorted(conditions) == prefixes, function


def test_the_shift_check_runs_on_a_schedule_into_the_automation_queue(templates: dict[str, Any]) -> None:
    cfg = load_environment("dev")
    rule = by_name(templates["dev"], "AWS::Events::Rule", "Name")[cfg.resource("dispatch-check")]["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    [target] = rule["Targets"]
    queues = {k: v["Properties"]["QueueName"] for k, v in resources(templates["dev"], "AWS::SQS::Queue").items()}
    assert queues[target["Arn"]["Fn::GetAtt"][0]] == cfg.resource("automation")
    assert "DeadLetterConfig" in target
    # prod has no roster: no schedule
    assert cfg.resource("dispatch-check").replace("dev", "prod") not in by_name(
        templates["prod"], "AWS::Events::Rule", "Name"
    )


def queue_sends(template: dict[str, Any], cfg: Any, function: str) -> tuple[set[str], list[str]]:
    """The queues ``function``'s role may SendMessage to (by name), and any events:* action it has."""
    queue_names = {k: v["Properties"]["QueueName"] for k, v in resources(template, "AWS::SQS::Queue").items()}
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    role = functions[cfg.resource(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
    sends: set[str] = set()
    bus: list[str] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            bus += [a for a in actions if a.startswith("events:")]
            if "sqs:SendMessage" in actions:
                named = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                sends |= {queue_names[r["Fn::GetAtt"][0]] for r in named}
    return sends, bus


def rendered(value: Any, names: dict[str, str]) -> str:
    """A template string with its ``Fn::Join`` of ``Ref``s to queues written out: each queue's URL as
    ``queue:<its name>``."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"queue:{names[value['Ref']]}"
    separator, parts = value["Fn::Join"]
    return str(separator).join(rendered(part, names) for part in parts)


def publish_routes(template: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """publish's routes as deployed: the name of each queue it sends to, with that queue's pattern."""
    names = {k: v["Properties"]["QueueName"] for k, v in resources(template, "AWS::SQS::Queue").items()}
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    variables = functions[cfg.resource("publish")]["Properties"]["Environment"]["Variables"]
    assert Env.EVENT_BUS not in variables
    routes = json.loads(rendered(variables[Env.CHANGE_ROUTES], names))
    return {r["queue"].removeprefix("queue:"): r["pattern"] for r in routes}


def test_publish_routes_each_change_to_the_queues_the_rules_did_and_the_bus_routes_no_change(
    templates: dict[str, Any],
) -> None:
    for env in ("dev", "prod"):
        cfg, template = load_environment(env), templates[env]
        expected = {cfg.resource(r.queue_purpose): r.pattern for r in change_routes(cfg)}
        assert publish_routes(template, cfg) == expected
        assert cfg.resource("deliver-crm") in expected and cfg.resource("automation") in expected
        # the bus keeps the observations' rules and the schedules; no rule routes a change
        patterns = [r["Properties"].get("EventPattern") for r in resources(template, "AWS::Events::Rule").values()]
        assert not [p for p in patterns if p and "entity.changed" in p.get("detail-type", [])]
        # publish's role: SendMessage on exactly those queues (and its stream's failure queue), nothing on the bus
        sends, bus = queue_sends(template, cfg, "publish")
        assert not bus, env
        assert sends == set(expected) | {cfg.resource("publish-dlq")}, env


def test_a_target_for_some_ids_gets_only_those_routed_to_its_queue(templates: dict[str, Any]) -> None:
    cfg = load_environment("dev")
    pattern = publish_routes(templates["dev"], cfg)[cfg.resource("deliver-zendesk")]
    assert pattern["detail"] == {
        "entity_type": ["ticket"],
        "origin_source": [{"anything-but": ["zendesk"]}],  # no echo of what Zendesk said
        "entity_id": [{"prefix": "zendesk:"}],  # only the tickets Zendesk knows
    }


def test_scheduled_pulls_run_into_the_reconcile_queue_with_only_what_they_need(templates: dict[str, Any]) -> None:
    cfg = load_environment("dev")
    template = templates["dev"]
    rule = by_name(template, "AWS::Events::Rule", "Name")[cfg.resource("reconcile-shopify-demo")]["Properties"]
    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    [target] = rule["Targets"]
    queues = {k: v["Properties"]["QueueName"] for k, v in resources(template, "AWS::SQS::Queue").items()}
    assert queues[target["Arn"]["Fn::GetAtt"][0]] == cfg.resource("reconcile")
    assert json.loads(target["Input"]) == {"source": "shopify", "tenant": "demo"}
    assert "DeadLetterConfig" in target
    # its own credentials, which the webhook path cannot read; state read-only but for its watermarks
    assert secret_patterns(template, "reconcile", "dev") == ["aftersync/dev/pull/*"]
    assert secret_patterns(template, "ingest", "dev") == ["aftersync/dev/sources/*"]
    actions = policy_actions(template, "reconcile", "dev")
    assert {"dynamodb:BatchGetItem", "s3:PutObject", "sqs:SendMessage", "secretsmanager:GetSecretValue"} <= actions
    assert not any(a.startswith(("events:", "sns:", "ses:")) or a == "dynamodb:Scan" for a in actions)
    [state] = [
        k for k, v in resources(template, "AWS::DynamoDB::Table").items() if "StreamSpecification" in v["Properties"]
    ]
    role = by_name(template, "AWS::Lambda::Function", "FunctionName")[cfg.resource("reconcile")]["Properties"]["Role"]
    state_writes = [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role["Fn::GetAtt"][0]} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "dynamodb:PutItem" in statement["Action"] and state in json.dumps(statement["Resource"])
    ]
    assert [s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] for s in state_writes] == [
        ["ops#reconcile#*"]
    ]
    # prod pulls nothing: no schedule, no function
    assert cfg.resource("reconcile").replace("dev", "prod") not in by_name(
        templates["prod"], "AWS::Lambda::Function", "FunctionName"
    )


def test_changes_found_only_by_a_scheduled_pull_raise_a_warning(templates: dict[str, Any]) -> None:
    cfg = load_environment("dev")
    missed = alarms_by_name(templates["dev"])[cfg.resource("webhooks-missed")]
    assert (missed["MetricName"], missed["Threshold"], missed["ComparisonOperator"]) == (
        "ReconcileMissed",
        0,
        "GreaterThanThreshold",
    )
    assert missed["AlarmDescription"].startswith("[warning] A scheduled pull found changes no webhook had brought")
    assert cfg.resource("webhooks-missed").replace("dev", "prod") not in alarms_by_name(templates["prod"])


def sandbox_arns(template: dict[str, Any], env: str) -> SandboxArns:
    """The template's intrinsics resolved as the sandbox resolves them (account 123456789012)."""
    cfg = load_environment(env)
    return SandboxArns(
        template,
        cfg.region,
        "123456789012",
        stream_arns={cfg.resource("state"): f"arn:aws:dynamodb:{cfg.region}:123456789012:table/state/stream/1"},
        names={"/Storage/Archive/Resource": cfg.archive_bucket("123456789012")},
    )


def test_automate_may_text_a_phone_number_but_never_publish_to_a_topic(templates: dict[str, Any]) -> None:
    # Given the automate role of an environment that sends SMS (sns:Publish has no ARN for a phone number)
    template = templates["dev"]
    arns = sandbox_arns(template, "dev")
    role = function_policies(arns)[load_environment("dev").resource("automate")]
    statements = [s for document in role.inline.values() for s in document["Statement"]]

    # Then an explicit Deny covers every topic ARN...
    assert {"Action": "sns:Publish", "Effect": "Deny", "Resource": "arn:aws:sns:*:*:*"} in statements

    # ...so, evaluated by moto's policy engine, an SMS is allowed and the alarm topics are not
    def publish(resource: str) -> set[PermissionResult]:
        return {IAMPolicy(json.dumps(d)).is_action_permitted("sns:Publish", resource) for d in role.inline.values()}

    assert PermissionResult.PERMITTED in publish("*") and PermissionResult.DENIED not in publish("*")
    topics = [arns.attribute(t, "TopicArn") for t in resources(template, "AWS::SNS::Topic")]
    assert len(topics) == 2
    for topic in topics:
        assert PermissionResult.DENIED in publish(topic), topic


def test_a_delivery_waiting_on_its_target_alarms_though_its_message_is_always_new(templates: dict[str, Any]) -> None:
    # A waiting delivery goes back as a new copy every <= 15 minutes (the queue's oldest-message age restarts):
    # the age of the waiting change alarms instead, on any breaching point in the last 15 minutes
    for env, period_minutes, max_age in (("prod", 5, 600), ("dev", 5, 1800)):
        alarm = alarms_by_name(templates[env])[f"aftersync-{env}-deliveries-waiting"]
        watched = (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"])
        assert watched == ("WaitingAge", "Maximum", max_age * 1000)
        assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (period_minutes * 60, 3, 1)
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def sends_to(template: dict[str, Any], function: str, queue_name: str, cfg_env: str) -> bool:
    """Whether the function's role may sqs:SendMessage to the named queue."""
    cfg = load_environment(cfg_env)
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    role = functions[cfg.resource(function)]["Properties"]["Role"]["Fn::GetAtt"][0]
    queue = {v["Properties"]["QueueName"]: k for k, v in resources(template, "AWS::SQS::Queue").items()}[queue_name]
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            if "sqs:SendMessage" in actions and {"Fn::GetAtt": [queue, "Arn"]} in targets:
                return True
    return False


def test_a_function_that_defers_records_may_send_their_copies_back_to_its_own_queue(templates: dict[str, Any]) -> None:
    # A record that only waits (an action claimed by another worker, an open circuit) goes back to its queue
    # as a delayed copy; without SendMessage the copy is refused and the wait fails the record after all
    cfg = load_environment("dev")
    assert sends_to(templates["dev"], "automate", cfg.resource("automation"), "dev")
    for target in (t for t in cfg.targets if t.push_changes):
        assert sends_to(templates["dev"], "deliver", cfg.resource(f"deliver-{target.name}"), "dev")
    assert sends_to(templates["dev"], "notify", cfg.resource("alarms"), "dev")  # waiting for a robot's minute
    assert not sends_to(templates["dev"], "sync", cfg.resource("orders"), "dev")  # it never defers


def test_prod_s_state_and_view_tables_are_provisioned_with_auto_scaling_and_the_dedupe_table_on_demand(
    templates: dict[str, dict[str, Any]],
) -> None:
    for env in ("dev", "staging", "prod"):
        cfg, template = load_environment(env), templates[env]
        tables = {
            v["Properties"]["TableName"]: v["Properties"] for v in resources(template, "AWS::DynamoDB::Table").values()
        }
        # ingest's dedupe record is written before the ack: never provisioned, so never throttled there
        assert tables[cfg.resource("idempotency")]["BillingMode"] == "PAY_PER_REQUEST"
        scaled: dict[tuple[str, str], tuple[int, int, float]] = {}
        targets = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        for target_id, target in targets.items():
            p = target["Properties"]
            [policy] = [
                v["Properties"]
                for v in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
                if v["Properties"]["ScalingTargetId"] == {"Ref": target_id}
            ]
            table = next(
                k for k, v in tables.items() if {"Ref": table_id(template, k)} in p["ResourceId"]["Fn::Join"][1]
            )
            config = policy["TargetTrackingScalingPolicyConfiguration"]
            metric = config["PredefinedMetricSpecification"]["PredefinedMetricType"]
            dimension = p["ScalableDimension"].rsplit(":", 1)[1]
            assert metric == f"DynamoDB{'Write' if dimension == 'WriteCapacityUnits' else 'Read'}CapacityUtilization"
            scaled[(table, dimension)] = (p["MinCapacity"], p["MaxCapacity"], config["TargetValue"])
        expected: dict[tuple[str, str], tuple[int, int, float]] = {}
        for which, capacity in cfg.table_capacity.items():
            name = cfg.resource(which)
            assert tables[name].get("BillingMode", "PROVISIONED") == "PROVISIONED"  # (CloudFormation's default)
            assert tables[name]["ProvisionedThroughput"] == {
                "ReadCapacityUnits": capacity.read.min,
                "WriteCapacityUnits": capacity.write.min,
            }
            target = float(capacity.target_utilization_percent)
            expected[(name, "WriteCapacityUnits")] = (capacity.write.min, capacity.write.max, target)
            expected[(name, "ReadCapacityUnits")] = (capacity.read.min, capacity.read.max, target)
        for which in {"state", "view"} - set(cfg.table_capacity):
            assert tables[cfg.resource(which)]["BillingMode"] == "PAY_PER_REQUEST"
        assert scaled == expected, env
    prod = load_environment("prod")
    assert set(prod.table_capacity) == {"state", "view"}


def test_normalise_sends_to_the_domain_queues_and_the_quarantine_and_puts_nothing_on_the_bus(
    templates: dict[str, dict[str, Any]],
) -> None:
    template, cfg = templates["prod"], load_environment("prod")
    sends, bus = queue_sends(template, cfg, "normalise")
    assert not bus
    functions = by_name(template, "AWS::Lambda::Function", "FunctionName")
    # (and its own DLQ, where it moves a record itself on its last attempt; the alarms queue: its schema
    # drift warnings, which notify digests)
    expected = ("orders", "after-sales", "logistics", "tickets", "quarantine", "inbox-dlq", "alarms")
    assert sends == {cfg.resource(q) for q in expected}
    variables = functions[cfg.resource("normalise")]["Properties"]["Environment"]["Variables"]
    assert Env.EVENT_BUS not in variables and Env.OBSERVED_QUEUE_URLS in variables


def test_normalise_reads_and_writes_only_the_schema_shapes_in_the_state_table(templates: dict[str, Any]) -> None:
    """Schema drift: the known shapes and drift records (``ops#schema#…``), read by key and written whole
    (a drift's shape and records in one transaction, which needs PutItem on each); nothing else there."""
    for env in ("dev", "prod"):
        template, cfg = templates[env], load_environment(env)
        role = by_name(template, "AWS::Lambda::Function", "FunctionName")[cfg.resource("normalise")]["Properties"]
        state_table = {"Fn::GetAtt": [table_id(template, cfg.resource("state")), "Arn"]}
        statements = [
            statement
            for policy in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role["Role"]["Fn::GetAtt"][0]} in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if any(str(a).startswith("dynamodb:") for a in _actions(statement))
        ]
        assert [(sorted(_actions(s)), s["Resource"], s["Condition"]) for s in statements] == [
            (
                ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"],
                state_table,
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ops#schema#*"]}},
            )
        ], env
        variables = role["Environment"]["Variables"]
        assert variables[Env.SCHEMA_BASELINE] == str(cfg.schema_drift.baseline) == "20"
        assert variables[Env.STATE_TABLE] == {"Ref": table_id(template, cfg.resource("state"))}
    # and the sandbox's AWS stand-in, which evaluates the same role (without its conditions), lets the
    # watch make its calls: read and write the shapes, send the warning to the alarms queue
    arns = sandbox_arns(templates["dev"], "dev")
    cfg = load_environment("dev")
    documents = function_policies(arns)[cfg.resource("normalise")].inline.values()
    state = f"arn:aws:dynamodb:{cfg.region}:123456789012:table/{cfg.resource('state')}"
    alarms = f"arn:aws:sqs:{cfg.region}:123456789012:{cfg.resource('alarms')}"
    for action, resource in (
        ("dynamodb:BatchGetItem", state),
        ("dynamodb:GetItem", state),
        ("dynamodb:PutItem", state),
        ("sqs:SendMessage", alarms),
    ):
        verdicts = {IAMPolicy(json.dumps(d)).is_action_permitted(action, resource) for d in documents}
        assert PermissionResult.PERMITTED in verdicts and PermissionResult.DENIED not in verdicts, action
    denied = {IAMPolicy(json.dumps(d)).is_action_permitted("dynamodb:UpdateItem", state) for d in documents}
    assert PermissionResult.PERMITTED not in denied
