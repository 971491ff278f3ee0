"""A fake WeCom for the sidebar page: the server API, the OAuth page and a JS-SDK stand-in, on loopback.

It keeps WeCom's rules as far as the sidebar meets them, so the real handler runs against it unchanged:

- ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` -> an access token (``expires_in`` 7200); a wrong secret is
  errcode 40001, an unknown corp 40013;
- ``GET /cgi-bin/auth/getuserinfo?access_token=&code=`` -> ``userid`` of a code this fake issued, usable
  once (40163 after) and for 5 minutes (42003 after); any other code 40029; a bad token 40014;
- ``GET /cgi-bin/ticket/get?access_token=&type=agent_config`` -> the app's jsapi ticket (7200 s);
- ``GET /connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=snsapi_base&state=&agentid=``
  -> 302 to ``redirect_uri`` with a fresh ``code`` (for the member named by the ``fakewecom_userid`` cookie)
  and the ``state``; a redirect off loopback is refused (WeCom's trusted-domain rule: 50001 / redirect_uri);
- ``GET /jwxwork.js``: the JS-SDK stand-in. ``wx.agentConfig`` checks the signature as WeCom does (SHA-1
  of ``jsapi_ticket=…&noncestr=…&timestamp=…&url=<the page's URL>`` against the tickets this fake gave out
  and has not expired, read when it is called from ``/jwxwork-tickets.js``) and ``fail``s with
  ``agentConfig:invalid signature`` otherwise;
  ``wx.invoke('getCurExternalContact')`` answers the external contact the ``fakewecom_external_userid``
  cookie names (``fail_without context of external contact`` with none), only after a good agentConfig
  that listed it;
- ``GET /open-sidebar?tenant=&userid=&external_userid=[&lang=]``: what WeCom does when an agent opens the
  sidebar in a chat: sets the two cookies (cookies are per host, not per port: the page on the API's port
  and the script from this fake's both see them) and goes to the tenant's sidebar page, which signs in
  through ``/connect/oauth2/authorize`` like the real one. ``aftersync local`` prints this link, so a
  browser needs no WeCom.

``issue_code(corp_id, userid)`` gives a test a code without a browser; ``calls`` counts the server API
calls (a test checks the token and ticket are kept, not fetched per request).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from infra.sandbox.http_servers import Server, _Quiet

TOKEN_SECONDS = 7200
TICKET_SECONDS = 7200
CODE_SECONDS = 300
USER_COOKIE = "fakewecom_userid"
CONTACT_COOKIE = "fakewecom_external_userid"
_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")  # what a WeCom user id or external user id is made of


@dataclass
class FakeCorp:
    corp_id: str
    secret: str
    agent_id: int
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at
    tickets: dict[str, float] = field(default_factory=dict)  # agent_config ticket -> expires at


class FakeWeComApp:
    def __init__(
        self,
        corps: list[FakeCorp],
        pages: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``corps``: the enterprises and their apps; ``pages``: tenant -> its sidebar page's URL (for
        ``/open-sidebar``; the sandbox sets it once the API listens)."""
        self.corps = {c.corp_id: c for c in corps}
        self.pages = dict(pages or {})
        self.clock = clock
        self.codes: dict[str, tuple[str, str, float]] = {}  # code -> (corp, userid, expires at)
        self.used: set[str] = set()
        self.calls: dict[str, int] = {"gettoken": 0, "getuserinfo": 0, "ticket": 0, "authorize": 0}
        self.lock = threading.Lock()
        outer = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                cookies = SimpleCookie(self.headers.get("Cookie") or "")
                jar = {k: m.value for k, m in cookies.items()}
                route = {
                    "/cgi-bin/gettoken": outer._gettoken,
                    "/cgi-bin/auth/getuserinfo": outer._getuserinfo,
                    "/cgi-bin/ticket/get": outer._ticket,
                }.get(parts.path)
                if route is not None:
                    self._reply(200, json.dumps(route(query)).encode())
                elif parts.path == "/connect/oauth2/authorize":
                    status, location, text = outer._authorize(query, jar)
                    headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
                    if location:
                        headers["Location"] = location
                    self._reply(status, text.encode(), headers)
                elif parts.path == "/open-sidebar":
                    self._open_sidebar(query)
                elif parts.path == "/jwxwork.js":
                    body = outer.script(jar.get(CONTACT_COOKIE)).encode()
                    self._reply(200, body, {"Content-Type": "application/javascript", "Cache-Control": "no-store"})
                elif parts.path == "/jwxwork-tickets.js":  # what agentConfig checks against, when it is called
                    body = f"window.__fakeWeComTickets = {_js(outer.valid_tickets())};".encode()
                    self._reply(200, body, {"Content-Type": "application/javascript", "Cache-Control": "no-store"})
                else:
                    self._reply(404, b'{"errcode":404,"errmsg":"not found"}')

            def _open_sidebar(self, query: dict[str, str]) -> None:
                page = outer.pages.get(query.get("tenant", "demo"))
                ids = (query.get("userid", ""), query.get("external_userid", ""))
                if page is None or not ids[0] or not all(_ID.fullmatch(v) for v in ids if v):
                    message = b"open-sidebar needs a tenant with a page, a userid and ids of [A-Za-z0-9_.@-]"
                    self._reply(400, message, {"Content-Type": "text/plain"})
                    return
                target = page + (f"?{urlencode({'lang': query['lang']})}" if query.get("lang") else "")
                cookies = [
                    f"{USER_COOKIE}={query['userid']}; Path=/; SameSite=Lax",
                    f"{CONTACT_COOKIE}={query.get('external_userid', '')}; Path=/; SameSite=Lax",
                ]
                self.send_response(302)
                for cookie in cookies:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Location", target)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = Server((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def open_sidebar_url(self, tenant: str, userid: str, external_userid: str, lang: str | None = None) -> str:
        query = {
            "tenant": tenant,
            "userid": userid,
            "external_userid": external_userid,
            **({"lang": lang} if lang else {}),
        }
        return f"{self.url}/open-sidebar?{urlencode(query)}"

    # --- the server API ------------------------------------------------------------------------------------
    def _corp_of_token(self, token: str | None) -> FakeCorp | None:
        now = self.clock()
        for corp in self.corps.values():
            if token is not None and corp.tokens.get(token, 0) > now:
                return corp
        return None

    def _gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.calls["gettoken"] += 1
            corp = self.corps.get(query.get("corpid", ""))
            if corp is None:
                return {"errcode": 40013, "errmsg": "invalid corpid"}
            if not secrets.compare_digest(query.get("corpsecret", "").encode(), corp.secret.encode()):
                return {"errcode": 40001, "errmsg": "invalid credential"}
            token = secrets.token_urlsafe(32)
            corp.tokens[token] = self.clock() + TOKEN_SECONDS
            return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": TOKEN_SECONDS}

    def _getuserinfo(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.calls["getuserinfo"] += 1
            corp = self._corp_of_token(query.get("access_token"))
            if corp is None:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            code = query.get("code", "")
            if code in self.used:
                return {"errcode": 40163, "errmsg": "oauth code already used"}
            found = self.codes.get(code)
            if found is None or found[0] != corp.corp_id:
                return {"errcode": 40029, "errmsg": "invalid code"}
            if found[2] <= self.clock():
                return {"errcode": 42003, "errmsg": "oauth code timeout"}
            self.used.add(code)
            del self.codes[code]
            return {"errcode": 0, "errmsg": "ok", "userid": found[1]}

    def _ticket(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.calls["ticket"] += 1
            corp = self._corp_of_token(query.get("access_token"))
            if corp is None:
                return {"errcode": 40014, "errmsg": "invalid access_token"}
            if query.get("type") != "agent_config":
                return {"errcode": 40097, "errmsg": "invalid args"}
            ticket = secrets.token_urlsafe(48)
            corp.tickets[ticket] = self.clock() + TICKET_SECONDS
            return {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": TICKET_SECONDS}

    def issue_code(self, corp_id: str, userid: str, seconds: float = CODE_SECONDS) -> str:
        with self.lock:
            code = secrets.token_urlsafe(24)
            self.codes[code] = (corp_id, userid, self.clock() + seconds)
            return code

    # --- the OAuth page and the JS-SDK --------------------------------------------------------------------
    def _authorize(self, query: dict[str, str], jar: dict[str, str]) -> tuple[int, str | None, str]:
        with self.lock:
            self.calls["authorize"] += 1
        corp = self.corps.get(query.get("appid", ""))
        redirect = query.get("redirect_uri", "")
        if corp is None or str(corp.agent_id) != query.get("agentid") or query.get("scope") != "snsapi_base":
            return 400, None, "invalid appid, agentid or scope"
        if query.get("response_type") != "code":
            return 400, None, "response_type must be code"
        target = urlsplit(redirect)
        if target.scheme not in ("http", "https") or target.hostname not in ("127.0.0.1", "localhost"):
            return 400, None, "redirect_uri is not on the app's trusted domain"
        user = jar.get(USER_COOKIE)
        if not user:
            return 400, None, "no member signed in to the fake WeCom: open /open-sidebar first"
        code = self.issue_code(corp.corp_id, user)
        joiner = "&" if target.query else "?"
        return 302, f"{redirect}{joiner}{urlencode({'code': code, 'state': query.get('state', '')})}", ""

    def valid_tickets(self) -> dict[str, list[str]]:
        now = self.clock()
        with self.lock:
            return {
                f"{c.corp_id}:{c.agent_id}": sorted(t for t, until in c.tickets.items() if until > now)
                for c in self.corps.values()
            }

    def script(self, contact: str | None) -> str:
        """The JS-SDK stand-in, with where to read the tickets from and the chat's external contact."""
        data = {"tickets": f"{self.url}/jwxwork-tickets.js", "contact": contact or ""}
        return STAND_IN.replace("__DATA__", _js(data))


def _js(value: Any) -> str:
    """JSON to embed in a script: nothing in it can end the script."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


STAND_IN = r"""
(function () {
  "use strict";
  var DATA = __DATA__;
  var granted = null;
  function sha1(text) {
    return crypto.subtle.digest("SHA-1", new TextEncoder().encode(text)).then(function (buffer) {
      return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    });
  }
  function check(c, tickets) {
    var url = location.href.split("#")[0];
    Promise.all((tickets[c.corpid + ":" + c.agentid] || []).map(function (t) {
      return sha1("jsapi_ticket=" + t + "&noncestr=" + c.nonceStr + "&timestamp=" + c.timestamp + "&url=" + url);
    })).then(function (signatures) {
      if (signatures.indexOf(c.signature) >= 0) {
        granted = c.jsApiList || [];
        if (c.success) c.success({errMsg: "agentConfig:ok"});
      } else if (c.fail) {
        c.fail({errMsg: "agentConfig:invalid signature"});
      }
    });
  }
  window.wx = {
    fake: true,
    agentConfig: function (c) {
      // the tickets the fake has given out by now (a script from the fake's origin, which the page's CSP
      // allows as it allows the JS-SDK itself): WeCom checks the signature when agentConfig is called
      var load = document.createElement("script");
      load.src = DATA.tickets + "?t=" + Date.now();
      load.onerror = function () { if (c.fail) c.fail({errMsg: "agentConfig:fail"}); };
      load.onload = function () { check(c, window.__fakeWeComTickets || {}); };
      document.head.appendChild(load);
    },
    invoke: function (name, args, callback) {
      if (!granted || granted.indexOf(name) < 0) return callback({err_msg: name + ":fail_no permission"});
      if (name !== "getCurExternalContact") return callback({err_msg: name + ":fail_not supported"});
      if (!DATA.contact) return callback({err_msg: name + ":fail_without context of external contact"});
      callback({err_msg: "getCurExternalContact:ok", userId: DATA.contact});
    },
    config: function () {},
    ready: function (f) { f(); },
    error: function () {}
  };
})();
"""
