"""DLQ tooling logic and the masking of personal data in what operators see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.dlq import DeadLetterQueue, dead_letter_queues, peek, redrive
from shared.masking import mask_text

ORDER = json.loads((Path(__file__).parents[2] / "events" / "shopify_orders_create.json").read_text())["body"]


def _shown_body(body: str) -> str:
    """The body an operator sees with ``aftersync dlq show --body``: read from a DLQ on moto."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=body)
        [entry] = peek(sqs, DeadLetterQueue("orders-dlq", url, "orders"), with_body=True)
    return str(entry["body"])


def test_free_text_bodies_have_emails_and_phone_numbers_masked() -> None:
    text = "call alice.wong@example.com or +86 139 1234 5678 about #1001"
    assert _shown_body(text) == "call a***@example.com or ***5678 about #1001"


def test_free_text_keeps_ids_longer_than_any_phone_number() -> None:
    text = "order '820982911946154508' is not synced yet; call 13912345678"
    assert mask_text(text) == "order '820982911946154508' is not synced yet; call ***5678"


def test_a_json_body_is_masked_by_field_and_stays_valid_json_with_its_ids_and_amounts() -> None:
    order = {
        **ORDER,
        "note": "leave it with 王小明, 13912345678",
        "billing_address": {"first_name": "Xiaoming", "last_name": "Wang", "address1": "88 Century Avenue"},
    }
    shown: dict[str, Any] = json.loads(_shown_body(json.dumps(order, ensure_ascii=False)))
    assert (shown["id"], shown["customer"]["id"], shown["line_items"][0]["id"]) == (
        820982911946154508,
        115310627314723954,
        866550311766439020,
    )
    assert (shown["total_price"], shown["currency"], shown["financial_status"], shown["created_at"]) == (
        "598.00",
        "CNY",
        "paid",
        "2026-11-20T10:00:00+08:00",
    )
    assert (shown["email"], shown["phone"]) == ("***", "***")
    assert shown["customer"] == {
        "id": 115310627314723954,
        "email": "***",
        "phone": "***",
        "first_name": "***",
        "last_name": "***",
    }
    assert shown["shipping_address"] == {
        "name": "***",
        "address1": "***",
        "city": "***",
        "country_code": "***",
        "phone": "***",
    }
    assert shown["billing_address"] == {"first_name": "***", "last_name": "***", "address1": "***"}
    assert shown["note"] == "leave it with 王小明, ***5678"  # free text: the regex finds the phone, not the name


def test_json_inside_a_json_string_is_masked_too() -> None:
    """A quarantined or dead-lettered envelope carries the webhook body as a JSON string."""
    envelope = {"message_id": "m-1", "reason": "ValueError", "body": json.dumps(ORDER)}
    shown = json.loads(_shown_body(json.dumps(envelope)))
    inner = json.loads(shown["body"])
    assert (shown["message_id"], inner["id"], inner["customer"]["last_name"], inner["email"]) == (
        "m-1",
        820982911946154508,
        "***",
        "***",
    )
    assert "Snow" not in shown["body"] and "jon@" not in shown["body"]


def test_each_dlq_knows_where_its_messages_go_back_to() -> None:
    urls = {p: f"https://sqs/{p}" for p in ("inbox", "inbox-dlq", "orders", "orders-dlq", "alarms", "alarm-topics-dlq")}
    urls |= {"publish-dlq": "https://sqs/publish-dlq", "events-dlq": "https://sqs/events-dlq"}
    assert {d.name: d.source for d in dead_letter_queues(urls)} == {
        "alarm-topics-dlq": "alarms",
        "events-dlq": None,
        "inbox-dlq": "inbox",
        "orders-dlq": "orders",
        "publish-dlq": None,
    }


def test_a_dlq_whose_messages_cannot_go_back_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(ValueError, match=r"publish-dlq cannot be redriven: stream failure records .*aftersync replay"):
        redrive(object(), DeadLetterQueue("publish-dlq", "u", None), "s")
