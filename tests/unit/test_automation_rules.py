"""Automation rules and customer-notification templates, as data."""

from __future__ import annotations

from shared.automation import actions_for, rules
from shared.notifications import compose, templates

CASE = {
    "case_id": "77",
    "kind": "refund",
    "status": "approved",
    "order_id": "1001",
    "amount": {"amount": "59.00", "currency": "CNY"},
    "items": [{"sku": "A", "quantity": 2, "restock": True}, {"sku": "B", "quantity": 1, "restock": False}],
}


def test_an_approved_refund_triggers_the_payment_the_oms_status_and_the_customer_notice() -> None:
    actions = {a.rule.name: a for a in actions_for("after_sales_case", {"status"}, CASE)}
    assert sorted(actions) == ["customer-notify", "order-after-sales-status", "refund-approved"]
    assert (actions["refund-approved"].key, actions["refund-approved"].body) == (
        "77",
        {"case_id": "77", "order_id": "1001", "amount": "59.00", "currency": "CNY"},
    )
    assert actions["order-after-sales-status"].body["after_sales_status"] == "after_sales_in_progress"


def test_a_rule_fires_only_when_a_field_it_watches_changed_and_its_requirements_hold() -> None:
    assert actions_for("after_sales_case", {"reason"}, CASE) == []  # the status did not change
    received_return = {**CASE, "kind": "return", "status": "received"}
    [restock] = [a for a in actions_for("after_sales_case", {"status"}, received_return) if a.rule.role == "wms"]
    assert restock.body["increments"] == [{"sku": "A", "quantity": 2}]  # only what goes back to stock
    nothing_back = {**received_return, "items": [{"sku": "B", "quantity": 1, "restock": False}]}
    assert not [a for a in actions_for("after_sales_case", {"status"}, nothing_back) if a.rule.role == "wms"]
    assert [r.name for r in rules()] == [
        "refund-approved",
        "return-restock",
        "order-after-sales-status",
        "customer-notify",
    ]


def test_notifications_use_the_tenants_language_with_english_as_the_fallback() -> None:
    values = {"case_id": "77", "order_number": "#1001", "amount": "59.00", "currency": "CNY"}
    zh = compose("demo", "zh-CN", "refunded", values, "139 1234 5678", "A@Example.com", "CN")
    assert [(n.channel, n.to, n.text) for n in zh] == [
        ("sms", "+8613912345678", "您好，订单 #1001 的退款 59.00 CNY 已原路退回（申请 77）。"),
        ("email", "a@example.com", "您好，订单 #1001 的退款 59.00 CNY 已原路退回（申请 77）。"),
    ]
    [en] = compose("other", "fr", "approved", values, None, "b@example.com", "CN")
    assert (en.subject, en.template) == ("Your after-sales request 77 is approved", "default/en/approved")
    assert compose("demo", "en", "closed", values, "139 1234 5678", None, "CN") == []  # no template: no message
    assert compose("demo", "en", "approved", values, None, None, "CN") == []  # no contact: nothing to send
    assert set(templates()["default"]) == {"en", "zh-CN"}
