"""Automation rules and customer-notification templates, as data."""

from __future__ import annotations

from shared.automation.notifications import compose, templates
from shared.automation.rules import actions_for, rules

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
        "exchange-replacement-out",
        "exchange-ship-replacement",
        "order-after-sales-status",
        "customer-notify",
    ]


EXCHANGE = {
    "case_id": "88",
    "kind": "exchange",
    "status": "received",
    "order_id": "1001",
    "items": [{"sku": "SHOE-41", "quantity": 1, "restock": True}],
    "replacements": [{"sku": "SHOE-42", "quantity": 1}],
}
ORDER = {
    "order_id": "1001",
    "order_number": "#1001",
    "shipping_address": {"name": "Jon Snow", "line1": "1 Century Ave", "city": "Shanghai", "country_code": "CN"},
}


def test_a_received_exchange_restocks_the_return_takes_out_the_replacement_and_ships_it() -> None:
    loads: list[int] = []

    def load_order() -> dict[str, object]:
        loads.append(1)
        return ORDER

    actions = {a.rule.name: a for a in actions_for("after_sales_case", {"status"}, EXCHANGE, load_order)}
    assert loads == [1]  # the order is read once, for the rule that needs it
    assert actions["return-restock"].body["increments"] == [{"sku": "SHOE-41", "quantity": 1}]
    assert actions["exchange-replacement-out"].body == {
        "reference": "88",
        "order_id": "1001",
        "decrements": [{"sku": "SHOE-42", "quantity": 1}],
    }
    ship = actions["exchange-ship-replacement"]
    assert (ship.rule.role, ship.key, ship.blocked) == ("fulfilment", "88:ship-replacement", None)
    assert ship.body == {
        "reference": "88",
        "order_id": "1001",
        "order_number": "#1001",
        "lines": [{"sku": "SHOE-42", "quantity": 1}],
        "ship_to": ORDER["shipping_address"],
    }
    # Requested, not yet received: nothing moves and the order is not read
    loads.clear()
    assert not [
        a
        for a in actions_for("after_sales_case", {"status"}, {**EXCHANGE, "status": "approved"}, load_order)
        if a.rule.name.startswith("exchange-")
    ]
    assert loads == []


def test_a_shipment_request_without_its_order_waits_and_without_an_address_is_refused_with_the_reason() -> None:
    def named(order: dict[str, object] | None) -> dict[str, object]:
        return {a.rule.name: a for a in actions_for("after_sales_case", {"status"}, EXCHANGE, lambda: order)}

    waiting = named(None)["exchange-ship-replacement"]
    assert (waiting.blocked, waiting.order_missing, waiting.body) == ("order '1001' is not synced yet", True, {})
    no_address = named({"order_id": "1001"})["exchange-ship-replacement"]
    assert (no_address.blocked, no_address.order_missing) == ("order '1001' has no order.shipping_address", False)
    assert named(None)["exchange-replacement-out"].blocked is None  # the stock step needs no order


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
