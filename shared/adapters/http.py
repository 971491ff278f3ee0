"""Outbound HTTP for deliveries: urllib3 (bundled with botocore), no redirects, bounded timeouts."""

from __future__ import annotations

from functools import cached_property

import urllib3


class Urllib3Http:
    @cached_property
    def pool(self) -> urllib3.PoolManager:
        return urllib3.PoolManager(retries=False)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
        try:
            response = self.pool.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(total=timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            return 599, f"connection failed: {type(exc).__name__}"
        return response.status, response.data.decode("utf-8", "replace")
