"""Short-lived signed grants for the sidebar page: a page's session, and a call centre's screen-pop link.

A grant is ``v1.<payload>.<mac>``: the payload is base64url JSON, the MAC HMAC-SHA256 (base64url) over
``"aftersync-sidebar.v1." + kind + "." + payload`` with the environment's signing key
(``aftersync/<env>/sidebar/signing``: ``{"keys": [newest, older…]}``; the first signs, each verifies, all
compared in constant time with no early exit). The kind is part of what is signed, so a link is never
accepted as a session nor a session as a link.

- ``session``: what the page's script sends the data endpoint (``Authorization: Session <grant>``),
  bound to the tenant, the reader (``wecom:<userid>`` or a reader's name) and its role, for
  ``session_minutes`` (12 by default, at most 15). What it may ask: a WeCom page the external contact the
  JS-SDK names (``subject: wecom``); a screen pop the one phone it was opened for (``subject: phone``),
  carried as the tenant-salted HMAC the identity index is keyed by, never the number;
- ``link``: ``aftersync sidebar link`` makes a screen pop's URL (``…/sidebar?link=<grant>``) for a
  reader and a phone, for a few minutes. The URL lands in access logs and browser history; the phone is
  not in it (the grant carries its HMAC only), and the grant is useless once expired.

Nothing in a grant is secret (its payload is readable); it cannot be made or changed without the key.
``verify`` answers the grant or why it was refused (for metrics, never shown: the client gets one 401).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from shared.read.readers import ROLES, Role

VERSION = "v1"
DOMAIN = "aftersync-sidebar"
MIN_KEY_LENGTH = 32
MAX_GRANT_CHARS = 1024
MAX_LINK_MINUTES = 60
GrantKind = Literal["session", "link"]
Subject = Literal["wecom", "phone"]
Refused = Literal["malformed", "bad_signature", "expired", "wrong_kind", "wrong_tenant"]


@dataclass(frozen=True)
class Grant:
    kind: GrantKind
    tenant: str
    reader: str  # "wecom:<userid>" or a reader's name
    role: Role
    subject: Subject
    expires: int  # epoch seconds
    digest: str | None = None  # subject phone: the phone's selector HMAC (64 hex digits)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}")
        if (self.subject == "phone") != (self.digest is not None):
            raise ValueError("a phone grant carries the phone's digest, and only a phone grant does")
        if self.digest is not None and (len(self.digest) != 64 or set(self.digest) - set("0123456789abcdef")):
            raise ValueError("digest: 64 hex digits")


def signing_keys(secret: Mapping[str, Any] | None) -> list[bytes]:
    """The keys of the signing secret (``{"keys": [...]}``, each at least 32 characters); ``ValueError``
    when it is missing or malformed (a configuration error: the page cannot work without it)."""
    keys = (secret or {}).get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and len(k) >= MIN_KEY_LENGTH for k in keys):
        raise ValueError(f"the sidebar signing secret must hold keys: a list of strings of >= {MIN_KEY_LENGTH}")
    return [k.encode() for k in keys]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, kind: str, payload: str) -> bytes:
    return hmac.new(key, f"{DOMAIN}.{VERSION}.{kind}.{payload}".encode(), hashlib.sha256).digest()


def sign(grant: Grant, keys: Sequence[bytes]) -> str:
    body = {k: v for k, v in asdict(grant).items() if k != "kind" and v is not None}
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{VERSION}.{payload}.{_b64(_mac(keys[0], grant.kind, payload))}"


def issue(
    kind: GrantKind,
    tenant: str,
    reader: str,
    role: Role,
    subject: Subject,
    minutes: int,
    keys: Sequence[bytes],
    digest: str | None = None,
    now: float | None = None,
) -> tuple[str, Grant]:
    grant = Grant(
        kind, tenant, reader, role, subject, int((time.time() if now is None else now) + minutes * 60), digest
    )
    return sign(grant, keys), grant


def verify(
    token: object, kind: GrantKind, tenant: str, keys: Sequence[bytes], now: float | None = None
) -> Grant | Refused:
    """The grant ``token`` is, if a key signed it as ``kind`` for ``tenant`` and it has not expired."""
    if not isinstance(token, str) or len(token) > MAX_GRANT_CHARS or token.count(".") != 2:
        return "malformed"
    version, payload, mac = token.split(".")
    if version != VERSION:
        return "malformed"
    try:
        given = _unb64(mac)
    except (binascii.Error, ValueError):
        return "malformed"
    matched = False
    for key in keys:  # every key, no early exit
        matched |= hmac.compare_digest(given, _mac(key, kind, payload))
    if not matched:
        return "bad_signature"  # a link presented as a session lands here too: the kind is signed
    try:
        body = json.loads(_unb64(payload))
        grant = Grant(
            kind=kind,
            tenant=body["tenant"],
            reader=body["reader"],
            role=body["role"],
            subject=body["subject"],
            expires=int(body["expires"]),
            digest=body.get("digest"),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        return "malformed"
    if grant.tenant != tenant:
        return "wrong_tenant"
    if grant.expires <= (time.time() if now is None else now):
        return "expired"
    return grant
