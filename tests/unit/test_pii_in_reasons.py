"""Reasons (quarantine, dead letters) and log lines name field paths and error kinds, never the values:
a payload's values are personal data (issue 13, finding 7)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch import process_partial_response
from pydantic import BaseModel, ValidationError, field_validator

from shared.adapters.dead_letter import DeadLetteringProcessor, PermanentFailure, describe_failure
from shared.errors import NormalisationError
from shared.models import InboxMessage
from shared.observability import logger
from shared.sources.amazon import AmazonSpApi
from shared.sources.base import describe_error
from shared.sources.inhouse import StandardWebhooksSource
from shared.sources.shopify import Shopify
from shared.sources.youzan import Youzan

PII = "Wang Xiaoming 13912345678"
# What must never show: the planted name, the phone number, an e-mail address.
LEAKS = re.compile(r"Wang|Xiaoming|13912345678|王小明|[\w.+-]+@[\w-]+\.[\w.]+")


def _raised(fn: Any) -> BaseException:
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


class _Line(BaseModel):
    quantity: int


class _Checked(BaseModel):
    status: str

    @field_validator("status")
    @classmethod
    def _known(cls, value: str) -> str:
        raise ValueError(f"unknown status {value!r}")  # a validator quoting its input, as people write them


# (what raised, the reason describe_error gives)
CASES = [
    (lambda: int(PII), "ValueError"),
    (lambda: Decimal(PII), "InvalidOperation"),
    (lambda: {"paid": 1}[PII], "KeyError"),
    (lambda: {"a": 1}["currency"], "missing field 'currency'"),
    (lambda: [][int("3")], "IndexError"),
    (lambda: PII + 1, "TypeError"),  # type: ignore[operator]
    (
        lambda: _Line.model_validate({"quantity": PII}),
        "quantity: Input should be a valid integer, unable to parse string as an integer",
    ),
    (lambda: _Checked.model_validate({"status": PII}), "status: value_error"),
]


@pytest.mark.parametrize(("raise_it", "reason"), CASES)
def test_describe_error_names_the_field_and_the_kind_never_the_value(raise_it: Any, reason: str) -> None:
    assert describe_error(_raised(raise_it)) == reason  # type: ignore[arg-type]


@pytest.mark.parametrize(("raise_it", "reason"), CASES)
def test_a_dead_letter_reason_names_the_kind_never_the_value(raise_it: Any, reason: str) -> None:
    error = _raised(raise_it)
    expected = f"ValidationError (1): {reason}" if isinstance(error, ValidationError) else reason
    assert describe_failure(error) == expected


def test_a_permanent_failure_wrapping_a_validation_error_keeps_its_words_but_not_the_input() -> None:
    try:
        try:
            _Line.model_validate({"quantity": PII})
        except ValidationError as exc:
            raise PermanentFailure(f"not a configured job: {exc}") from exc
    except PermanentFailure as failure:
        described = describe_failure(failure)
    assert described == (
        "PermanentFailure: not a configured job: ValidationError (1): "
        "quantity: Input should be a valid integer, unable to parse string as an integer"
    )


def test_a_permanent_failure_of_our_own_words_is_kept_with_phone_and_email_masked() -> None:
    described = describe_failure(PermanentFailure("robot ops answered errcode 93000 for wang@example.cn"))
    assert described == "PermanentFailure: robot ops answered errcode 93000 for w***@example.cn"


NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _message(source: str, topic: str) -> InboxMessage:
    return InboxMessage(
        source=source,
        tenant="demo",
        dedupe_key=f"{source}:demo:ev-1",
        source_event_id="ev-1",
        topic=topic,
        received_at=NOW,
        headers={},
        body_sha256=hashlib.sha256(b"{}").hexdigest(),
        archive_key="raw/x",
        body="{}",
    )


def _order(**changes: Any) -> dict[str, Any]:
    with open("events/shopify_orders_create.json", encoding="utf-8") as sample:
        order: dict[str, Any] = json.load(sample)["body"]
    return {**order, **changes}


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (
            _order(line_items=[{"id": 1, "sku": "X", "quantity": PII, "price": "1.00"}]),
            "orders/create payload is not usable: ValueError",
        ),
        (_order(total_price="wang.xiaoming@example.cn"), "orders/create payload is not usable: InvalidOperation"),
        (
            _order(financial_status=PII),
            "orders/create payload is not usable: financial_status: not a known value",
        ),
    ],
)
def test_a_shopify_order_full_of_personal_data_is_quarantined_naming_no_value(
    order: dict[str, Any], reason: str
) -> None:
    with pytest.raises(NormalisationError) as raised:
        Shopify().normalise(_message("shopify", "orders/create"), order)
    assert raised.value.reason == reason


def test_an_inhouse_observation_missing_a_field_is_quarantined_naming_the_field_not_the_item() -> None:
    with pytest.raises(NormalisationError) as raised:
        StandardWebhooksSource("erp").normalise(_message("erp", "observation"), [{"entity_id": PII}])
    assert raised.value.reason == "observation 0: missing field 'entity_type'"


def _look_up(table: dict[str, Any], key: Any) -> Any:
    return table[key]  # a key that comes from data (a payload's value, a mapping), not written in the code


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        # the shape of a field name (lower-case snake, kebab or camel case) or of a status code (upper-case
        # words joined by "_"): no personal value is written like that, and operators need the name
        ("currency", "missing field 'currency'"),
        ("entity_type", "missing field 'entity_type'"),
        ("orderStatus", "missing field 'orderStatus'"),
        ("webhook-id", "missing field 'webhook-id'"),
        ("WAIT_GROUP", "missing field 'WAIT_GROUP'"),
        ("TRADE_CLOSED_BY_USER", "missing field 'TRADE_CLOSED_BY_USER'"),
        # the shape of a name: a payload's value used as a key is not quoted
        ("WANG", "KeyError"),
        ("Wang", "KeyError"),
        ("XiaomingWang", "KeyError"),
        ("Wang_Xiaoming", "KeyError"),
        ("wang xiaoming", "KeyError"),
        ("a" * 41, "KeyError"),
        ("id_13912345678", "KeyError"),
        (3, "KeyError"),
    ],
)
def test_a_key_from_data_is_quoted_only_when_shaped_like_a_field_name_or_a_code(key: Any, reason: str) -> None:
    assert describe_error(_raised(lambda: _look_up({}, key))) == reason  # type: ignore[arg-type]


def test_a_field_name_written_in_the_code_is_quoted_whatever_its_case() -> None:
    change: dict[str, Any] = {}
    assert describe_error(_raised(lambda: change["AmazonOrderId"])) == "missing field 'AmazonOrderId'"  # type: ignore[arg-type]


def _amazon(**summary: Any) -> dict[str, Any]:
    with open("events/amazon_order_change.json", encoding="utf-8") as sample:
        body: dict[str, Any] = json.load(sample)["body"]
    body["Payload"]["OrderChangeNotification"]["Summary"].update(summary)
    return body


def test_an_amazon_status_that_is_a_name_is_not_quoted_but_a_missing_field_is() -> None:
    with pytest.raises(NormalisationError) as raised:
        AmazonSpApi().normalise(_message("amazon", "ORDER_CHANGE"), _amazon(OrderStatus="Wang"))
    assert raised.value.reason == "ORDER_CHANGE is not usable: KeyError"
    missing = _amazon()
    del missing["Payload"]["OrderChangeNotification"]["AmazonOrderId"]
    with pytest.raises(NormalisationError) as raised:
        AmazonSpApi().normalise(_message("amazon", "ORDER_CHANGE"), missing)
    assert raised.value.reason == "ORDER_CHANGE is not usable: missing field 'AmazonOrderId'"


def test_a_youzan_status_that_is_a_name_is_not_quoted() -> None:
    with open("events/youzan_trade_order_state.json", encoding="utf-8") as sample:
        push: dict[str, Any] = {**json.load(sample)["body"], "status": "WANG"}
    with pytest.raises(NormalisationError) as raised:
        Youzan().normalise(_message("youzan", "TRADE_ORDER_STATE"), push)
    assert raised.value.reason == "TRADE_ORDER_STATE message is not usable: KeyError"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the functions' one logger writes, as CloudWatch would get it."""
    handler = logger.registered_handler
    stream = io.StringIO()
    previous = handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    handler.setStream(previous)  # type: ignore[attr-defined]


def test_a_record_that_fails_is_logged_with_its_traceback_but_not_the_value(log_lines: io.StringIO) -> None:
    """Powertools' batch processor logs each failed record's exception (a warning with its
    traceback): the exception text that quotes the value must not reach the log."""

    def record_handler(record: Any) -> None:
        order = json.loads(record.body)
        int(order["quantity"])

    def record(message_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message_id,
            "receiptHandle": "r",
            "body": json.dumps(body),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:aftersync-dev-orders",
            "awsRegion": "eu-west-1",
        }

    event = {
        "Records": [
            record("m-1", {"quantity": PII, "email": "wang.xiaoming@example.cn"}),
            record("m-2", {"quantity": "2"}),
        ]
    }
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=DeadLetteringProcessor(5, logger=logger)
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    [line] = [json.loads(x) for x in log_lines.getvalue().splitlines()]
    assert line["message"] == "Record processing exception; skipping this record"
    assert line["exception_name"] == "ValueError"
    assert 'int(order["quantity"])' in line["exception"]  # the traceback is still there for the operator
    assert LEAKS.search(json.dumps(line, ensure_ascii=False)) is None, line
