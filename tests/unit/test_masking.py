"""Masking of personal data in free text and in JSON documents (issue 13, finding 7, review):
each phone number is masked wherever it stands, ids, dates and amounts stay readable, and a JSON
document's strings are free text unless they are ids."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest

from shared.masking import mask_json, mask_text

EVENTS = Path(__file__).parents[2] / "events"


def _sample(name: str) -> Any:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))["body"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # next to other digit groups: each phone is its own
        ("+86 139 1234 5678 2024-01-15", "***5678 2024-01-15"),
        ("contacts 13912345678 13912345679", "contacts ***5678 ***5679"),
        ("13912345678 820982911946154508", "***5678 820982911946154508"),
        ("+86 13912345678 13912345679", "***5678 ***5679"),
        ("2024-01-15 13912345678 10:30", "2024-01-15 ***5678 10:30"),
        # as people write them
        ("call 139 1234 5678 or 010-1234-5678", "call ***5678 or ***5678"),
        ("(021) 5555-1234", "***1234"),
        ("+1 (555) 123-4567", "***4567"),
        ("+86-139-1234-5678", "***5678"),
        ("+8613912345678", "***5678"),
        ("派件员 王小明 电话13912345678", "派件员 王小明 电话***5678"),
        ("tel:13912345678, Tel13912345678", "tel:***5678, Tel***5678"),
        ("ends in 13912345678.", "ends in ***5678."),
        ("１３９１２３４５６７８", "***５６７８"),
        ("1234567", "***4567"),
        # joined to a word by a dash, the number is still its own
        ("Mei-13912345678, x-139-1234-5678", "Mei-***5678, x-***5678"),
        ("SF1234567890123-13912345678", "SF1234567890123-***5678"),
    ],
)
def test_each_phone_number_is_masked_wherever_it_stands(text: str, shown: str) -> None:
    assert mask_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "order 820982911946154508 at 2026-11-20T10:00:00+08:00",
        "2024-01-15 10:00:00, 15.01.2024 - 20.01.2024",
        "total 598.00 CNY, refund 12345678.90",
        "tracking SF1234567890123, tid E20261121103015012300001",
        "message 123e4567-e89b-12d3-a456-426614174000",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa gid://shopify/Order/820982911946154508",
        "errcode 93000 for #1001",
        "User: arn:aws:sts::123456789012:assumed-role/aftersync-dev-ingest/fn is not authorized",
    ],
)
def test_ids_dates_times_and_amounts_stay_readable(text: str) -> None:
    assert mask_text(text) == text


def test_a_courier_phone_in_a_kuaidi100_checkpoint_is_masked_and_nothing_else_changes() -> None:
    push = _sample("kuaidi100_push_signed")
    push["lastResult"]["data"][1]["context"] = "派件员 王小明 电话13912345678 正在派件"
    expected = copy.deepcopy(push)
    expected["lastResult"]["data"][1]["context"] = "派件员 王小明 电话***5678 正在派件"
    assert json.loads(mask_json(json.dumps(push, ensure_ascii=False))) == expected


def test_a_phone_in_a_zendesk_subject_is_masked_and_the_ids_stay_exact() -> None:
    event = _sample("zendesk_ticket_status_changed")
    event["detail"]["subject"] = "call +86 139 1234 5678 about the X1"
    expected = copy.deepcopy(event)
    expected["detail"]["subject"] = "call ***5678 about the X1"
    shown = json.loads(mask_json(json.dumps(event, ensure_ascii=False)))
    assert shown == expected
    assert (shown["detail"]["assignee_id"], shown["account_id"]) == ("1512863381481", 22129848)


def test_shopify_note_attribute_values_are_free_text() -> None:
    order = _sample("shopify_orders_create")
    order["note_attributes"] = [
        {"name": "Delivery contact", "value": "13912345678"},
        {"name": "Gift message", "value": "from Mei, call 139 1234 5678"},
    ]
    shown = json.loads(mask_json(json.dumps(order, ensure_ascii=False)))
    assert [a["value"] for a in shown["note_attributes"]] == ["***5678", "from Mei, call ***5678"]
    assert (shown["id"], shown["total_price"], shown["created_at"]) == (
        820982911946154508,
        "598.00",
        "2026-11-20T10:00:00+08:00",
    )


def test_a_url_encoded_youzan_msg_is_masked_by_field() -> None:
    push = _sample("youzan_trade_order_state")
    msg = {"tid": "E20261121103015012300001", "payment": "299.00", "receiver_name": "王小明", "buyer_phone": "139"}
    push["msg"] = quote_plus(json.dumps(msg, ensure_ascii=False, separators=(",", ":")))
    shown = json.loads(mask_json(json.dumps(push, ensure_ascii=False)))
    assert shown["msg"] == quote_plus(
        json.dumps({**msg, "receiver_name": "***", "buyer_phone": "***"}, ensure_ascii=False, separators=(",", ":"))
    )
    assert {k: v for k, v in shown.items() if k != "msg"} == {k: v for k, v in push.items() if k != "msg"}


def test_digits_only_strings_are_kept_under_id_and_amount_names_and_masked_under_any_other() -> None:
    document = {
        "order_no": "202611210001",
        "nu": "773012345678901",
        "tracking_number": "773012345678902",
        "assignee_id": "1512863381481",
        "total_fee": "1234567",
        "update_time": "1763604000",
        "value": "13912345678",
        "tags": ["13912345678", "vip"],
        "kdt_id": 91234567,
        "created": 1763604000,
    }
    assert json.loads(mask_json(json.dumps(document))) == {
        **document,
        "value": "***5678",
        "tags": ["***5678", "vip"],
    }


def test_one_token_ids_under_id_names_stay_exact_though_they_look_like_numbers() -> None:
    document = {
        "AmazonOrderId": "114-3941689-8772232",
        "admin_graphql_api_id": "gid://shopify/Return/945000954",
        "ref": "shopify:return:945000954",
        "order_no": "139-1234-5678",
        "note": "114-3941689-8772232",
    }
    assert json.loads(mask_json(json.dumps(document))) == {**document, "note": "114-***1689-***2232"}
