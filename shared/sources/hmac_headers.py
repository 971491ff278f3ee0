"""The base64 HMAC-SHA256 header schemes several platforms share (Zendesk, WooCommerce): any configured
secret may match, each tried without short-circuiting."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any


def b64_hmac(secret: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def matches_any(given: str, secrets: Sequence[str], make: Any) -> bool:
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(make(secret).encode(), given.strip().encode())
    return matched
