"""Change-only delivery from the current state against what the target acknowledged."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from infra.config import EnvironmentConfig, load_environment
from infra.sandbox.lambda_runtime import Functions, sqs_record
from infra.sandbox.resources import SandboxResources, create_resources
from infra.wiring import function_environment
from shared.adapters.circuit import DynamoGuards
from shared.adapters.http import Response
from shared.adapters.robot_slots import DynamoMinuteSlots
from shared.delivery.deliver import DeliveryRejected, deliver_change
from shared.delivery.targets import (
    OAuth2ClientCredentials,
    RetryPolicy,
    StandardWebhooksAuth,
    TargetConfig,
    pending_changes,
)
from shared.errors import DeliveryFailed
from shared.models import EntityChanged
from shared.sources.base import Headers
from shared.sources.inhouse import StandardWebhooksSource
from shared.state.policy import default_policy
from shared.state.sync import apply_observation
from tests.fakes import Clock, FakeHttp, FakeStateStore, observed

CRM = TargetConfig(name="crm", url="https://crm.example.com/in", entity_types=("order",))
CREDENTIALS = {"header": "X-Api-Key", "value": "k"}


def changed(version: int) -> EntityChanged:
    return EntityChanged(
        tenant="t",
        entity_type="order",
        entity_id="shopify:1",
        version=version,
        event_id="e",
        origin_source="shopify",
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
        changed={},
    )


def test_first_delivery_sends_everything_then_only_what_changed() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    first = deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    assert (first.outcome, first.version) == ("sent", 1)
    assert "status" in json.loads(http.requests[0][1])["changes"]
    apply_observation(observed("b", 5, note="ring twice"), store, default_policy())
    second = deliver_change(changed(2), CRM, store, http, CREDENTIALS)
    url, body, headers = http.requests[1]
    payload = json.loads(body)
    assert (second.outcome, second.fields) == ("sent", ("note",))
    assert payload == {
        "tenant": "t",
        "entity_type": "order",
        "entity_id": "shopify:1",
        "version": 2,
        "identifiers": {"order_id": "1", "order_number": "#1", "channel": "shopify"},
        "changes": {"note": "ring twice"},
    }
    assert (url, headers["X-Api-Key"]) == ("https://crm.example.com/in", "k")


def test_a_replayed_trigger_sends_nothing() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    again = deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    assert again.outcome == "already_acknowledged"
    assert len(http.requests) == 1


def test_triggers_arriving_out_of_order_still_deliver_every_change_once() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    apply_observation(observed("b", 5, note="x"), store, default_policy())
    assert deliver_change(changed(2), CRM, store, http, CREDENTIALS).outcome == "sent"
    assert deliver_change(changed(1), CRM, store, http, CREDENTIALS).outcome == "already_acknowledged"
    assert json.loads(http.requests[0][1])["changes"]["note"] == "x"


def test_a_failing_target_raises_and_records_no_ack() -> None:
    store, http = FakeStateStore(), FakeHttp(status=503)
    apply_observation(observed("a", 0), store, default_policy())
    with pytest.raises(DeliveryFailed, match=r"target crm answered HTTP 503 \(a 11-byte body, not kept\)"):
        deliver_change(changed(1), CRM, store, http, CREDENTIALS)
    assert store.acks == {}


def test_a_value_that_came_from_the_target_is_not_echoed_back() -> None:
    to_send, hashes = pending_changes(
        CRM, {"note": "from crm", "status": "open"}, {"note": "crm", "status": "shopify"}, {}
    )
    assert to_send == {"status": "open"}
    assert set(hashes) == {"note", "status"}


def test_field_selection_limits_what_is_sent() -> None:
    only_status = CRM.model_copy(update={"fields": ("status",)})
    to_send, _ = pending_changes(only_status, {"note": "n", "status": "open"}, {}, {})
    assert to_send == {"status": "open"}


def _one_order(store: FakeStateStore) -> None:
    apply_observation(observed("a", 0), store, default_policy())


def test_429_is_retried_after_the_targets_retry_after_and_503_after_a_backoff() -> None:
    store = FakeStateStore()
    _one_order(store)
    with pytest.raises(DeliveryFailed) as limited:
        deliver_change(changed(1), CRM, store, FakeHttp(429, {"retry-after": "30"}), CREDENTIALS)
    assert limited.value.retry_after == 30
    with pytest.raises(DeliveryFailed) as down:
        deliver_change(changed(1), CRM, store, FakeHttp(503), CREDENTIALS)
    assert down.value.retry_after is None and store.acks == {}
    with pytest.raises(DeliveryFailed, match="HTTP 599: connection failed"):
        deliver_change(changed(1), CRM, store, FakeHttp(599, text="connection failed"), CREDENTIALS)


def test_a_4xx_that_cannot_succeed_is_rejected_with_the_response_for_the_dlq() -> None:
    store = FakeStateStore()
    _one_order(store)
    with pytest.raises(DeliveryRejected, match=r"target crm answered HTTP 422 \(a 24-byte body, not kept\)"):
        deliver_change(changed(1), CRM, store, FakeHttp(422, text='{"error": "unknown sku"}'), CREDENTIALS)
    assert store.acks == {}


def test_backoff_grows_exponentially_with_jitter_and_stays_under_the_cap() -> None:
    policy = RetryPolicy(base_seconds=5, max_seconds=900)
    rng = random.Random(1)
    for attempt, cap in ((1, 5), (2, 10), (3, 20), (5, 80), (12, 900)):
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(cap / 2 - 1 <= d <= cap for d in delays), (attempt, delays[:5])
        assert len(set(delays)) > 1 or cap <= 5  # jitter spreads the retries of many messages


def test_a_field_map_renames_fields_translates_codes_and_reports_what_is_missing() -> None:
    erp = TargetConfig(
        name="erp",
        url="https://erp.example.com/in",
        entity_types=("order",),
        field_map={"orderNo": "order_number", "state": "status", "memo": "note"},
        value_maps={"status": {"open": "10", "closed": "90"}},
    )
    store, http = FakeStateStore(), FakeHttp()
    _one_order(store)  # the order has no note
    result = deliver_change(changed(1), erp, store, http, CREDENTIALS)
    assert json.loads(http.requests[0][1])["changes"] == {"orderNo": "#1", "state": "10"}
    assert (result.outcome, result.missing) == ("sent", ("note",))  # reported, and not sent as null


def test_a_field_map_naming_an_unknown_canonical_field_fails_the_config_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"field_map: \['colour'\] are not fields of \['order'\]"):
        TargetConfig(name="erp", url="https://e.example", entity_types=("order",), field_map={"c": "colour"})
    with pytest.raises(ValidationError, match=r"value_maps: \['note'\] are not fields this target is sent"):
        TargetConfig(
            name="erp",
            url="https://e.example",
            entity_types=("order",),
            field_map={"s": "status"},
            value_maps={"note": {}},
        )


def test_standard_webhooks_signed_deliveries_verify_with_the_receivers_own_check() -> None:
    signed_target = CRM.model_copy(update={"auth": StandardWebhooksAuth(kind="standard_webhooks")})
    secret = "whsec_dGFyZ2V0LXNpZ25pbmcta2V5LWZvci10ZXN0cyE="
    store, http = FakeStateStore(), FakeHttp()
    _one_order(store)
    deliver_change(changed(1), signed_target, store, http, {"secret": secret})
    _, body, headers = http.requests[0]
    # The receiving side checks it the way Aftersync checks in-house systems: same scheme, same code
    StandardWebhooksSource("crm").verify(Headers(headers), body, [secret], datetime.now(UTC))
    assert headers["webhook-id"].startswith("msg_")


def test_oauth2_tokens_are_fetched_once_and_reused_until_they_expire() -> None:
    class TokenAndTarget(FakeHttp):
        def post(
            self, url: str, body: bytes, headers: dict[str, str], timeout: float, method: str = "POST"
        ) -> Response:
            self.requests.append((url, body, headers))
            if url == "https://auth.example.com/token":
                return Response(200, json.dumps({"access_token": "tok-1", "expires_in": 3600}), {})
            return Response(200, "ok", {})

    oauth = CRM.model_copy(
        update={
            "name": "oms",
            "auth": OAuth2ClientCredentials(
                kind="oauth2_client_credentials", token_url="https://auth.example.com/token", scope="orders"
            ),
        }
    )
    store, http = FakeStateStore(), TokenAndTarget()
    _one_order(store)
    deliver_change(changed(1), oauth, store, http, {"client_id": "id", "client_secret": "s"})
    apply_observation(observed("b", 5, note="again"), store, default_policy())
    deliver_change(changed(2), oauth, store, http, {"client_id": "id", "client_secret": "s"})
    urls = [u for u, _, _ in http.requests]
    assert urls == ["https://auth.example.com/token", "https://crm.example.com/in", "https://crm.example.com/in"]
    assert http.requests[0][1] == b"grant_type=client_credentials&client_id=id&client_secret=s&scope=orders"
    assert all(h["Authorization"] == "Bearer tok-1" for _, _, h in http.requests[1:])


def test_a_wecom_group_target_gets_the_change_as_markdown_and_its_errcodes_decide() -> None:
    group = TargetConfig(name="ops-group", kind="wecom", url="https://qyapi.weixin.qq.com", entity_types=("order",))
    store, http = FakeStateStore(), FakeHttp(200, text='{"errcode": 0, "errmsg": "ok"}')
    _one_order(store)
    result = deliver_change(changed(1), group, store, http, {"key": "robot-key"})
    url, body, _ = http.requests[0]
    assert url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key"
    content = json.loads(body)["markdown"]["content"]
    assert content.startswith("**order shopify:1** · version 1 (t)\n> channel: shopify\n")
    assert (result.outcome, store.acks != {}) == ("sent", True)
    apply_observation(observed("b", 5, note="x"), store, default_policy())
    with pytest.raises(DeliveryFailed, match="errcode 45009") as limited:
        deliver_change(changed(2), group, store, FakeHttp(200, text='{"errcode": 45009}'), {"key": "robot-key"})
    assert limited.value.retry_after == 60
    with pytest.raises(DeliveryRejected, match="errcode 93000"):
        deliver_change(changed(2), group, store, FakeHttp(200, text='{"errcode": 93000}'), {"key": "revoked"})


OMS_RECORDS = {
    "name": "oms",
    "url": "https://oms.example.com/api/",
    "entity_types": ["order"],
    "method": "PATCH",
    "path": "/orders/{order_number}",
    "body": "changes",
    "wrap": "order",
    "field_map": {"state": "status", "remark": "note", "ref": "order_id"},
    "value_types": {"order_id": "integer"},
}


def test_a_rest_api_of_records_gets_its_method_its_record_path_and_the_changes_alone() -> None:
    target = TargetConfig.model_validate(OMS_RECORDS)
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    assert deliver_change(changed(1), target, store, http, CREDENTIALS).outcome == "sent"
    apply_observation(observed("b", 5, note="ring twice"), store, default_policy())
    deliver_change(changed(2), target, store, http, CREDENTIALS)
    sent = [(url, json.loads(body)) for url, body, _ in http.requests]
    assert http.methods == ["PATCH", "PATCH"]
    assert sent == [
        ("https://oms.example.com/api/orders/%231", {"order": {"state": "open", "ref": 1}}),  # "#1", URL-encoded
        ("https://oms.example.com/api/orders/%231", {"order": {"remark": "ring twice"}}),
    ]


def test_a_record_path_or_a_value_the_target_cannot_take_is_rejected_for_the_dlq() -> None:
    store = FakeStateStore()
    apply_observation(observed("a", 0, order_id="A-1"), store, default_policy())
    with pytest.raises(DeliveryRejected, match="target oms: order_id: not an integer, which target oms requires"):
        deliver_change(changed(1), TargetConfig.model_validate(OMS_RECORDS), store, FakeHttp(), CREDENTIALS)
    assert store.acks == {}
    by_id = TargetConfig.model_validate({**OMS_RECORDS, "path": "/orders/{order_id}", "value_types": {}})
    other = FakeStateStore()
    apply_observation(observed("a", 0, order_id=".."), other, default_policy())
    with pytest.raises(DeliveryRejected, match=r"path: order_id '\.\.' would leave the path"):
        deliver_change(changed(1), by_id, other, FakeHttp(), CREDENTIALS)
    assert other.acks == {}


def test_a_target_for_some_ids_only_is_not_sent_the_others() -> None:
    store, http = FakeStateStore(), FakeHttp()
    apply_observation(observed("a", 0), store, default_policy())
    woo_only = CRM.model_copy(update={"id_prefixes": ("woocommerce:",)})
    assert deliver_change(changed(1), woo_only, store, http, CREDENTIALS).outcome == "not_wanted"
    assert http.requests == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "/orders/{nope}"}, "path: \\['nope'\\] are not fields of every one of \\['order'\\]"),
        ({"path": "/orders/{"}, "path: Single '{' encountered"),
        ({"path": "orders"}, "path\n  String should match pattern"),
        ({"body": "envelope"}, 'wrap: only with body "changes"'),
        ({"value_types": {"channel": "integer"}}, "value_types: \\['channel'\\] are not fields this target is sent"),
        ({"method": "DELETE"}, "method\n  Input should be 'POST', 'PUT' or 'PATCH'"),
    ],
)
def test_a_malformed_record_api_target_names_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TargetConfig.model_validate({**OMS_RECORDS, **change})


def test_only_http_targets_take_a_request_shape() -> None:
    with pytest.raises(ValidationError, match="\\['method', 'path'\\]: only for http targets, not wecom"):
        TargetConfig.model_validate(
            {
                "name": "group",
                "kind": "wecom",
                "url": "https://qyapi.weixin.qq.com",
                "entity_types": ["ticket"],
                "method": "PUT",
                "path": "/x",
            }
        )


class DeliverOnMoto:
    """The deliver function's queues, table and environment on moto; the real handler and processor."""

    def __init__(self, cfg: EnvironmentConfig, resources: SandboxResources) -> None:
        self.cfg, self.resources = cfg, resources
        self.functions = Functions(cfg.region, cfg.resource("fn"))
        self.sqs = boto3.client("sqs")

    def send(self, target: str, entity_type: str, attempts: int | None) -> None:
        changed = EntityChanged(
            tenant="demo",
            entity_type=entity_type,
            entity_id="shopify:1" if entity_type == "order" else "zendesk:1",
            version=1,
            event_id="e",
            origin_source="shopify" if entity_type == "order" else "zendesk",
            occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
            changed={},
        )
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "entity.changed",
            "source": "aftersync",
            "account": "123456789012",
            "time": "2026-11-20T00:00:00Z",
            "region": self.cfg.region,
            "resources": [],
            "detail": changed.model_dump(mode="json"),
        }
        extra: dict[str, Any] = {}
        if attempts is not None:
            extra["MessageAttributes"] = {"attempts": {"DataType": "Number", "StringValue": str(attempts)}}
        self.sqs.send_message(QueueUrl=self.url(target), MessageBody=json.dumps(envelope), **extra)

    def url(self, target: str) -> str:
        return self.resources.queue_urls[f"deliver-{target}"]

    def receive(self, target: str) -> list[dict[str, Any]]:
        return list(
            self.sqs.receive_message(
                QueueUrl=self.url(target),
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
        )

    def invoke(self, target: str, messages: list[dict[str, Any]]) -> Any:
        """As the event source mapping does: the records the response does not name as failed are deleted."""
        arn = self.resources.queue_arns[f"deliver-{target}"]
        response = self.functions.invoke(
            "deliver", {"Records": [sqs_record(m, arn, self.cfg.region) for m in messages]}
        )
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url(target), ReceiptHandle=message["ReceiptHandle"])
        return response


