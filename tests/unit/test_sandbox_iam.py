"""The sandbox's IAM fidelity: what moto is asked to authorize for a request, and when the cached
template must be synthesized again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from infra.config import ROOT
from infra.sandbox.iam import template_inputs_hash
from infra.sandbox.moto_fidelity import authorized_as

REGION, ACCOUNT = "eu-west-1", "123456789012"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table"


def test_a_transaction_is_authorized_as_its_items_actions_on_their_tables() -> None:
    body = json.dumps(
        {
            "TransactItems": [
                {"Put": {"TableName": "state", "Item": {}}},
                {"ConditionCheck": {"TableName": "state", "Key": {}}},
                {"Update": {"TableName": "other", "Key": {}}},
            ]
        }
    )
    assert authorized_as("dynamodb:TransactWriteItems", "*", body, REGION, ACCOUNT) == [
        ("dynamodb:PutItem", f"{TABLE}/state"),
        ("dynamodb:ConditionCheckItem", f"{TABLE}/state"),
        ("dynamodb:UpdateItem", f"{TABLE}/other"),
    ]


def test_table_index_and_stream_requests_name_what_aws_authorizes() -> None:
    query = json.dumps({"TableName": "state", "IndexName": "by-customer"})
    assert authorized_as("dynamodb:Query", "*", query, REGION, ACCOUNT) == [
        ("dynamodb:Query", f"{TABLE}/state/index/by-customer")
    ]
    iterator = json.dumps({"ShardIterator": f"{TABLE}/state/stream/2026|1|abc"})
    assert authorized_as("dynamodb:GetRecords", "*", iterator, REGION, ACCOUNT) == [
        ("dynamodb:GetRecords", f"{TABLE}/state/stream/2026")
    ]


def test_sqs_batches_are_authorized_as_their_single_actions_and_get_queue_url_on_its_queue() -> None:
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:inbox"
    assert authorized_as("sqs:SendMessageBatch", queue, "{}", REGION, ACCOUNT) == [("sqs:SendMessage", queue)]
    assert authorized_as("sqs:DeleteMessageBatch", queue, "{}", REGION, ACCOUNT) == [("sqs:DeleteMessage", queue)]
    assert authorized_as("sqs:GetQueueUrl", "*", json.dumps({"QueueName": "inbox"}), REGION, ACCOUNT) == [
        ("sqs:GetQueueUrl", queue)
    ]


def test_an_sms_is_published_to_no_resource_and_a_topic_message_to_its_topic() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"
    assert authorized_as("sns:Publish", "*", b"", REGION, ACCOUNT, {"PhoneNumber": ["+861"]}) == [("sns:Publish", "*")]
    assert authorized_as("sns:Publish", "*", b"", REGION, ACCOUNT, {"TopicArn": [topic]}) == [("sns:Publish", topic)]


def test_the_template_cache_follows_the_stack_code_and_not_the_sandbox(tmp_path: Path) -> None:
    for name in ("app.py", "cdk.json", "pyproject.toml", "infra", "shared"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    before = template_inputs_hash(tmp_path)
    (tmp_path / "infra" / "sandbox" / "demo.py").write_text("# the sandbox does not shape the stack\n")
    assert template_inputs_hash(tmp_path) == before
    compute = tmp_path / "infra" / "constructs" / "compute.py"
    compute.write_text(compute.read_text() + "\n# a grant changed\n")
    assert template_inputs_hash(tmp_path) != before
