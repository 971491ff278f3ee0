"""The WeCom group robot over HTTPS, through the SSRF guard."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from shared.adapters.http import SafeHttp
from shared.delivery.robot import BUSY, errcode_of

SEND_TIMEOUT_SECONDS = 5.0  # a robot call's wall-clock deadline (SafeHttp), WeComRobotHttp's default


class WeComRobotHttp:
    """POST to ``<base>/cgi-bin/webhook/send?key=<key>`` through ``SafeHttp`` like every outbound call:
    an API base resolving to a metadata, private or otherwise non-public address raises
    ``TargetRefused`` before anything is sent. The key is the credential: it is never logged, and
    neither is the URL that contains it. ``deadline`` (``time.monotonic()`` based; see ``within``)
    bounds each send besides ``timeout``; no whole answer in time counts as busy."""

    def __init__(
        self,
        base_url: str,
        timeout: float = SEND_TIMEOUT_SECONDS,
        http: SafeHttp | None = None,
        deadline: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = http if http is not None else SafeHttp()
        self.deadline = deadline

    def within(self, deadline: float | None) -> WeComRobotHttp:
        """The same client (and connections), every send also ending by ``deadline``."""
        return WeComRobotHttp(self.base_url, self.timeout, self.http, deadline)

    def send(self, key: str, payload: dict[str, Any]) -> int:
        response = self.http.post(
            f"{self.base_url}/cgi-bin/webhook/send?key={quote(key, safe='')}",
            json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            {"Content-Type": "application/json"},
            self.timeout,
            deadline=self.deadline,
        )
        return errcode_of(response.text) if response.status == 200 else BUSY
