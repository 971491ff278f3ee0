"""The adapters' boto3 clients are typed by the boto3 stubs (a dev dependency), so a wrong parameter name
or shape fails mypy before it fails in AWS."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]


def test_a_misspelt_boto3_parameter_in_an_adapter_fails_mypy(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from shared.adapters.dynamo import DynamoTable\n"
        "from shared.adapters.sqs import SqsQueue\n\n"
        "DynamoTable('state').client.put_item(TableName='state', Itm={})\n"
        "SqsQueue('url').client.send_message(QueueUrl='url', MessageBody='{}', DelaySecond=5)\n"
    )
    stdout, _, status = api.run(["--no-incremental", "--config-file", str(ROOT / "pyproject.toml"), str(probe)])
    assert status == 1
    assert 'Unexpected keyword argument "Itm" for "put_item" of "DynamoDBClient"' in stdout
    assert 'Unexpected keyword argument "DelaySecond" for "send_message" of "SQSClient"' in stdout
