"""The sidebar's pieces without AWS: the JS-SDK signature (WeCom's documented example), the signed
sessions and links, the page's language, and the WeCom app client against the fake WeCom over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from infra.sandbox.http_servers import serve
from infra.sandbox.wecom_app import FakeCorp, FakeWeComApp
from shared.adapters.http import SafeHttp
from shared.adapters.wecom_app import WeComApp, WeComUnavailable, jsapi_signature
from shared.read.sidebar_page import csp, language, message_page, page
from shared.read.sidebar_session import Grant, issue, signing_keys, verify

KEYS = [b"a-signing-key-of-at-least-32-characters!", b"the-previous-signing-key-0123456789abcdef"]
DIGEST = "ab" * 32


def test_the_agent_config_signature_matches_wecoms_documented_example() -> None:
    # 企业微信 "JS-SDK使用权限签名算法" (developer.work.weixin.qq.com/document/path/90506), its example
    ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    url = "http://mp.weixin.qq.com?params=value"
    signature = jsapi_signature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url)
    assert signature == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    # the URL's fragment is not part of what is signed
    assert jsapi_signature(ticket, "Wm3WZYTPz0wzccnW", "1414587457", url + "#top") == signature


def test_a_session_verifies_with_any_current_key_and_only_as_its_kind_tenant_and_time() -> None:
    token, grant = issue("session", "demo", "wecom:ZhangSan", "agent", "wecom", 12, KEYS, now=1_000_000)
    assert verify(token, "session", "demo", KEYS, now=1_000_000 + 60) == grant
    assert verify(token, "session", "demo", KEYS[::-1], now=1_000_000 + 60) == grant  # signed by a key now older
    assert verify(token, "session", "demo", KEYS, now=1_000_000 + 12 * 60) == "expired"
    assert verify(token, "link", "demo", KEYS, now=1_000_000) == "bad_signature"
    assert verify(token, "session", "other", KEYS, now=1_000_000) == "wrong_tenant"
    assert verify(token, "session", "demo", [b"x" * 40], now=1_000_000) == "bad_signature"
    version, payload, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["role"] = "supervisor"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    assert verify(f"{version}.{forged}.{mac}", "session", "demo", KEYS, now=1_000_000) == "bad_signature"
    for junk in (None, 7, "", "a.b", "v2.a.b", "v1.a.b.c", "v1.!!.??", "v1." + "a" * 2000 + ".b"):
        assert verify(junk, "session", "demo", KEYS) in ("malformed", "bad_signature")


def test_a_phone_grant_carries_the_digest_only() -> None:
    token, grant = issue("link", "demo", "demo-agent", "agent", "phone", 5, KEYS, DIGEST)
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
    assert payload == {
        "tenant": "demo",
        "reader": "demo-agent",
        "role": "agent",
        "subject": "phone",
        "expires": grant.expires,
        "digest": DIGEST,
    }
    with pytest.raises(ValueError, match="digest"):
        Grant("link", "demo", "demo-agent", "agent", "phone", 1, None)
    with pytest.raises(ValueError, match="64 hex"):
        Grant("link", "demo", "demo-agent", "agent", "phone", 1, "13800138000")
    with pytest.raises(ValueError, match="role"):
        Grant("session", "demo", "x", "admin", "wecom", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("secret", [None, {}, {"keys": []}, {"keys": ["short"]}, {"keys": "a" * 40}, {"keys": [None]}])
def test_a_malformed_signing_secret_is_refused(secret: object) -> None:
    with pytest.raises(ValueError, match="keys"):
        signing_keys(secret)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lang", "accept", "expected"),
    [
        (None, None, "zh-CN"),
        ("en", "zh-CN", "en"),
        ("zh", "en", "zh-CN"),
        ("fr", "en-US,en;q=0.8", "en"),
        (None, "en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        (None, "de-DE,en;q=0.5,zh;q=0.7", "zh-CN"),
        (None, "fr-FR", "zh-CN"),
        (None, "en;q=0,zh;q=0.1", "zh-CN"),
        (None, "<script>", "zh-CN"),
    ],
)
def test_the_page_language(lang: str | None, accept: str | None, expected: str) -> None:
    assert language(lang, accept) == expected


def test_the_page_escapes_what_it_holds_and_allows_only_its_own_scripts() -> None:
    html = page(
        "en", "wecom", 'v1.a"</script><script>x</script>.b', ("https://res.wx.qq.com/open/js/jweixin-1.2.0.js",), "N1"
    )
    boot = html.split('id="boot">', 1)[1].split("</script>", 1)[0]
    assert "<" not in boot and ">" not in boot
    assert json.loads(boot)["session"] == 'v1.a"</script><script>x</script>.b'
    assert csp("N1", ("https://res.wx.qq.com/open/js/jweixin-1.2.0.js",)).startswith(
        "default-src 'none'; script-src 'nonce-N1' https://res.wx.qq.com; style-src 'nonce-N1'; connect-src 'self'"
    )
    text = message_page("zh-CN", "unauthorized_title", "unauthorized", "N2", ("sign_in", 'https://x/?a=1&b="2"'))
    assert 'href="https://x/?a=1&amp;b=&quot;2&quot;"' in text


@pytest.fixture
def wecom() -> Iterator[FakeWeComApp]:
    fake = FakeWeComApp([FakeCorp("wwcorp1", CORP_SECRET, 1000002)])
    serve(fake.server)
    yield fake
    fake.server.shutdown()


CORP_SECRET = "the-corp-secret"


def _client(fake: FakeWeComApp, secret: str = CORP_SECRET) -> WeComApp:
    return WeComApp(fake.url, "wwcorp1", lambda: secret, SafeHttp(allow_loopback={fake.server.server_port}))


def test_the_client_keeps_its_token_and_ticket_and_a_code_serves_once(wecom: FakeWeComApp) -> None:
    client = _client(wecom)
    codes = [wecom.issue_code("wwcorp1", "ZhangSan") for _ in range(3)]
    assert [client.user_id(c) for c in codes] == ["ZhangSan"] * 3
    assert client.user_id(codes[0]) is None  # used
    assert client.user_id("never-issued") is None
    assert client.user_id(wecom.issue_code("wwcorp1", "LiSi", seconds=-1)) is None  # expired
    ticket = client.agent_ticket()
    assert client.agent_ticket() == ticket
    assert wecom.calls == {"gettoken": 1, "getuserinfo": 6, "ticket": 1, "authorize": 0}


def test_the_client_fetches_a_new_token_once_when_wecom_no_longer_accepts_it(wecom: FakeWeComApp) -> None:
    client = _client(wecom)
    client.agent_ticket()
    wecom.corps["wwcorp1"].tokens.clear()  # WeCom expired it early (another container fetched a new one)
    assert client.user_id(wecom.issue_code("wwcorp1", "ZhangSan")) == "ZhangSan"
    assert wecom.calls["gettoken"] == 2


def test_a_wrong_secret_or_no_wecom_is_unavailable_not_a_refused_code(wecom: FakeWeComApp) -> None:
    with pytest.raises(WeComUnavailable, match="gettoken refused"):
        _client(wecom, secret="wrong").user_id(wecom.issue_code("wwcorp1", "ZhangSan"))
    gone = WeComApp("http://127.0.0.1:9", "wwcorp1", lambda: "s", SafeHttp(allow_loopback={9}), timeout=1)
    with pytest.raises(WeComUnavailable, match="HTTP 599"):
        gone.user_id("code")


def test_concurrent_sign_ins_fetch_one_token_and_one_ticket_and_a_code_serves_one_of_them(
    wecom: FakeWeComApp,
) -> None:
    client = _client(wecom)
    codes = [wecom.issue_code("wwcorp1", f"user{n}") for n in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        users = list(pool.map(client.user_id, codes))
        tickets = set(pool.map(lambda _: client.agent_ticket(), range(8)))
        shared = wecom.issue_code("wwcorp1", "ZhangSan")
        twice = list(pool.map(client.user_id, [shared, shared]))
    assert users == [f"user{n}" for n in range(8)]
    assert len(tickets) == 1
    assert (twice.count("ZhangSan"), twice.count(None)) == (1, 1)
    assert (wecom.calls["gettoken"], wecom.calls["ticket"]) == (1, 1)
