"""The WeCom sidebar page in headless Chromium, against a running ``aftersync local``.

The browser does what WeCom's webview does: it opens the fake WeCom's "open sidebar" link, follows its
OAuth redirect back to the page with a ``code``, runs the page's script, which loads the fake JS-SDK,
calls ``wx.agentConfig`` with the signature the sidebar function computed (the fake checks it against its
ticket) and ``getCurExternalContact``, then fetches the customer and renders it. Nothing here calls the
handlers directly: every request goes through the sandbox's API Gateway stand-in, as a phone would.

One customer, Lei Li, bought on Shopify and on Youzan with the same phone; the ERP adds the Youzan order's
serial (under warranty) and Lei's WeCom external contact id; the Youzan order ships and a refund is asked
for and then agreed and paid (the case's progress). Each state the agent sees is saved to ``docs/screenshots/``.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from infra.sandbox.samples import load_sample, signed
from tests.browser.conftest import Browser
from tests.e2e.conftest import CLI, ROOT, RunningSandbox
from tests.integration.test_customer_identity import order_webhook
from tests.integration.test_customer_view import LEI, YOUZAN_ORDER, _erp_order_of_the_youzan_shop
from tests.integration.test_sidebar import CONTACT, _lei_on_wecom

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SHOPIFY_ORDER = "shopify:7101"
SERIAL = "SN-RV2-0001"  # the ERP's serial of the Youzan order's robot, warranty to 2027-11-20
WAIT_SECONDS = 30


def _youzan_refund(secret: str, status: str, msg_id: str, update_time: str, later_by: int) -> Any:
    """Youzan's TRADE_ORDER_REFUND push for the Youzan order, at a status and time of our choosing
    (``version``, Youzan's clock in epoch seconds, decides which push is the newer one)."""
    sample = load_sample("youzan_trade_order_refund")
    body = dict(sample["body"])
    msg = json.loads(urllib.parse.unquote(body["msg"]))
    msg.update(status=status, update_time=update_time)
    body.update(msg=urllib.parse.quote(json.dumps(msg, ensure_ascii=False)), msg_id=msg_id, status=status)
    body["version"] = int(body["version"]) + later_by
    return signed("youzan_trade_order_refund", secret, json.dumps(body, ensure_ascii=False).encode())


@pytest.fixture(scope="module")
def lei(sandbox: RunningSandbox) -> RunningSandbox:
    """The sandbox with Lei Li's two shops' orders, serial, shipment, WeCom contact and refund case."""
    secrets = json.loads((ROOT / "infra" / "sandbox" / "secrets.local.json").read_text(encoding="utf-8"))
    shopify = secrets["sources"]["shopify"]["demo"][0]
    youzan = secrets["sources"]["youzan"]["demo"][0]
    # one after the other: two records of one new person at once make two customers until relinked
    for webhook, source in (
        (order_webhook(shopify, 7101, LEI, None), None),
        (signed("youzan_trade_order_state", youzan), None),
        (_erp_order_of_the_youzan_shop(), "erp"),
        (signed("youzan_trade_order_express", youzan), None),
        (_lei_on_wecom(), "erp"),
        (_youzan_refund(youzan, "WAIT_SELLER_AGREE", "refund-asked-7101", "2026-11-22 09:14:00", 0), None),
        (_youzan_refund(youzan, "WAIT_BUYER_RETURN_GOODS", "refund-agreed-7101", "2026-11-22 10:02:00", 2880), None),
        (_youzan_refund(youzan, "SUCCESS", "refund-paid-7101", "2026-11-23 16:40:00", 113_760), None),
    ):
        status, answer = sandbox.post(webhook, source=source)
        assert status == 200, (webhook.name, answer)
        sandbox.wait_drained()
    return sandbox


def _agent_link(sandbox: RunningSandbox, role: str, lang: str) -> str:
    [link] = [url for who, url in sandbox.info["sidebar"].items() if who.startswith("demo as ") and f"({role})" in who]
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
    query.update(external_userid=CONTACT, lang=lang)
    return f"{link.split('?', 1)[0]}?{urllib.parse.urlencode(query)}"


def _ready(browser: Browser) -> WebElement:
    """The page once its script settled: ``data-state`` leaves ``loading`` (ready, empty, expired, error)."""
    driver = browser.driver
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid=sidebar]").get_attribute("data-state") != "loading"
    )
    return driver.find_element(By.CSS_SELECTOR, "[data-testid=sidebar]")


def _all(browser: Browser, testid: str, within: WebElement | None = None) -> list[WebElement]:
    return (within or browser.driver).find_elements(By.CSS_SELECTOR, f"[data-testid={testid}]")


