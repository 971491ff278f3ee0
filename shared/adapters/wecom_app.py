"""A WeCom self-built app (自建应用) as the sidebar uses it, over HTTPS through the SSRF guard.

Three server API calls (``https://qyapi.weixin.qq.com/cgi-bin/…``), each answering HTTP 200 with a JSON
body whose ``errcode`` is 0 on success:

- ``gettoken?corpid=&corpsecret=`` -> ``access_token`` and ``expires_in`` (7200 s): kept in this object
  (one per warm container and tenant) until a minute before it expires, as WeCom asks (the call is rate
  limited; fetching a token per request would exhaust it);
- ``auth/getuserinfo?access_token=&code=`` -> the ``userid`` of the member who opened the page with
  that OAuth ``code``. A code is WeCom's to check and usable once: it is never cached or retried.
  A code WeCom refuses (40029 invalid, 40163 used, 42003 expired), or one of a non-member (``openid``
  and no ``userid``), is ``None``: the page answers 401;
- ``ticket/get?access_token=&type=agent_config`` -> the app's jsapi ticket for ``wx.agentConfig`` (not
  the enterprise ticket of ``get_jsapi_ticket``, which signs ``wx.config``), kept until a minute before
  it expires too.

A token WeCom no longer accepts (40014 invalid, 42001 expired, 40001) is dropped and fetched once more.
Anything else (no answer, a 5xx, an errcode not listed, a body that is not JSON) is ``WeComUnavailable``:
the page says WeCom did not answer (503), never what it sent. Neither the secret, the token, the ticket
nor a code is logged: they travel in the URL's query, which ``SafeHttp`` never puts in an error.

``jsapi_signature`` is the JS-SDK's signature (附录 JS-SDK使用权限签名算法): SHA-1 hex of
``jsapi_ticket=…&noncestr=…&timestamp=…&url=…`` in exactly that order, values as they are (no URL
escaping), the URL without its ``#`` fragment.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from shared.adapters.http import SafeHttp

CALL_TIMEOUT_SECONDS = 3.0  # an agent waits for the page: each call's whole deadline
EXPIRY_MARGIN_SECONDS = 60  # a token or ticket is renewed this long before WeCom says it expires
REFUSED_CODE = frozenset({40029, 40163, 42003, 40027})  # invalid / used / expired OAuth code
STALE_TOKEN = frozenset({40014, 42001, 40001, 40082})  # the access token is no longer accepted


class WeComUnavailable(Exception):
    """WeCom did not answer usably (no answer, an error status, an unexpected errcode or body)."""


def jsapi_signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """The JS-SDK signature of ``wx.agentConfig`` (and ``wx.config``) for a page's ``url``."""
    page = url.split("#", 1)[0]
    return hashlib.sha1(  # noqa: S324 - WeCom's algorithm, not ours to choose
        f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}".encode()
    ).hexdigest()


class WeComApp:
    """One tenant's app: ``user_id(code)`` and ``agent_ticket()``; the access token and the ticket are
    kept (per warm container) until shortly before they expire. Thread-safe."""

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        corp_secret: Callable[[], str],
        http: SafeHttp,
        clock: Callable[[], float] = time.time,
        timeout: float = CALL_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.http = http
        self.clock = clock
        self.timeout = timeout
        self._lock = threading.Lock()  # the token (held while one is fetched) and the kept values
        self._ticket_lock = threading.Lock()  # held while a ticket is fetched
        self._token: tuple[str, float] | None = None  # (token, good until)
        self._ticket: tuple[str, float] | None = None
        self.calls: dict[str, int] = {"gettoken": 0, "getuserinfo": 0, "ticket": 0}  # what a test can count

    def _call(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        response = self.http.get(f"{self.base_url}/cgi-bin/{path}?{urlencode(query)}", {}, self.timeout)
        if response.status != 200:
            raise WeComUnavailable(f"WeCom {path.split('?')[0]} answered HTTP {response.status}")
        try:
            body = json.loads(response.text)
        except ValueError as exc:
            raise WeComUnavailable(f"WeCom {path} answered a body that is not JSON") from exc
        if not isinstance(body, dict) or not isinstance(body.get("errcode", 0), int):
            raise WeComUnavailable(f"WeCom {path} answered an unexpected body")
        return body

    def access_token(self) -> str:
        with self._lock:
            if self._token is not None and self._token[1] > self.clock():
                return self._token[0]
            self.calls["gettoken"] += 1
            body = self._call("gettoken", {"corpid": self.corp_id, "corpsecret": self.corp_secret()})
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if (
                body.get("errcode", 0) != 0
                or not isinstance(token, str)
                or not token
                or not isinstance(expires_in, int)
            ):
                raise WeComUnavailable(f"WeCom gettoken refused (errcode {body.get('errcode')})")
            self._token = (token, self.clock() + max(expires_in - EXPIRY_MARGIN_SECONDS, 1))
            return token

    def _drop_token(self, token: str) -> None:
        with self._lock:
            if self._token is not None and self._token[0] == token:
                self._token = None
                self._ticket = None

    def _with_token(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        """A call with the access token, fetched once more when WeCom no longer accepts the kept one."""
        for attempt in (1, 2):
            token = self.access_token()
            body = self._call(path, {"access_token": token, **query})
            if body.get("errcode", 0) in STALE_TOKEN and attempt == 1:
                self._drop_token(token)
                continue
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    def user_id(self, code: str) -> str | None:
        """The member who opened the page with this OAuth ``code``; ``None`` for a code WeCom refuses
        (invalid, used, expired) or one of someone who is not a member of the enterprise."""
        self.calls["getuserinfo"] += 1
        body = self._with_token("auth/getuserinfo", {"code": code})
        errcode = body.get("errcode", 0)
        if errcode in REFUSED_CODE:
            return None
        if errcode != 0:
            raise WeComUnavailable(f"WeCom auth/getuserinfo refused (errcode {errcode})")
        user = body.get("userid") or body.get("UserId")  # the older user/getuserinfo spelled it UserId
        return user if isinstance(user, str) and user else None

    def agent_ticket(self) -> str:
        """The app's jsapi ticket (``ticket/get?type=agent_config``), kept until shortly before it expires.
        One fetch at a time (WeCom allows an app 100 an hour): concurrent callers wait for it."""
        with self._ticket_lock:
            with self._lock:
                if self._ticket is not None and self._ticket[1] > self.clock():
                    return self._ticket[0]
            self.calls["ticket"] += 1
            body = self._with_token("ticket/get", {"type": "agent_config"})
            ticket, expires_in = body.get("ticket"), body.get("expires_in")
            if (
                body.get("errcode", 0) != 0
                or not isinstance(ticket, str)
                or not ticket
                or not isinstance(expires_in, int)
            ):
                raise WeComUnavailable(f"WeCom ticket/get refused (errcode {body.get('errcode')})")
            with self._lock:
                self._ticket = (ticket, self.clock() + max(expires_in - EXPIRY_MARGIN_SECONDS, 1))
            return ticket
