"""What an agent and a supervisor see of one customer's lookup answer: exact outputs, at every depth."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.read.masking import city_of, field_kind, mask_email, mask_for, mask_phone

CARD = {
    "customer_id": "cus_7f3a9c",
    "name": "李雷",
    "phone": "+8613812348000",
    "email": "li.lei@example.com",
    "wecom_external_user_id": "wmXyZ0123456789abcdef",
    "sources": ["shopify:4471", "youzan:88812"],
}
LOOKUP: dict[str, Any] = {
    "customer": CARD,
    "entities": {
        "order": [
            {
                "order_id": "shopify:820982911946154508",
                "source": "shopify",
                "number": "1001",
                "status": "open",
                "financial_status": "paid",
                "fulfillment_status": "fulfilled",
                "total": "5999.00",
                "currency": "CNY",
                "created_at": "2026-11-11T00:03:12Z",
                "lines": [
                    {
                        "sku": "RB-X1",
                        "title": "扫地机器人 X1",
                        "quantity": 1,
                        "serial": "SN20261111000123",
                        "warranty_months": 24,
                        "warranty_ends_on": "2028-11-11",
                    }
                ],
                "shipping_address": {
                    "name": "李雷",
                    "phone": "138 1234 8000",
                    "line1": "科技园南区深南大道10000号",
                    "line2": "腾讯大厦 5 楼",
                    "city": "深圳市",
                    "province": "广东省",
                    "postal_code": "518057",
                    "country_code": "CN",
                },
            },
            {
                "order_id": "youzan:E20261201",
                "source": "youzan",
                "number": "E20261201",
                "receiver_address": "广东省深圳市南山区科技园路1号",
                "receiver_mobile": "13812348000",
                "receiver_name": "韩梅梅",
                "receiver_zip": "518000",
                "lines": [],
            },
        ],
        "shipment": [
            {
                "shipment_id": "sf:SF1234567890123",
                "carrier": "sf",
                "tracking_number": "SF1234567890123",
                "status": "delivered",
                "last_checkpoint": {
                    "time": "2026-11-13T09:12:00Z",
                    "location": "深圳市",
                    "message": "已签收，签收人电话13812348000",
                },
                "order_id": "shopify:820982911946154508",
            }
        ],
        "ticket": [
            {
                "ticket_id": "zendesk:4521",
                "status": "open",
                "assignee": "1512863381481",
                "priority": "high",
                "subject": "Robot stopped; call me on +86 138 1234 8000 or li.lei@example.com",
            }
        ],
    },
    "warranty": [
        {
            "order_id": "shopify:820982911946154508",
            "serial": "SN20261111000123",
            "sku": "RB-X1",
            "status": "active",
            "ends_on": "2028-11-11",
            "eligible": True,
        }
    ],
    "timeline": [
        {
            "entity_type": "customer",
            "entity_id": "cus_7f3a9c",
            "version": 3,
            "source": "youzan",
            "occurred_at": "2026-12-01T08:00:00Z",
            "changes": [
                {"field": "phone", "after": "+8613812348000"},
                {"field": "email", "after": "LI.LEI@example.com"},
                {"field": "name", "after": "李雷"},
            ],
        },
        {
            "entity_type": "order",
            "entity_id": "shopify:820982911946154508",
            "version": 2,
            "source": "shopify",
            "occurred_at": "2026-11-11T00:05:00Z",
            "changes": [
                {"field": "customer_phone", "after": "13812348000"},
                {"field": "customer_email", "after": "li.lei@example.com"},
                {"field": "customer_name", "after": "Li Lei"},
                {
                    "field": "shipping_address",
                    "after": {
                        "name": "Li Lei",
                        "phone": "+1 (415) 555-2671",
                        "line1": "1600 Amphitheatre Pkwy",
                        "city": "Mountain View",
                        "province": "CA",
                        "postal_code": "94043",
                        "country_code": "US",
                    },
                },
                {"field": "status", "after": "open"},
                {"field": "note", "after": "Leave at the front desk, tel 13812348000"},
            ],
        },
    ],
    "next_cursor": "eyJwayI6ICJ4In0=",
}

AGENT_CARD = {
    "customer_id": "cus_7f3a9c",
    "name": "李雷",
    "phone": "+86 138****8000",
    "email": "l***@example.com",
    "wecom_external_user_id": "wmXyZ0123456789abcdef",
    "sources": ["shopify:4471", "youzan:88812"],
}


def agent_view() -> dict[str, Any]:
    """The lookup answer as an agent must see it: only what differs from the whole is rewritten."""
    view = copy.deepcopy(LOOKUP)
    view["customer"] = AGENT_CARD
    first, second = view["entities"]["order"]
    first["shipping_address"] = {
        "name": "李雷",
        "phone": "+86 138****8000",
        "city": "深圳市",
        "province": "广东省",
        "country_code": "CN",
    }
    second.update(
        receiver_address="广东省深圳市",
        receiver_mobile="+86 138****8000",
        receiver_name="韩梅梅",
        receiver_zip="***",
    )
    view["entities"]["shipment"][0]["last_checkpoint"]["message"] = "已签收，签收人电话***8000"
    view["entities"]["ticket"][0]["subject"] = "Robot stopped; call me on ***8000 or l***@example.com"
    customer_changes = view["timeline"][0]["changes"]
    customer_changes[0]["after"] = "+86 138****8000"
    customer_changes[1]["after"] = "L***@example.com"
    order_changes = view["timeline"][1]["changes"]
    order_changes[0]["after"] = "+86 138****8000"
    order_changes[1]["after"] = "l***@example.com"
    order_changes[3]["after"] = {
        "name": "Li Lei",
        "phone": "+1 415***2671",
        "city": "Mountain View",
        "province": "CA",
        "country_code": "US",
    }
    order_changes[5]["after"] = "Leave at the front desk, tel ***8000"
    return view


def test_an_agent_sees_contact_data_partly_addresses_down_to_the_city_and_everything_else_whole() -> None:
    before = copy.deepcopy(LOOKUP)
    assert mask_for("agent", LOOKUP) == agent_view()
    assert before == LOOKUP  # the answer itself is not changed


@pytest.mark.parametrize("role", ["supervisor", "system"])
def test_a_supervisor_or_a_system_sees_the_whole_answer(role: str) -> None:
    assert mask_for(role, LOOKUP) == LOOKUP


def test_an_unknown_role_is_masked_like_an_agent() -> None:
    assert mask_for("guest", LOOKUP) == agent_view()


def test_several_customers_for_one_phone_are_each_masked() -> None:
    family = {"matches": [{"customer_id": "cus_7f3a9c", "card": CARD}, {"customer_id": "cus_2", "card": CARD}]}
    assert mask_for("agent", family) == {
        "matches": [{"customer_id": "cus_7f3a9c", "card": AGENT_CARD}, {"customer_id": "cus_2", "card": AGENT_CARD}]
    }


def test_other_personal_data_is_hidden_from_an_agent_even_nested() -> None:
    document = {
        "id_card_no": "110101199003074514",
        "birthday": "1990-03-07",
        "browser_ip": "203.0.113.9",
        "street": "建国路88号",
        "zip": "100022",
        "receiver": {"name": "张伟", "mobile": "13912345678", "town": "建外街道", "city": "北京市"},
        "id_card": {"number": "110101199003074514", "verified": True},
        "receiver_city": "北京市",
        "phones": ["13912345678", "+44 7911 123456"],
        "email": None,
    }
    assert mask_for("agent", document) == {
        "id_card_no": "***",
        "birthday": "***",
        "browser_ip": "***",
        "street": "***",
        "zip": "***",
        "receiver": {"name": "张伟", "mobile": "+86 139****5678", "town": "***", "city": "北京市"},
        "id_card": {"number": "***", "verified": True},
        "receiver_city": "北京市",
        "phones": ["+86 139****5678", "+44 791***3456"],
        "email": None,
    }


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("广东省深圳市南山区科技园路1号", "广东省深圳市"),
        ("北京市朝阳区建国路88号", "北京市"),
        ("上海市 浦东新区 世纪大道100号", "上海市"),
        ("新疆维吾尔自治区乌鲁木齐市天山区解放南路", "新疆维吾尔自治区乌鲁木齐市"),
        ("湖北省恩施土家族苗族自治州恩施市航空大道", "湖北省恩施土家族苗族自治州"),
        ("香港特别行政区九龙弥敦道100号", "香港特别行政区"),
        ("朝阳区市场街1号", "***"),  # starts with a district: "区...市" is no city
        ("南山区科技园", "***"),
        ("1600 Amphitheatre Pkwy, Mountain View, CA 94043", "***"),  # Latin script is not parsed
        ("", "***"),
    ],
)
def test_an_address_written_as_one_string_keeps_the_province_and_city_it_starts_with(address: str, shown: str) -> None:
    assert mask_for("agent", {"address": address}) == {"address": shown}
    assert city_of(address) == (None if shown == "***" else shown)


@pytest.mark.parametrize(
    ("phone", "shown"),
    [
        ("+8613812348000", "+86 138****8000"),
        ("13812348000", "+86 138****8000"),
        ("138 1234 8000", "+86 138****8000"),
        ("(+86) 138-1234-8000", "+86 138****8000"),
        ("0086 138 1234 8000", "+86 138****8000"),
        ("010-12345678", "+86 101***5678"),  # a Beijing landline: area code 10
        ("+1 (415) 555-2671", "+1 415***2671"),
        ("+44 7911 123456", "+44 791***3456"),
        ("1234567", "+86 ***4567"),
        ("12345", "***"),
        ("ask the front desk", "***"),
        ("99999999999999999999", "999*************9999"),  # no number: its digits' two ends
    ],
)
def test_a_phone_keeps_its_country_code_its_first_3_and_last_4_digits(phone: str, shown: str) -> None:
    assert mask_phone(phone) == shown


def test_a_phone_without_a_country_code_is_read_in_the_tenants_region() -> None:
    assert mask_for("agent", {"phone": "(415) 555-2671"}, default_region="US") == {"phone": "+1 415***2671"}
    assert mask_for("agent", {"mobile": 13812348000}) == {"mobile": "+86 138****8000"}


@pytest.mark.parametrize(
    ("email", "shown"),
    [
        ("li.lei@example.com", "l***@example.com"),
        (" x@example.co.uk ", "x***@example.co.uk"),
        ("no-at-sign", "***"),
        ("@example.com", "***"),
        ("li@localhost", "***"),
    ],
)
def test_an_email_keeps_its_first_character_and_domain(email: str, shown: str) -> None:
    assert mask_email(email) == shown


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("phone", "phone"),
        ("customerPhone", "phone"),
        ("receiver_tel", "phone"),
        ("buyer_email", "email"),
        ("shipping_address", "address"),
        ("shipping_address.line1", "personal"),  # a dotted path: its last segment
        ("shipping_address.city", "place"),
        ("receiver_city", "place"),
        ("customer_name", "name"),
        ("receiver_name", "name"),
        ("postal_code", "personal"),
        ("receiver_zip", "personal"),
        ("subject", "text"),
        ("tracking_number", None),
        ("serial", None),
        ("customer_id", None),
    ],
)
def test_fields_are_classified_by_name(field: str, kind: str | None) -> None:
    assert field_kind(field) == kind