def _one(browser: Browser, testid: str, within: WebElement | None = None) -> WebElement:
    [found] = _all(browser, testid, within)
    return found


def _orders(browser: Browser) -> dict[str, WebElement]:
    return {o.get_attribute("data-order-id") or "": o for o in _all(browser, "order")}


def test_an_agent_in_wecom_sees_both_shops_orders_the_masked_phone_a_warranty_badge_and_the_case_progress(
    lei: RunningSandbox, phone: Browser
) -> None:
    phone.driver.get(_agent_link(lei, "agent", "zh-CN"))
    page = _ready(phone)
    assert page.get_attribute("data-state") == "ready", _one(phone, "status").text
    assert urllib.parse.urlsplit(phone.driver.current_url).path == "/v1/demo/sidebar"
    assert _one(phone, "customer-name").text == "Lei Li"
    assert _one(phone, "customer-phone").text == "+86 138****8000"
    assert "13800138000" not in phone.driver.page_source and "138 0013 8000" not in phone.driver.page_source
    orders = _orders(phone)
    assert sorted(orders) == sorted([SHOPIFY_ORDER, YOUZAN_ORDER])
    assert {orders[o].get_attribute("data-source") for o in orders} == {"shopify", "youzan"}
    [badge] = _all(phone, "warranty-badge", orders[YOUZAN_ORDER])
    assert (badge.get_attribute("data-eligible"), badge.get_attribute("data-status")) == ("true", "active")
    assert "2027-11-20" in badge.text
    assert SERIAL in orders[YOUZAN_ORDER].text
    [case] = _all(phone, "case")
    steps = _all(phone, "case-step", _one(phone, "case-progress", case))
    assert [s.get_attribute("data-current") for s in steps] == ["false", "false", "true"]
    assert [s.get_attribute("data-status") for s in steps] == ["requested", "approved", "refunded"]
    assert [s.text for s in steps] == ["已申请", "已同意", "已退款"]  # zh-CN labels of the codes
    [shipment] = _all(phone, "shipment")
    assert "75311234567890" in shipment.text
    assert len(_all(phone, "timeline-entry")) >= 5
    assert phone.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
    phone.screenshot("sidebar-agent-phone-zh")
    # further down the same page: the case's progress, the shipment and the timeline
    phone.driver.execute_script("arguments[0].scrollIntoView()", case)
    phone.screenshot("sidebar-agent-phone-zh-case")


def test_a_supervisor_sees_the_phone_whole_in_english_on_a_desktop(lei: RunningSandbox, desktop: Browser) -> None:
    desktop.driver.get(_agent_link(lei, "supervisor", "en"))
    assert _ready(desktop).get_attribute("data-state") == "ready", _one(desktop, "status").text
    assert _one(desktop, "customer-phone").text.replace(" ", "") == "+8613800138000"
    assert sorted(_orders(desktop)) == sorted([SHOPIFY_ORDER, YOUZAN_ORDER])
    assert desktop.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    desktop.screenshot("sidebar-supervisor-desktop-en")


def _screen_pop_link(phone_number: str) -> str:
    result = subprocess.run(
        [CLI, "sidebar", "link", "--tenant", "demo", "--reader", "demo-agent", "--phone", phone_number, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["url"])


def test_a_call_centre_screen_pop_opens_the_caller_by_a_signed_link(lei: RunningSandbox, desktop: Browser) -> None:
    link = _screen_pop_link("+86 138 0013 8000")
    assert "8000" not in link  # the link carries the phone's HMAC, never the number
    desktop.driver.get(link + "&lang=en")
    assert _ready(desktop).get_attribute("data-state") == "ready", _one(desktop, "status").text
    assert _one(desktop, "customer-phone").text == "+86 138****8000"
    assert sorted(_orders(desktop)) == sorted([SHOPIFY_ORDER, YOUZAN_ORDER])
    assert "link=" not in desktop.driver.current_url  # taken out of the address bar once loaded
    desktop.screenshot("sidebar-screen-pop-desktop-en")


def test_a_tampered_screen_pop_link_shows_why_and_no_customer(lei: RunningSandbox, phone: Browser) -> None:
    link = _screen_pop_link("+86 138 0013 8000")
    phone.driver.get(link[:-4] + ("AAAA" if not link.endswith("AAAA") else "BBBB") + "&lang=en")
    state = _ready(phone).get_attribute("data-state")
    assert state != "ready"
    assert _all(phone, "order") == [] and "Lei" not in phone.driver.page_source
    assert _one(phone, "message-title").text
    phone.screenshot("sidebar-refused-phone-en")
