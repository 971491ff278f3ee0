"""The sidebar page through a running ``aftersync local``: the API's routes, the fake WeCom's sign-in
redirects and cookies, the JS-SDK signature the fake checks, and the data call, over real HTTP (what a
browser does, without one: the headless-browser test drives the page's script itself)."""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.e2e.conftest import RunningSandbox, quiet_shared_sandbox
from tests.integration.test_customer_identity import order_webhook
from tests.integration.test_customer_view import LEI
from tests.integration.test_sidebar import CONTACT, _lei_on_wecom


@pytest.fixture(scope="module")
def sandbox(shared_sandbox: RunningSandbox) -> RunningSandbox:
    """The package's shared sandbox: the order and contact posted here are looked up by their own ids."""
    return quiet_shared_sandbox(shared_sandbox)


def _get(opener: urllib.request.OpenerDirector, url: str, headers: dict[str, str] | None = None) -> Any:
    return opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30)


def test_an_agent_opens_the_sidebar_through_the_fake_wecom_and_reads_the_chat_contact(
    sandbox: RunningSandbox, shopify_secret: str
) -> None:
    assert sandbox.post(order_webhook(shopify_secret, 7001, LEI, None))[0] == 200
    sandbox.wait_drained()
    assert sandbox.post(_lei_on_wecom(), source="erp")[0] == 200
    sandbox.wait_drained()
    link = sandbox.info["sidebar"]["demo as ZhangSan (agent)"].replace("wmDemoLeiLi0001", CONTACT)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with _get(opener, link + "&lang=en") as page:  # -> the page -> the fake's OAuth page -> the page, with a code
        html = page.read().decode()
        landed = page.geturl()
        csp = page.headers["Content-Security-Policy"]
    assert urlsplit(landed).path == "/v1/demo/sidebar" and "code=" in landed and "state=aftersync" in landed
    assert f"{sandbox.info['fake_wecom']}/jwxwork.js" in html and "frame-ancestors 'none'" in csp
    boot = json.loads(re.search(r'id="boot">(.*?)</script>', html)[1])  # type: ignore[index]
    assert (boot["mode"], boot["lang"]) == ("wecom", "en")
    session = {"Authorization": f"Session {boot['session']}"}
    api = sandbox.info["api"]
    with _get(opener, f"{api}/v1/demo/sidebar/jsapi?url={quote(landed, safe='')}", session) as answer:
        config = json.loads(answer.read())
    with _get(opener, f"{sandbox.info['fake_wecom']}/jwxwork-tickets.js") as tickets_js:
        tickets = json.loads(tickets_js.read().decode().split("=", 1)[1].rstrip(";"))
    [ticket] = tickets[f"{config['corpid']}:{config['agentid']}"]
    signed = f"jsapi_ticket={ticket}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}&url={landed}"
    assert config["signature"] == hashlib.sha1(signed.encode()).hexdigest()  # noqa: S324 - WeCom's algorithm
    with _get(opener, f"{api}/v1/demo/sidebar/data?wecom_external_userid={CONTACT}", session) as answer:
        body = json.loads(answer.read())
    assert body["customer"]["phone"] == "+86 138****8000"
    assert "shopify:7001" in [o["order_id"] for o in body["orders"]]
    # the same code again (a reload): WeCom refuses it, the page says so and links to sign in again
    try:
        _get(urllib.request.build_opener(), landed)
        raise AssertionError("a used code opened the page")
    except urllib.error.HTTPError as refused:
        assert refused.code == 401 and b"Sign in again" in refused.read()
