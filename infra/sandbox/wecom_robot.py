"""A fake WeCom group robot that enforces the real robot's rules, for the sandbox and the tests.

``POST /cgi-bin/webhook/send?key=<key>`` answers like qyapi.weixin.qq.com: HTTP 200 with an
``errcode`` — 93000 for an unknown key, 45009 past 20 messages in a minute per key, 40058 for
markdown over 4096 bytes or text over 2048 bytes, 40008 for an unknown message type, 0 otherwise —
and keeps every accepted message so a test or the demo can read what the group saw
(``GET /_messages``). ``POST /_control`` with ``{"busy": n}`` makes the next n requests answer -1.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

from infra.sandbox.http_servers import Server, _Quiet
from shared.delivery.robot import (
    BUSY,
    INVALID_KEY,
    MARKDOWN_MAX_BYTES,
    MESSAGES_PER_MINUTE,
    OK,
    RATE_LIMITED,
    TEXT_MAX_BYTES,
    TOO_LONG,
)

UNKNOWN_TYPE = 40008


class FakeRobotService:
    """The robot's rules, without HTTP (the tests drive this directly, the sandbox through HTTP)."""

    def __init__(self, keys: set[str], clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.clock = clock
        self.messages: list[dict[str, Any]] = []  # accepted: {"key", "at", "payload"}
        self.refused: list[tuple[str, int]] = []  # (key, errcode)
        self.busy = 0
        self._recent: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def handle(self, key: str, payload: Any) -> int:
        with self.lock:
            code = self._check(key, payload)
            if code == OK:
                self.messages.append({"key": key, "at": self.clock(), "payload": payload})
            else:
                self.refused.append((key, code))
            return code

    def _check(self, key: str, payload: Any) -> int:
        if key not in self.keys:
            return INVALID_KEY
        if self.busy:
            self.busy -= 1
            return BUSY
        now = self.clock()
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= MESSAGES_PER_MINUTE:
            return RATE_LIMITED
        kind = payload.get("msgtype") if isinstance(payload, dict) else None
        limits = {"markdown": MARKDOWN_MAX_BYTES, "markdown_v2": MARKDOWN_MAX_BYTES, "text": TEXT_MAX_BYTES}
        if kind not in limits:
            return UNKNOWN_TYPE
        content = (payload.get(kind) or {}).get("content", "")
        if len(str(content).encode("utf-8")) > limits[kind]:
            return TOO_LONG
        recent.append(now)
        return OK

    def contents(self, key: str | None = None) -> list[str]:
        with self.lock:
            return [m["payload"][m["payload"]["msgtype"]]["content"] for m in self.messages if key in (None, m["key"])]


class FakeWeComRobot:
    def __init__(self, keys: set[str], host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = FakeRobotService(keys)
        service = self.service

        class Handler(_Quiet):
            def do_POST(self) -> None:
                url = urlparse(self.path)
                body = self._body()
                if url.path == "/_control":
                    service.busy = int(json.loads(body).get("busy", 0))
                    self._reply(200, b"{}")
                    return
                if url.path != "/cgi-bin/webhook/send":
                    self._reply(404, b'{"errcode": 404, "errmsg": "not found"}')
                    return
                key = (parse_qs(url.query).get("key") or [""])[0]
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                code = service.handle(key, payload)
                self._reply(200, json.dumps({"errcode": code, "errmsg": "ok" if code == OK else "error"}).encode())

            def do_GET(self) -> None:
                with service.lock:
                    self._reply(200, json.dumps(service.messages, ensure_ascii=False).encode())

        self.server = Server((host, port), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"
