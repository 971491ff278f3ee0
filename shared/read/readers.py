"""Who may read the customer view: readers, their roles and their bearer keys.

A reader (an agent's sidebar, a supervisor, another system) is one secret
``aftersync/<env>/readers/<name>`` (``shared.constants.reader_secret_name``)::

    {"tenant": "demo", "role": "agent", "keys": ["demo-agent.<random>", ...]}

It presents ``Authorization: Bearer <name>.<random>``: the name finds the secret, and the whole key is
compared in constant time with every key the secret holds (all of them, with no early exit: two keys
while one is rotated out). The reader's tenant must be the tenant the request names.

Every refusal is the same 401 for the client (``Refusal.reason`` is always ``unauthorized``): it never
tells whether the name, the key or the tenant was wrong. ``Refusal.detail`` says which, for the read
audit and the metrics only. A header of any shape is refused, never raised on.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.constants import reader_secret_name
from shared.errors import ConfigurationError

Role = Literal["agent", "supervisor", "system"]
ROLES: tuple[Role, ...] = ("agent", "supervisor", "system")

MIN_KEY_LENGTH = 32
MAX_HEADER_LENGTH = 512  # a longer Authorization header is malformed, whatever it holds
NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
_BEARER = re.compile(rf"(?i:Bearer) +(?P<key>(?P<name>{NAME_PATTERN})\.[A-Za-z0-9_-]+)")

UNAUTHORIZED = "unauthorized"  # the only reason a client is given
WWW_AUTHENTICATE = 'Bearer realm="aftersync"'

# Why a request was refused (internal: read audit and metrics, never the client)
RefusalDetail = Literal[
    "missing_header",  # no Authorization header, or an empty one
    "malformed_header",  # not "Bearer <name>.<random>" (or too long)
    "unknown_reader",  # no secret for that name
    "reader_secret_invalid",  # the secret exists but is not a valid reader secret
    "wrong_key",  # the secret exists, the key matches none of its keys
    "wrong_tenant",  # a valid key of a reader of another tenant
]

Key = Annotated[
    str, StringConstraints(min_length=MIN_KEY_LENGTH, max_length=MAX_HEADER_LENGTH, pattern=r"^[\x21-\x7e]+$")
]


class ReaderSecret(BaseModel):
    """A reader's secret, strictly (no coercion, no other field): a tenant, a role and at least one key
    of at least 32 characters."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    tenant: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    role: Role
    keys: Annotated[list[Key], Field(min_length=1)]


def parse_reader_secret(name: str, secret: Mapping[str, Any]) -> ReaderSecret:
    """The secret of reader ``name``; ``ValueError`` (a pydantic ``ValidationError`` for its shape)
    when it is not a reader secret. Every key must start with ``<name>.``: the name in a key is what
    finds the secret, so a key without it could never be presented."""
    parsed = ReaderSecret.model_validate(dict(secret))
    for n, key in enumerate(parsed.keys):
        if not key.startswith(f"{name}."):
            raise ValueError(f"reader {name!r}: keys.{n} does not start with the reader's name and a dot")
    return parsed


@dataclass(frozen=True)
class Reader:
    """An authenticated reader: who, for which tenant, with which role (what masking it gets)."""

    name: str
    tenant: str
    role: Role


@dataclass(frozen=True)
class Refusal:
    """A refused request: 401 ``unauthorized`` for the client whatever went wrong; ``detail`` (and the
    claimed ``reader`` name, when the header had a well-formed one) for the read audit only."""

    detail: RefusalDetail
    reader: str | None = None
    status: int = 401
    reason: str = UNAUTHORIZED


FetchSecret = Callable[[str], Mapping[str, Any] | None]


def secret_fetcher(get_json: Callable[[str], Mapping[str, Any] | None], prefix: str) -> FetchSecret:
    """``fetch_secret`` for ``authenticate`` over a secrets port's ``get_json`` (cached, in a Lambda):
    a reader's name -> its secret's JSON object, or ``None`` when there is no such secret."""
    return lambda name: get_json(reader_secret_name(prefix, name))


def bearer_key(authorization: object) -> tuple[str, str] | Refusal:
    """``(name, key)`` from an ``Authorization`` header value, or the refusal it earns."""
    if authorization is None or (isinstance(authorization, str) and not authorization.strip()):
        return Refusal("missing_header")
    if not isinstance(authorization, str) or len(authorization) > MAX_HEADER_LENGTH:
        return Refusal("malformed_header")
    match = _BEARER.fullmatch(authorization.strip())
    if match is None:
        return Refusal("malformed_header")
    return match["name"], match["key"]


def matches_any(presented: str, keys: Sequence[str]) -> bool:
    """Whether ``presented`` is one of ``keys``: compared with every one of them in constant time, with
    no early exit (how long it takes does not say which key, if any, matched)."""
    given = presented.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def authenticate(authorization: object, tenant: str, fetch_secret: FetchSecret) -> Reader | Refusal:
    """The reader an ``Authorization`` header names, if its key is one of that reader's and the reader
    belongs to ``tenant`` (the request path's); else a ``Refusal``.

    ``fetch_secret(name)`` returns the reader's secret (``None``: no such reader); an error reaching
    Secrets Manager propagates (a 5xx, not a 401: the key may be fine). A secret that is not a JSON
    object (``ConfigurationError`` from the secrets port) or not a valid reader secret refuses.
    """
    parsed = bearer_key(authorization)
    if isinstance(parsed, Refusal):
        return parsed
    name, presented = parsed
    try:
        raw = fetch_secret(name)
    except ConfigurationError:
        return Refusal("reader_secret_invalid", name)
    if raw is None:
        return Refusal("unknown_reader", name)
    try:
        secret = parse_reader_secret(name, raw)
    except ValueError:  # pydantic's ValidationError is one
        return Refusal("reader_secret_invalid", name)
    if not matches_any(presented, secret.keys):
        return Refusal("wrong_key", name)
    if secret.tenant != tenant:
        return Refusal("wrong_tenant", name)
    return Reader(name=name, tenant=secret.tenant, role=secret.role)
