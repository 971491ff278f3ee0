"""The WeCom sidebar page through the real handler on moto, against the sandbox's fake WeCom.

An agent opens the page from a chat: WeCom passes an OAuth code, the handler exchanges it for the
member through the (fake) WeCom API, maps the member to a role, and the page's session reads the
customer the JS-SDK names, masked for that role and recorded in the read audit. A call centre's screen
pop opens it with a reader's key or a signed link. Refused requests answer 401/403 pages and record no
read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import pytest
from typer.testing import CliRunner

from infra.sandbox.http_servers import api_gateway_event, serve
from infra.sandbox.resources import fake_corps, local_wecom_app
from infra.sandbox.wecom_app import FakeWeComApp
from infra.wiring import function_environment
from ops.cli import app as cli_app
from ops.cli.common import Where
from ops.resources import Resources
from shared.adapters.wecom_app import jsapi_signature
from shared.constants import wecom_app_secret_name
from shared.read.access_log import ReadAudit, ReadRecord
from shared.read.lookup import selector_digest
from shared.read.sidebar_session import issue, signing_keys
from tests.conftest import clear_handler_caches
from tests.fakes import erp_webhook
from tests.integration.conftest import Stack
from tests.integration.test_customer_view import YOUZAN_ORDER, _salt, two_shops  # noqa: F401 - a fixture

HOST = "127.0.0.1:3000"
PAGE = f"http://{HOST}/v1/demo/sidebar"
CONTACT = "wmLeiLiExternal0001"  # Lei Li's WeCom external user id (an ERP customer record links it)
XSS = "<script>alert(1)</script>"
AGENT, SUPERVISOR, STRANGER = "ZhangSan", "LiSi", "WangWu"


class Sidebar:
    """The sidebar function as a browser meets it (through the API's proxy events) and the fake WeCom."""

    def __init__(self, stack: Stack, wecom: FakeWeComApp, secrets: dict[str, Any]) -> None:
        self.stack, self.wecom, self.secrets = stack, wecom, secrets
        self.corp = stack.cfg.sidebar.tenants["demo"].corp_id

    def get(self, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        event = api_gateway_event("GET", path, {"Host": HOST, **(headers or {})}, b"")
        answer: dict[str, Any] = self.stack.functions.invoke("sidebar", event)
        answer["headers"] = _headers(answer)
        return answer

    def open_as(self, user: str, lang: str | None = None) -> dict[str, Any]:
        code = self.wecom.issue_code(self.corp, user)
        return self.get(f"/v1/demo/sidebar?code={code}&state=aftersync" + (f"&lang={lang}" if lang else ""))

    def data(self, session: str, query: str = f"wecom_external_userid={CONTACT}") -> dict[str, Any]:
        return self.get(f"/v1/demo/sidebar/data?{query}", {"Authorization": f"Session {session}"})

    def keys(self) -> list[bytes]:
        return signing_keys(self.secrets["sidebar"])


def _headers(answer: dict[str, Any]) -> dict[str, str]:
    found = dict(answer.get("headers") or {})
    found.update({k: ", ".join(v) for k, v in (answer.get("multiValueHeaders") or {}).items()})
    return found


def _boot(page: dict[str, Any]) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="boot">(.*?)</script>', page["body"])
    assert match is not None, "no boot data in the page"
    boot: dict[str, Any] = json.loads(match[1])
    return boot


def _reads(stack: Stack) -> list[ReadRecord]:
    since = datetime.now(UTC) - timedelta(minutes=5)
    return list(ReadAudit(stack.resources.refs.state_table).records("demo", since))


def _lei_on_wecom() -> Any:
    """The ERP's customer record of Lei Li: the same phone, and the WeCom external contact id."""
    return erp_webhook(
        "msg_erp_lei_wecom",
        {
            "entity_type": "customer",
            "entity_id": "erp:c-lei",
            "occurred_at": "2026-11-22T02:00:00Z",
            "entity": {
                "source_customer_id": "c-lei",
                "name": "Lei Li",
                "phone": "+86 138 0013 8000",
                "wecom_external_user_id": CONTACT,
            },
        },
    )


@pytest.fixture
def sidebar(two_shops: Stack, sandbox_secrets: dict[str, Any]) -> Iterator[Sidebar]:  # noqa: F811 - the fixture
    stack = two_shops
    assert stack.post(_lei_on_wecom(), source="erp")["statusCode"] == 200
    stack.run_until_quiet()
    wecom = FakeWeComApp(fake_corps(stack.cfg, sandbox_secrets))
    serve(wecom.server)
    cfg = local_wecom_app(stack.cfg, wecom.url)
    fakes = (
        stack.target.server.server_port,
        stack.robot.server.server_port,
        stack.shop.server.server_port,
        wecom.server.server_port,
    )
    os.environ.update(function_environment("sidebar", cfg, stack.resources.refs, loopback_ports=fakes))
    stack.cfg = cfg
    yield Sidebar(stack, wecom, sandbox_secrets)
    wecom.server.shutdown()


def test_an_agent_signed_in_through_wecom_sees_the_customer_with_the_phone_masked(sidebar: Sidebar) -> None:
    page = sidebar.open_as(AGENT)
    assert page["statusCode"] == 200, page["body"]
    headers = page["headers"]
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Frame-Options"] == "DENY"
    nonce = re.search(r"'nonce-([^']+)'", headers["Content-Security-Policy"])
    assert nonce is not None and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert f'<script nonce="{nonce[1]}" src="{sidebar.wecom.url}/jwxwork.js"></script>' in page["body"]
    boot = _boot(page)
    assert (boot["mode"], boot["lang"]) == ("wecom", "zh-CN")
    answer = sidebar.data(boot["session"])
    assert answer["statusCode"] == 200, answer["body"]
    body = json.loads(answer["body"])
    assert body["customer"]["phone"] == "+86 138****8000"
    assert sorted(o["order_id"] for o in body["orders"]) == ["shopify:5001", YOUZAN_ORDER]
    assert "13800138000" not in answer["body"] and "8613800138000" not in answer["body"]
    [read] = _reads(sidebar.stack)
    digest = selector_digest("wecom_external_userid", CONTACT, "demo", _salt(sidebar.secrets))
    assert (read.reader, read.role, read.selector_kind, read.selector_hmac, read.outcome) == (
        f"wecom:{AGENT}",
        "agent",
        "wecom_external_userid",
        digest,
        200,
    )
    assert set(read.entity_ids) >= {body["customer_id"], "shopify:5001", YOUZAN_ORDER}


def test_a_supervisor_sees_the_phone_whole_and_english_by_accept_language(sidebar: Sidebar) -> None:
    code = sidebar.wecom.issue_code(sidebar.corp, SUPERVISOR)
    page = sidebar.get(f"/v1/demo/sidebar?code={code}&state=aftersync", {"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert page["statusCode"] == 200
    boot = _boot(page)
    assert (boot["lang"], boot["strings"]["orders"]) == ("en", "Orders")
    body = json.loads(sidebar.data(boot["session"])["body"])
    assert body["customer"]["phone"] in ("13800138000", "+8613800138000", "+86 138 0013 8000")
    [read] = _reads(sidebar.stack)
    assert (read.reader, read.role) == (f"wecom:{SUPERVISOR}", "supervisor")


@pytest.mark.parametrize(("lang", "says"), [(None, "未被授权"), ("en", "may not view customer data")])
def test_a_member_the_config_does_not_map_gets_a_403_page_in_the_page_language(
    sidebar: Sidebar, lang: str | None, says: str
) -> None:
    page = sidebar.open_as(STRANGER, lang)
    assert page["statusCode"] == 403
    assert says in page["body"] and "session" not in page["body"]
    assert page["headers"]["Cache-Control"] == "no-store"
    assert _reads(sidebar.stack) == []


def test_no_code_redirects_to_the_wecom_oauth_page_for_snsapi_base(sidebar: Sidebar) -> None:
    answer = sidebar.get("/v1/demo/sidebar?lang=en")
    assert answer["statusCode"] == 302
    location = answer["headers"]["Location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sidebar.wecom.url}/connect/oauth2/authorize"
    assert parts.fragment == "wechat_redirect"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "appid": sidebar.corp,
        "redirect_uri": f"{PAGE}?lang=en",
        "response_type": "code",
        "scope": "snsapi_base",
        "state": "aftersync",
        "agentid": "1000002",
    }
    assert _reads(sidebar.stack) == []


def test_a_bad_an_expired_or_a_reused_code_is_a_401_page_with_a_link_to_sign_in_again(sidebar: Sidebar) -> None:
    first = sidebar.wecom.issue_code(sidebar.corp, AGENT)
    assert sidebar.get(f"/v1/demo/sidebar?code={first}")["statusCode"] == 200
    expired = sidebar.wecom.issue_code(sidebar.corp, AGENT, seconds=-1)
    for code in (first, expired, "not-a-code-wecom-gave", "x" * 300, "%3Cscript%3E"):
        page = sidebar.get(f"/v1/demo/sidebar?code={code}")
        assert page["statusCode"] == 401, code
        assert "企业微信登录码无效、已过期或已使用" in page["body"]
        link = re.search(r'data-testid="message-link" href="([^"]+)"', page["body"])
        assert link is not None and link[1].startswith(f"{sidebar.wecom.url}/connect/oauth2/authorize?appid=")
    assert _reads(sidebar.stack) == []
    # the token is kept per warm container: one gettoken for all of these sign-ins
    assert sidebar.wecom.calls["gettoken"] == 1


def test_a_wrong_app_secret_or_wecom_down_is_a_503_page_and_no_read(sidebar: Sidebar) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=wecom_app_secret_name(sidebar.stack.cfg.secrets_prefix, "demo"),
        SecretString=json.dumps({"corp_secret": "not-the-apps-secret"}),
    )
    page = sidebar.open_as(AGENT, "en")
    assert page["statusCode"] == 503 and "WeCom did not answer" in page["body"]
    assert page["headers"]["Retry-After"] == "5"
    clear_handler_caches()  # a new container: the secret read again, WeCom gone
    boto3.client("secretsmanager").put_secret_value(
        SecretId=wecom_app_secret_name(sidebar.stack.cfg.secrets_prefix, "demo"),
        SecretString=json.dumps(sidebar.secrets["wecom_apps"]["demo"]),
    )
    code = sidebar.wecom.issue_code(sidebar.corp, AGENT)
    sidebar.wecom.server.shutdown()
    sidebar.wecom.server.server_close()
    assert sidebar.get(f"/v1/demo/sidebar?code={code}")["statusCode"] == 503
    assert _reads(sidebar.stack) == []


def test_the_agent_config_signature_is_the_js_sdk_one_over_the_page_url(sidebar: Sidebar) -> None:
    page = sidebar.open_as(AGENT)
    session = _boot(page)["session"]
    url = f"{PAGE}?code=used-already&state=aftersync"
    answer = sidebar.get(f"/v1/demo/sidebar/jsapi?url={quote(url, safe='')}", {"Authorization": f"Session {session}"})
    assert answer["statusCode"] == 200, answer["body"]
    config = json.loads(answer["body"])
    assert (config["corpid"], config["agentid"]) == (sidebar.corp, 1000002)
    assert abs(config["timestamp"] - time.time()) < 60
    [ticket] = sidebar.wecom.valid_tickets()[f"{sidebar.corp}:1000002"]
    expected = hashlib.sha1(  # noqa: S324 - WeCom's algorithm
        f"jsapi_ticket={ticket}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}&url={url}".encode()
    ).hexdigest()
    assert config["signature"] == expected == jsapi_signature(ticket, config["nonceStr"], config["timestamp"], url)
    # a second signature reuses the ticket (kept until shortly before it expires)
    sidebar.get(f"/v1/demo/sidebar/jsapi?url={quote(PAGE, safe='')}", {"Authorization": f"Session {session}"})
    assert sidebar.wecom.calls["ticket"] == 1
    # only this page's URL is signed
    for other in ("https://evil.example.com/v1/demo/sidebar", f"http://{HOST}/v1/other/sidebar", ""):
        refused = sidebar.get(
            f"/v1/demo/sidebar/jsapi?url={quote(other, safe='')}", {"Authorization": f"Session {session}"}
        )
        assert refused["statusCode"] == 400
    assert sidebar.get(f"/v1/demo/sidebar/jsapi?url={quote(PAGE, safe='')}")["statusCode"] == 401


def _tampered(token: str) -> str:
    version, payload, mac = token.split(".")
    body = json.loads(base64_decode(payload))
    body["role"] = "supervisor"
    return ".".join([version, base64_encode(json.dumps(body).encode()), mac])


def base64_decode(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def base64_encode(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_no_a_tampered_an_expired_or_a_foreign_session_is_401_and_no_read_is_recorded(sidebar: Sidebar) -> None:
    session = _boot(sidebar.open_as(AGENT))["session"]
    keys = sidebar.keys()
    expired, _ = issue("session", "demo", f"wecom:{AGENT}", "agent", "wecom", 12, keys, now=time.time() - 13 * 60)
    other_tenant, _ = issue("session", "other-shop", f"wecom:{AGENT}", "agent", "wecom", 12, keys)
    digest = selector_digest("phone", "13800138000", "demo", _salt(sidebar.secrets))
    link, _ = issue("link", "demo", "demo-agent", "agent", "phone", 5, keys, digest)
    wrong_key, _ = issue("session", "demo", f"wecom:{AGENT}", "supervisor", "wecom", 12, [b"k" * 40])
    for token in (_tampered(session), expired, other_tenant, link, wrong_key, "", "v1.x.y", session + "x"):
        answer = sidebar.data(token)
        assert answer["statusCode"] == 401, token
        assert json.loads(answer["body"])["error"] == "unauthorized"
    no_header = sidebar.get(f"/v1/demo/sidebar/data?wecom_external_userid={CONTACT}")
    bearer = sidebar.get(
        f"/v1/demo/sidebar/data?wecom_external_userid={CONTACT}",
        {"Authorization": f"Bearer {sidebar.secrets['readers']['demo-agent']['key']}"},
    )
    assert (no_header["statusCode"], bearer["statusCode"]) == (401, 401)
    assert _reads(sidebar.stack) == []
    assert sidebar.data(session)["statusCode"] == 200  # the untouched one still reads
    assert len(_reads(sidebar.stack)) == 1


def test_a_wecom_session_asks_by_the_chat_contact_only(sidebar: Sidebar) -> None:
    session = _boot(sidebar.open_as(AGENT))["session"]
    assert sidebar.data(session, "phone=13800138000")["statusCode"] == 400
    assert sidebar.data(session, "")["statusCode"] == 400
    missing = sidebar.data(session, "wecom_external_userid=wmNobodyWeKnow")
    assert (missing["statusCode"], json.loads(missing["body"])["error"]) == (404, "not_found")
    assert [(r.outcome, r.reader) for r in _reads(sidebar.stack)] == [(400, f"wecom:{AGENT}")] * 2 + [
        (404, f"wecom:{AGENT}")
    ]


def test_a_screen_pop_with_a_reader_key_reads_the_phone_it_was_opened_for(sidebar: Sidebar) -> None:
    key = sidebar.secrets["readers"]["demo-agent"]["key"]
    page = sidebar.get("/v1/demo/sidebar?phone=%2B86%20138%200013%208000", {"Authorization": f"Bearer {key}"})
    assert page["statusCode"] == 200, page["body"]
    boot = _boot(page)
    assert boot["mode"] == "phone" and "jwxwork.js" not in page["body"]
    assert "8000" not in page["body"].split('id="boot">', 1)[1].split("</script>", 1)[0].replace(boot["session"], "")
    answer = sidebar.data(boot["session"], "")
    assert answer["statusCode"] == 200, answer["body"]
    body = json.loads(answer["body"])
    assert body["customer"]["phone"] == "+86 138****8000"
    assert len(body["orders"]) == 2
    [read] = _reads(sidebar.stack)
    assert (read.reader, read.role, read.selector_kind) == ("demo-agent", "agent", "phone")
    assert read.selector_hmac == selector_digest("phone", "13800138000", "demo", _salt(sidebar.secrets))
    # the session reads that phone only: no other selector
    assert sidebar.data(boot["session"], f"wecom_external_userid={CONTACT}")["statusCode"] == 400


@pytest.mark.parametrize(
    "authorization", ["Bearer demo-agent.wrong-key-of-enough-length-0000000000", "Basic Zm9vOmJhcg==", "Bearer "]
)
def test_a_screen_pop_with_a_wrong_key_is_a_401_page(sidebar: Sidebar, authorization: str) -> None:
    page = sidebar.get("/v1/demo/sidebar?phone=13800138000&lang=en", {"Authorization": authorization})
    assert page["statusCode"] == 401 and "A valid reader key is required." in page["body"]
    assert "session" not in page["body"]
    assert _reads(sidebar.stack) == []


def test_a_screen_pop_link_carries_no_phone_and_opens_the_page_until_it_expires(sidebar: Sidebar) -> None:
    keys = sidebar.keys()
    digest = selector_digest("phone", "13800138000", "demo", _salt(sidebar.secrets))
    assert digest is not None
    link, _ = issue("link", "demo", "demo-supervisor", "supervisor", "phone", 5, keys, digest)
    assert "13800138000" not in base64_decode(link.split(".")[1]).decode()
    page = sidebar.get(f"/v1/demo/sidebar?link={link}")
    assert page["statusCode"] == 200, page["body"]
    body = json.loads(sidebar.data(_boot(page)["session"], "")["body"])
    assert body["customer"]["phone"] in ("13800138000", "+8613800138000", "+86 138 0013 8000")
    [read] = _reads(sidebar.stack)
    assert (read.reader, read.role, read.selector_hmac) == ("demo-supervisor", "supervisor", digest)

    expired, _ = issue("link", "demo", "demo-supervisor", "supervisor", "phone", 5, keys, digest, now=time.time() - 600)
    session_as_link, _ = issue("session", "demo", "demo-supervisor", "supervisor", "phone", 5, keys, digest)
    no_such_reader, _ = issue("link", "demo", "nobody", "supervisor", "phone", 5, keys, digest)
    other_tenant, _ = issue("link", "other-shop", "demo-supervisor", "supervisor", "phone", 5, keys, digest)
    for bad in (expired, _tampered(link), session_as_link, no_such_reader, other_tenant, "junk"):
        refused = sidebar.get(f"/v1/demo/sidebar?link={bad}")
        assert refused["statusCode"] == 401 and "链接无效或已过期" in refused["body"]
    assert len(_reads(sidebar.stack)) == 1


def test_data_is_never_in_the_html_and_the_script_writes_text_only(sidebar: Sidebar, sandbox_secrets: Any) -> None:
    order = erp_webhook(
        "msg_erp_xss",
        {
            "entity_type": "order",
            "entity_id": "erp:XSS-1",
            "occurred_at": "2026-11-23T02:00:00Z",
            "entity": {
                "order_id": "XSS-1",
                "channel": "erp",
                "customer_source_id": "c-lei",
                "customer_name": "Lei Li",
                "customer_phone": "13800138000",
                "lines": [
                    {
                        "line_id": "1",
                        "sku": XSS,
                        "title": XSS,
                        "quantity": 1,
                        "unit_price": {"amount": "1.00", "currency": "CNY"},
                    }
                ],
            },
        },
    )
    assert sidebar.stack.post(order, source="erp")["statusCode"] == 200
    sidebar.stack.run_until_quiet()
    page = sidebar.open_as(AGENT)
    answer = sidebar.data(_boot(page)["session"])
    body = json.loads(answer["body"])
    titles = [line["title"] for o in body["orders"] for line in o["lines"]]
    assert XSS in titles  # the data answer carries it as a JSON string...
    assert answer["headers"]["Content-Type"] == "application/json"
    assert answer["headers"]["X-Content-Type-Options"] == "nosniff"
    assert XSS not in page["body"] and "alert(1)" not in page["body"]  # ...and the page never holds data
    script = page["body"].split('<script nonce="', 2)[-1]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script
    assert "textContent" in script


def test_the_cli_makes_a_link_that_opens_the_page_and_holds_no_phone(
    sidebar: Sidebar, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = sidebar.stack.resources.refs
    here = Resources(
        "stack", "dev", "eu-west-1", None, refs.state_table, refs.view_table, refs.idempotency_table,
        refs.archive_bucket, {},
        f"http://{HOST}/webhooks",
    )  # fmt: skip
    monkeypatch.setattr(Where, "resources", lambda self: here)
    made = CliRunner().invoke(
        cli_app, ["sidebar", "link", "--tenant", "demo", "--reader", "demo-agent", "--phone", "138 0013 8000", "--json"]
    )
    assert made.exit_code == 0, made.output
    answer = json.loads(made.output)
    assert (answer["reader"], answer["role"]) == ("demo-agent", "agent")
    assert answer["url"].startswith(f"{PAGE}?link=v1.")
    assert (
        "13800138000" not in answer["url"]
        and "8000" not in base64_decode(answer["url"].split("?link=")[1].split(".")[1]).decode()
    )
    page = sidebar.get(answer["url"].removeprefix(f"http://{HOST}"))
    assert page["statusCode"] == 200
    body = json.loads(sidebar.data(_boot(page)["session"], "")["body"])
    assert body["customer"]["phone"] == "+86 138****8000"
    # a reader of another tenant, a phone that is not one, too long a link: refused, nothing made
    for args in (["--tenant", "other-shop"], ["--phone", "abc"], ["--minutes", "61"]):
        refused = CliRunner().invoke(
            cli_app, ["sidebar", "link", "--reader", "demo-agent", "--phone", "13800138000", *args]
        )
        assert refused.exit_code == 2 and "v1." not in refused.output


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/v1/other-shop/sidebar?code=abc", 404, "此租户没有配置企业微信侧边栏"),
        ("/v1/demo/sidebar?phone=13800138000", 401, "需要有效的读取密钥"),
        ("/v1/demo/sidebar?code=a&code=b", 400, "请求的参数无效"),
        ("/v1/demo/sidebar?link=" + "a" * 600, 400, "请求的参数无效"),
    ],
)
def test_what_the_page_cannot_serve_is_a_clear_4xx_page(sidebar: Sidebar, path: str, status: int, says: str) -> None:
    page = sidebar.get(path)
    assert (page["statusCode"], page["headers"]["Content-Type"]) == (status, "text/html; charset=utf-8")
    assert says in page["body"]
    assert _reads(sidebar.stack) == []
