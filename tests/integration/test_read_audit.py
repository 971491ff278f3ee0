"""The read audit and the sandbox's readers on moto. The read audit: one item per lookup in the tenant's
day partition, with its TTL, listed by day between since and now and by reader; the selector only ever as
an HMAC with the tenant's salt. The readers: the secrets file's readers become secrets their keys open."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError
from typer.testing import CliRunner

from infra.config import load_environment
from infra.sandbox import moto_fidelity
from infra.sandbox.resources import create_resources
from ops.cli import app
from ops.resources import Resources
from shared.adapters.secrets import SecretReader
from shared.identity.resolver import IdentityKey, hash_key
from shared.read.access_log import ReadAudit, ReadRecord, selector_hmac
from shared.read.readers import Reader, Refusal, authenticate, secret_fetcher

TABLE = "state"
SALT = b"sandbox-identity-salt-for-tenant-demo-0123456789"
PHONE = "+8613812348000"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def audit() -> Iterator[ReadAudit]:
    moto_fidelity.apply()
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield ReadAudit(TABLE, retention_days=30)


def lookup(at: datetime, request_id: str, reader: str | None = "demo-agent", **fields: Any) -> ReadRecord:
    values: dict[str, Any] = {
        "tenant": "demo",
        "at": at,
        "request_id": request_id,
        "reader": reader,
        "role": "agent" if reader == "demo-agent" else "supervisor" if reader else None,
        "selector_kind": "phone",
        "selector_hmac": selector_hmac(SALT, "phone", PHONE),
        "entity_ids": ("customer:cus_7f3a9c", "order:shopify:820982911946154508"),
        "outcome": 200,
    }
    return ReadRecord.model_validate({**values, **fields})


def items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


def write_history(audit: ReadAudit) -> list[ReadRecord]:
    records = [
        lookup(NOW - timedelta(days=9), "r-old"),
        lookup(NOW - timedelta(days=2, hours=1), "r-1"),
        lookup(NOW - timedelta(days=1), "r-2", reader="demo-supervisor"),
        lookup(
            NOW - timedelta(hours=3),
            "r-3",
            reader="nobody",
            role=None,
            selector_kind=None,
            selector_hmac=None,
            entity_ids=(),
            outcome=401,
            reason="unknown_reader",
        ),
        lookup(NOW - timedelta(minutes=5), "r-4", selector_kind="serial", outcome=404, entity_ids=()),
    ]
    for record in reversed(records):  # written in any order: listed by time
        audit.write(record)
    return records


def test_a_lookup_is_one_item_in_the_tenants_day_partition_with_its_ttl(audit: ReadAudit) -> None:
    at = datetime(2026, 11, 11, 23, 30, 0, 123456, tzinfo=UTC)
    audit.write(lookup(at, "3f1c-req"))
    [item] = items()
    assert item == {
        "pk": {"S": "demo#reads#2026-11-11"},
        "sk": {"S": "2026-11-11T23:30:00.123456Z#3f1c-req"},
        "reader": {"S": "demo-agent"},
        "role": {"S": "agent"},
        "selector_kind": {"S": "phone"},
        "selector_hmac": {"S": selector_hmac(SALT, "phone", PHONE)},
        "entity_ids": {"L": [{"S": "customer:cus_7f3a9c"}, {"S": "order:shopify:820982911946154508"}]},
        "outcome": {"N": "200"},
        "expires_at": {"N": str(int(at.timestamp()) + 30 * 86400)},
    }


def test_the_day_is_the_utc_day_whatever_zone_the_time_is_given_in(audit: ReadAudit) -> None:
    audit.write(lookup(datetime.fromisoformat("2026-11-12T07:00:00+08:00"), "a"))  # 23:00 UTC the day before
    audit.write(lookup(datetime.fromisoformat("2026-11-12T09:00:00+08:00"), "b"))
    assert sorted(i["pk"]["S"] for i in items()) == ["demo#reads#2026-11-11", "demo#reads#2026-11-12"]


def test_the_selector_is_only_ever_stored_as_the_hmac_the_identity_index_uses(audit: ReadAudit) -> None:
    write_history(audit)
    stored = json.dumps(items())
    for clear in (PHONE, "13812348000", "138 1234 8000"):
        assert clear not in stored
    assert selector_hmac(SALT, "phone", PHONE) == hash_key(SALT, IdentityKey("phone", PHONE))
    with pytest.raises(ValidationError):  # a value in clear is no HMAC: refused before it is written
        lookup(NOW, "r-5", selector_hmac=PHONE)
    with pytest.raises(ValidationError):
        lookup(NOW, "r-5", selector_hmac=hash_key(SALT, IdentityKey("phone", PHONE)).upper())


def test_lookups_are_listed_oldest_first_from_since_and_by_reader(audit: ReadAudit) -> None:
    records = write_history(audit)
    week = NOW - timedelta(days=7)
    assert list(audit.records("demo", week)) == records[1:]
    assert list(audit.records("demo", week, reader="demo-agent")) == [records[1], records[4]]
    assert list(audit.records("demo", NOW - timedelta(days=1))) == records[2:]  # since is inclusive
    assert list(audit.records("demo", NOW - timedelta(days=30), until=NOW - timedelta(days=1, seconds=1))) == [
        records[0],
        records[1],
    ]
    assert list(audit.records("other", week)) == []


def test_a_day_of_many_pages_is_listed_whole(audit: ReadAudit, monkeypatch: pytest.MonkeyPatch) -> None:
    written = [lookup(NOW - timedelta(seconds=n), f"r-{n:02d}") for n in range(25, 0, -1)]
    for record in written:
        audit.write(record)
    query = audit.client.query
    pages: list[int] = []

    def small_pages(**kwargs: Any) -> Any:
        page = query(**kwargs, Limit=4)
        pages.append(len(page["Items"]))
        return page

    monkeypatch.setattr(audit.client, "query", small_pages)
    assert list(audit.records("demo", NOW - timedelta(seconds=30))) == written
    assert sum(pages) == 25 and len(pages) >= 7


def test_a_read_audit_without_a_retention_lists_but_does_not_write(audit: ReadAudit) -> None:
    write_history(audit)
    reader_only = ReadAudit(TABLE)
    assert len(list(reader_only.records("demo", NOW - timedelta(days=7)))) == 4
    with pytest.raises(ValueError, match="retention_days"):
        reader_only.write(lookup(NOW, "r-9"))


def test_the_access_log_command_lists_them(audit: ReadAudit, monkeypatch: pytest.MonkeyPatch) -> None:
    records = write_history(audit)
    resources = Resources(
        where="sandbox",
        environment="dev",
        region="eu-west-1",
        endpoint_url=None,
        state_table=TABLE,
        view_table="view",
        idempotency_table="idempotency",
        archive_bucket="archive",
        queues={},
        api_url=None,
        keys=("testing", "testing"),
    )
    monkeypatch.setattr("ops.cli.common.resolve", lambda aws, env, config: resources)
    runner = CliRunner()

    listed = runner.invoke(app, ["access-log", "--tenant", "demo", "--reader", "demo-agent", "--json"])
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.output)
    assert [r["request_id"] for r in document["records"]] == ["r-1", "r-4"]
    assert document["records"][1] == records[4].model_dump(mode="json")

    since = (NOW - timedelta(hours=4)).isoformat()
    shown = runner.invoke(app, ["access-log", "--tenant", "demo", "--since", since], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert len(lines) == 3
    assert "  r-3  nobody  -  401 (unknown_reader)  -" in lines[0]
    hashed = selector_hmac(SALT, "phone", PHONE)[:12]
    assert f"  r-4  demo-agent (agent)  serial {hashed}…  404  -" in lines[1]
    assert lines[2].startswith("2 lookup(s) of tenant demo since ")

    future = runner.invoke(app, ["access-log", "--tenant", "demo", "--since", "2999-01-01"])
    assert future.exit_code == 2 and "in the future" in future.output
    garbage = runner.invoke(app, ["access-log", "--tenant", "demo", "--since", "yesterday"])
    assert garbage.exit_code == 2 and "not an ISO date" in garbage.output


def test_the_sandbox_creates_its_readers_secrets_and_their_keys_authenticate(
    sandbox_secrets: dict[str, Any],
) -> None:
    moto_fidelity.apply()
    with mock_aws():
        cfg = load_environment("dev")
        create_resources(cfg, sandbox_secrets, visibility_timeout=30)
        fetch = secret_fetcher(SecretReader(max_age=0).get_json, cfg.secrets_prefix)
        agent, supervisor = (sandbox_secrets["readers"][n]["key"] for n in ("demo-agent", "demo-supervisor"))

        assert authenticate(f"Bearer {agent}", "demo", fetch) == Reader("demo-agent", "demo", "agent")
        assert authenticate(f"Bearer {supervisor}", "demo", fetch) == Reader("demo-supervisor", "demo", "supervisor")
        assert authenticate(f"Bearer {agent}", "other", fetch) == Refusal("wrong_tenant", "demo-agent")
        assert authenticate(f"Bearer demo-agent.{'x' * 40}", "demo", fetch) == Refusal("wrong_key", "demo-agent")
        assert authenticate(f"Bearer ghost.{'x' * 40}", "demo", fetch) == Refusal("unknown_reader", "ghost")
        stored = boto3.client("secretsmanager").get_secret_value(SecretId="aftersync/dev/readers/demo-agent")
        assert json.loads(stored["SecretString"]) == {"tenant": "demo", "role": "agent", "keys": [agent]}