@pytest.fixture
def deliver_on_moto(sandbox_secrets: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[DeliverOnMoto]:
    cfg = load_environment("dev")
    with mock_aws():
        resources = create_resources(cfg, sandbox_secrets, visibility_timeout=30)
        for name, value in function_environment("deliver", cfg, resources.refs).items():
            monkeypatch.setenv(name, value)
        yield DeliverOnMoto(cfg, resources)


@pytest.mark.parametrize(
    ("target", "entity_type", "use_up"),
    [
        # the ERP takes 20 requests a second: this second's are used up
        ("erp", "order", lambda env, t, now: DynamoGuards(env.resources.refs.state_table).take(t, now)),
        # a WeCom robot takes 20 messages a minute: this minute's are used up
        (
            "service-group",
            "ticket",
            lambda env, t, now: DynamoMinuteSlots(env.resources.refs.state_table).take(
                t.name, datetime.fromtimestamp(now, UTC)
            ),
        ),
    ],
    ids=["rate-limit", "wecom-minute-cap"],
)
def test_a_wait_for_a_limit_uses_no_attempt_and_is_no_failure(
    deliver_on_moto: DeliverOnMoto, monkeypatch: pytest.MonkeyPatch, target: str, entity_type: str, use_up: Any
) -> None:
    env = deliver_on_moto
    clock = Clock(monkeypatch, Clock.next_minute_plus(10))
    config = next(t for t in env.cfg.targets if t.name == target)
    for _ in range(100):  # the real limiter, until it says no
        if not use_up(env, config, clock.now):
            break
    else:
        raise AssertionError(f"the limit of {target} never ran out")
    env.send(target, entity_type, attempts=3)  # three real attempts before this one
    [message] = env.receive(target)
    response = env.invoke(target, [message])
    # Not a failure: the record is reported processed (deleted), and a copy waits in the queue
    assert response == {"batchItemFailures": []}
    totals = env.functions.metric_totals()
    assert (totals.get("RecordDeferred"), totals.get("RecordFailed"), totals.get("RecordProcessed")) == (1, None, None)
    clock.advance(62)  # past any wait for a second's or a minute's slot
    [copy] = env.receive(target)
    assert copy["Body"] == message["Body"] and copy["MessageId"] != message["MessageId"]
    # The wait used none of the target's attempts: still the three real ones
    assert copy["MessageAttributes"]["attempts"]["StringValue"] == "3"
    assert copy["Attributes"]["ApproximateReceiveCount"] == "1"
    assert env.receive(target) == []  # and only that one copy
