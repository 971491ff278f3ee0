"""The demo's deliveries plus malformed ones full of personal data, through the real handlers on moto:
no log line and no quarantine or dead-letter reason carries an e-mail, a phone number, a name or a
street address (issue 13, finding 7)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import boto3

from infra.sandbox.demo import scenario
from infra.sandbox.samples import SignedWebhook, body_bytes, load_sample, signed
from tests.integration.conftest import Stack

NAME, NAME_ZH, PHONE, EMAIL = "Wang Xiaoming", "王小明", "13912345678", "wang.xiaoming@example.cn"
STREET, STREET_ZH = "88 Century Avenue", "世纪大道88号"
PII = f"{NAME} {PHONE}"
# Every planted value, the demo's own customers, and any e-mail address or phone number at all.
LEAK = re.compile(
    "|".join(
        [
            *(re.escape(v) for v in (NAME, "Xiaoming", NAME_ZH, PHONE, STREET, STREET_ZH, "Century Ave")),
            r"Jon Snow|\bSnow\b|Mei Chen|Buyer No\d",  # names in the samples and the demo's generated orders
            r"[\w.+-]+@[\w-]+\.[A-Za-z]{2,}",  # an e-mail address
            r"(?<![\w.])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\w)",  # a mainland mobile number (not in a hex id)
            r"\+\d{1,3}[\s-]\d{2,4}[\s-]\d{3,4}[\s-]\d{3,4}",  # an international number as people write it
        ]
    )
)


def _shopify(secret: str, event_id: str, **changes: Any) -> SignedWebhook:
    order = copy.deepcopy(load_sample("shopify_orders_create")["body"])
    order.update({"id": 990000000000000000 + len(event_id), "email": EMAIL, "phone": PHONE, **changes})
    order["customer"].update({"first_name": "Xiaoming", "last_name": "Wang", "email": EMAIL, "phone": PHONE})
    order["shipping_address"].update({"name": NAME_ZH, "address1": STREET_ZH, "phone": PHONE})
    body = json.dumps(order, ensure_ascii=False).encode()
    return signed("shopify_orders_create", secret, body=body, **{"X-Shopify-Event-Id": event_id})


def malformed(secrets: dict[str, list[str]]) -> list[SignedWebhook]:
    """Deliveries that verify but cannot be used, each failing on a value that is personal data."""
    shopify = secrets["shopify"][0]
    line = {"id": 1, "sku": "FILTER-X1", "quantity": PII, "price": "99.00"}
    youzan = copy.deepcopy(load_sample("youzan_trade_order_state")["body"])
    youzan.update({"msg_id": "pii-youzan-1", "status": PII, "kdt_name": NAME_ZH})
    youzan["msg"] = youzan["msg"].replace("WAIT_SELLER_SEND_GOODS", quote_plus(PII))
    stripe = copy.deepcopy(load_sample("stripe_refund_created")["body"])
    stripe["id"] = "evt_pii_1"
    stripe["data"]["object"].update({"status": PII, "receipt_email": EMAIL})
    woo = copy.deepcopy(load_sample("woocommerce_order_refunded")["body"])
    woo.update({"id": 9727, "status": PII})
    woo["billing"].update({"first_name": "Xiaoming", "last_name": "Wang", "email": EMAIL, "phone": PHONE})
    wms = copy.deepcopy(load_sample("wms_stock_movements")["body"])
    wms["movements"][0]["type"] = PII
    zendesk = copy.deepcopy(load_sample("zendesk_ticket_status_changed")["body"])
    zendesk["id"] = "pii-zendesk-1"
    zendesk["detail"].update({"id": "9158", "assignee_id": PII, "subject": f"{NAME} at {STREET} ({EMAIL})"})

    def dumped(body: Any) -> bytes:
        return json.dumps(body, ensure_ascii=False).encode()

    return [
        _shopify(shopify, "pii-1", line_items=[line]),
        _shopify(shopify, "pii-22", financial_status=PII),
        _shopify(shopify, "pii-333", total_price=EMAIL),
        _shopify(shopify, "pii-4444", currency=NAME_ZH),
        signed("youzan_trade_order_state", secrets["youzan"][0], body=dumped(youzan)),
        signed("stripe_refund_created", secrets["stripe"][0], body=dumped(stripe)),
        signed(
            "woocommerce_order_refunded",
            secrets["woocommerce"][0],
            body=dumped(woo),
            **{"X-WC-Webhook-Delivery-ID": "pii-woo-1"},
        ),
        signed("wms_stock_movements", secrets["wms"][0], body=dumped(wms), **{"webhook-id": "msg_pii_wms_1"}),
        signed("zendesk_ticket_status_changed", secrets["zendesk"][0], body=dumped(zendesk)),
    ]


def _reasons(stack: Stack) -> tuple[list[str], list[str]]:
    """Every reason an operator reads: the quarantine's (in the body), and each message attribute's."""
    sqs = boto3.client("sqs")
    parked: list[str] = []
    reasons: list[str] = []
    for purpose, url in stack.resources.queue_urls.items():
        if purpose != "quarantine" and not purpose.endswith("-dlq"):
            continue
        for _ in range(3):
            for message in sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageAttributeNames=["All"]
            ).get("Messages", []):
                attributes = message.get("MessageAttributes", {})
                if "reason" in attributes:
                    reasons.append(attributes["reason"]["StringValue"])
                if purpose == "quarantine":
                    parked.append(json.loads(message["Body"])["reason"])
    return parked, reasons


def test_the_demo_and_malformed_orders_full_of_personal_data_leave_none_in_logs_or_reasons(
    stack: Stack, sandbox_secrets: dict[str, Any], tmp_path: Path, sampled: None
) -> None:
    """Every invocation sampled: the DEBUG line per record is scanned too."""
    log = tmp_path / "functions.log"
    stack.functions.log_file = log
    secrets = {source: tenants["demo"] for source, tenants in sandbox_secrets["sources"].items()}
    stream, _ = scenario(secrets)
    answers = [stack.post(webhook)["statusCode"] for _, webhook in stream]
    answers += [stack.post(webhook)["statusCode"] for webhook in malformed(secrets)]
    assert answers.count(200) == len(answers) - 1  # the demo's tampered copy is refused (401)
    amazon = load_sample("amazon_order_change")["body"]
    bad_amazon = copy.deepcopy(amazon)
    bad_amazon["NotificationMetadata"]["NotificationId"] = "pii-amazon-1"
    bad_amazon["Payload"]["OrderChangeNotification"]["Summary"]["OrderStatus"] = PII
    for body in (amazon, bad_amazon):
        boto3.client("sqs").send_message(QueueUrl=stack.resources.queue_urls["amazon"], MessageBody=json.dumps(body))
    stack.run_until_quiet(max_rounds=200)

    lines = log.read_text(encoding="utf-8").splitlines()
    parked, reasons = _reasons(stack)
    assert len(lines) > 200  # every invocation logged (accepted, quarantined, delivered...)
    assert sorted(parked) == [  # each planted delivery was quarantined, named by field and kind
        "ORDER_CHANGE is not usable: KeyError",
        "TRADE_ORDER_STATE message is not usable: KeyError",
        "field map: record 0 field reason: type value is not in the map",
        "order.updated payload is not an order: KeyError",
        "orders/create payload is not usable: InvalidOperation",
        "orders/create payload is not usable: ValueError",
        "orders/create payload is not usable: currency: String should match pattern '^[A-Z]{3}$'",
        "orders/create payload is not usable: financial_status: not a known value",
        "refund.created payload is not a refund: KeyError",
    ]
    leaks = [line for line in lines + parked + reasons if LEAK.search(_readable(line))]
    assert leaks == []


def _readable(line: str) -> str:
    """A JSON log line with its \\u escapes decoded, so a name in Chinese is seen as written."""
    try:
        return json.dumps(json.loads(line), ensure_ascii=False)
    except ValueError:
        return line


def test_the_pattern_finds_what_it_must() -> None:
    """The scan is only as good as its pattern: each planted value and sample customer is a hit."""
    for text in (PII, NAME_ZH, EMAIL, STREET_ZH, "+86 139 0001 0000", "+8613800138000", "jon@example.com"):
        assert LEAK.search(text), text
    for text in ("820982911946154508", "2026-11-20T10:00:00+08:00", "1795392000", "a413d55c09071aa17796124635c803c9"):
        assert LEAK.search(text) is None, text
    assert body_bytes(load_sample("shopify_orders_create"))  # the samples are where the demo's customers come from
