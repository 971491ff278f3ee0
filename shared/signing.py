"""Standard Webhooks signing (``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``): in-house
systems sign what they send us with it, and we sign what we send to Standard Webhooks targets."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def secret_key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return secret.encode()  # a plain shared secret, for systems that do not use whsec_ keys


def standard_sign(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret_key(secret), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"
