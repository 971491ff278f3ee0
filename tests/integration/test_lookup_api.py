"""The lookup API through the real handlers on moto: ``GET /v1/{tenant}/lookup`` authenticated by a reader's
bearer key, masked by role, every authenticated read in the read audit, refusals never recorded as reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from infra.sandbox.http_servers import api_gateway_event
from shared.constants import reader_secret_name, tenant_salt_secret_name
from shared.read.access_log import ReadAudit
from shared.read.lookup import selector_digest
from tests.integration.conftest import Stack
from tests.integration.test_customer_view import YOUZAN_ORDER, _salt, two_shops  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("two_shops")


def _get(stack: Stack, path: str, key: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = stack.functions.invoke("lookup", api_gateway_event("GET", path, headers, b""))
    return answer["statusCode"], json.loads(answer["body"]), _headers(answer)


def _headers(answer: dict[str, Any]) -> dict[str, str]:
    """A proxy answer's headers (Powertools' REST resolver answers with multiValueHeaders)."""
    found = dict(answer.get("headers") or {})
    found.update({k: ", ".join(v) for k, v in (answer.get("multiValueHeaders") or {}).items()})
    return found


def _reads(stack: Stack) -> list[Any]:
    since = datetime.now(UTC) - timedelta(minutes=5)
    return list(ReadAudit(stack.resources.refs.state_table).records("demo", since))


def _key(secrets: dict[str, Any], reader: str) -> str:
    return str(secrets["readers"][reader]["key"])


def test_an_agent_finds_both_shops_orders_by_phone_with_the_phone_masked(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    status, body, headers = _get(
        stack, "/v1/demo/lookup?phone=%2B86%20138%200013%208000", _key(sandbox_secrets, "demo-agent")
    )
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert sorted(o["order_id"] for o in body["orders"]) == ["shopify:5001", YOUZAN_ORDER]
    assert body["customer"]["phone"] == "+86 138****8000"
    assert body["customer"]["name"] == "Lei Li"
    assert "13800138000" not in json.dumps(body) and "8613800138000" not in json.dumps(body)
    [read] = _reads(stack)
    salt = _salt(sandbox_secrets)
    assert (read.reader, read.role, read.selector_kind, read.outcome) == ("demo-agent", "agent", "phone", 200)
    assert read.selector_hmac == selector_digest("phone", "+86 138 0013 8000", "demo", salt)
    assert set(read.entity_ids) >= {body["customer_id"], "shopify:5001", YOUZAN_ORDER}


def test_a_supervisor_sees_the_phone_whole(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    status, body, _ = _get(stack, "/v1/demo/lookup?phone=13800138000", _key(sandbox_secrets, "demo-supervisor"))
    assert status == 200
    assert body["customer"]["phone"] in ("13800138000", "+8613800138000", "+86 138 0013 8000")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer demo-agent.wrong-key-of-enough-length-0000000000", "Basic Zm9vOmJhcg==", "Bearer ", "Bearer x"],
)
def test_no_or_a_wrong_key_is_401_and_nothing_is_recorded_as_read(stack: Stack, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = stack.functions.invoke(
        "lookup", api_gateway_event("GET", "/v1/demo/lookup?phone=13800138000", headers, b"")
    )
    assert answer["statusCode"] == 401
    assert json.loads(answer["body"]) == {
        "error": "unauthorized",
        "message": "a valid reader key for this tenant is required",
    }
    assert _headers(answer)["WWW-Authenticate"].startswith("Bearer")
    assert _reads(stack) == []


def test_a_key_of_another_tenant_is_401(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    status, _, _ = _get(stack, "/v1/other-shop/lookup?phone=13800138000", _key(sandbox_secrets, "demo-agent"))
    assert status == 401
    assert _reads(stack) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "ask by exactly one of"),
        ("?phone=13800138000&email=a%40example.com", "ask by exactly one of"),
        ("?colour=red", "unknown query parameter(s): colour"),
        ("?phone=", "phone: empty"),
        ("?phone=13800138000&limit=ten", "limit: a whole number"),
        ("?phone=13800138000&limit=1000", "limit must be within 1..100"),
        ("?phone=13800138000&cursor=not-a-cursor", "cursor"),
    ],
)
def test_a_malformed_query_is_400_with_what_was_wrong(
    stack: Stack, sandbox_secrets: dict[str, Any], query: str, message: str
) -> None:
    status, body, _ = _get(stack, f"/v1/demo/lookup{query}", _key(sandbox_secrets, "demo-agent"))
    assert status == 400 and body["error"] == "bad_request"
    assert message in body["message"]
    [read] = _reads(stack)
    assert read.outcome == 400


def test_nothing_found_is_404_and_recorded(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    status, body, _ = _get(stack, "/v1/demo/lookup?serial=NO-SUCH-SERIAL", _key(sandbox_secrets, "demo-agent"))
    assert (status, body) == (404, {"error": "not_found", "message": "nothing found for that serial"})
    [read] = _reads(stack)
    assert (read.selector_kind, read.outcome, read.entity_ids) == ("serial", 404, ())


def test_a_serial_finds_the_order_line_and_its_warranty(stack: Stack, sandbox_secrets: dict[str, Any]) -> None:
    status, body, _ = _get(stack, "/v1/demo/lookup?serial=SN-RV2-0001", _key(sandbox_secrets, "demo-agent"))
    assert status == 200
    [row] = body["warranty"]
    assert (row["order_id"], row["serial"], row["sku"], row["ends_on"]) == (
        YOUZAN_ORDER,
        "SN-RV2-0001",
        "ROBOT-V2",
        "2027-11-20",
    )


def test_a_tenant_without_an_identity_salt_is_a_503_naming_the_secret_and_a_customer_id_lookup_needs_none(
    stack: Stack,
) -> None:
    # a reader of a tenant whose identity salt secret was never created (a half-configured tenant)
    prefix = stack.cfg.secrets_prefix
    key = "acme-agent." + "k" * 40
    boto3.client("secretsmanager").create_secret(
        Name=reader_secret_name(prefix, "acme-agent"),
        SecretString=json.dumps({"tenant": "acme", "role": "agent", "keys": [key]}),
    )
    status, body, _ = _get(stack, "/v1/acme/lookup?phone=13800138000", key)
    salt_secret = tenant_salt_secret_name(prefix, "acme")
    assert (status, body["error"]) == (503, "not_configured")
    assert salt_secret in body["message"] and "13800138000" not in body["message"]
    # a customer id is read as it is: no salt, so an answer (nothing found here), not a 503
    status, body, _ = _get(stack, "/v1/acme/lookup?customer_id=cus_1", key)
    assert (status, body["error"]) == (404, "not_found")
    since = datetime.now(UTC) - timedelta(minutes=5)
    reads = sorted(ReadAudit(stack.resources.refs.state_table).records("acme", since), key=lambda r: r.at)
    assert [(r.selector_kind, r.selector_hmac, r.outcome) for r in reads] == [
        ("phone", None, 503),
        ("customer_id", None, 404),
    ]
