"""Delivery to one target: send the fields the target has not acknowledged yet, then record the ack.

Delivery is driven by the current state, not by the triggering event, so reordered or coalesced
``entity.changed`` events still send every change exactly as far as the target has not seen it;
a replay of an acknowledged version sends nothing. What the target answers decides what happens
next: 2xx records the ack; 408, 425, 429 and 5xx (and connection failures) are worth retrying
(``DeliveryFailed``, with the target's ``Retry-After`` when it gave one); any other 4xx cannot
succeed by retrying (``DeliveryRejected``: straight to the target's DLQ with the response).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode

from shared.delivery.robot import MARKDOWN_MAX_BYTES, OK, RETRIABLE, cut_utf8, errcode_of
from shared.delivery.targets import (
    IDENTIFIERS,
    ApiKeyAuth,
    OAuth2ClientCredentials,
    StandardWebhooksAuth,
    TargetConfig,
    missing_fields,
    pending_changes,
    value_hash,
)
from shared.errors import ConfigurationError, DeliveryFailed
from shared.models import EntityChanged, utcnow
from shared.signing import standard_sign
from shared.state.merge import EntityState

NO_ANSWER = 599  # SafeHttp's status for no (whole) HTTP answer: connection failed, deadline, size cap
RETRIABLE_STATUSES = frozenset({408, 425, 429, NO_ANSWER})


def worth_retrying(status: int) -> bool:
    """The one rule for a target's answer: 408, 425, 429, 5xx and no answer at all may succeed later
    (retried); any other 4xx never will (the DLQ at once). Deliveries and actions both go by it."""
    return status in RETRIABLE_STATUSES or status >= 500


class DeliveryRejected(Exception):
    """The target refused the change in a way no retry can fix (a 4xx other than 408/425/429)."""


class DeliveryStore(Protocol):
    def load_for_delivery(
        self, tenant: str, entity_type: str, entity_id: str, target: str
    ) -> tuple[EntityState | None, dict[str, Any]]: ...

    def record_ack(self, state: EntityState, target: str, ack: dict[str, Any]) -> bool: ...


class HttpResponse(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...


class HttpPort(Protocol):
    def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float, method: str = "POST"
    ) -> HttpResponse: ...


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Literal["sent", "already_acknowledged", "nothing_new", "not_wanted"]
    version: int
    fields: tuple[str, ...] = ()
    payload_bytes: int = 0
    missing: tuple[str, ...] = ()  # fields the target's map names that the entity does not have


def deliver_change(
    changed: EntityChanged,
    target: TargetConfig,
    store: DeliveryStore,
    http: HttpPort,
    credentials: dict[str, Any],
) -> DeliveryResult:
    if changed.entity_type not in target.entity_types or not changed.entity_id.startswith(target.id_prefixes or ""):
        return DeliveryResult("not_wanted", changed.version)
    state, ack = store.load_for_delivery(changed.tenant, changed.entity_type, changed.entity_id, target.name)
    if state is None:
        raise DeliveryFailed(f"{changed.entity_type} {changed.entity_id} has no state yet")
    if ack.get("version", 0) >= state.version:
        return DeliveryResult("already_acknowledged", state.version)

    missing = missing_fields(target, state.entity_type, state.fields)
    sources = {name: clock.source for name, clock in state.clocks.items()}
    to_send, hashes = pending_changes(target, state.fields, sources, ack.get("hashes", {}))
    new_ack = {"version": state.version, "hashes": hashes, "payload_hash": ack.get("payload_hash", "")}
    if not to_send:
        store.record_ack(state, target.name, {**new_ack, "acked_at": utcnow().isoformat()})
        return DeliveryResult("nothing_new", state.version, missing=missing)

    try:
        changes = target.render(to_send)
        url = target.endpoint(state.entity_id, state.fields) if target.kind == "http" else ""
    except ValueError as exc:  # a value or a path the target cannot take: no retry fixes it
        raise DeliveryRejected(f"target {target.name}: {exc}") from exc
    payload = {
        "tenant": state.tenant,
        "entity_type": state.entity_type,
        "entity_id": state.entity_id,
        "version": state.version,
        "identifiers": {k: state.fields.get(k) for k in IDENTIFIERS.get(state.entity_type, ()) if k in state.fields},
        "changes": changes,
    }
    payload_hash = value_hash(payload["changes"])
    if payload_hash == ack.get("payload_hash"):
        # The same bytes were acknowledged before (e.g. a value went back and forth): not sent again.
        store.record_ack(state, target.name, {**new_ack, "acked_at": utcnow().isoformat()})
        return DeliveryResult("nothing_new", state.version, missing=missing)
    if target.kind == "wecom":
        message_id = delivery_id(state.tenant, state.entity_type, state.entity_id, state.version, target.name)
        body = _to_robot(target, payload, credentials, http, message_id)
        store.record_ack(
            state, target.name, {**new_ack, "payload_hash": payload_hash, "acked_at": utcnow().isoformat()}
        )
        return DeliveryResult("sent", state.version, tuple(sorted(to_send)), len(body), missing)
    document = payload if target.body == "envelope" else {target.wrap: changes} if target.wrap else changes
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    message_id = delivery_id(state.tenant, state.entity_type, state.entity_id, state.version, target.name)
    headers = {
        "Content-Type": "application/json",
        **idempotency_header(target, message_id),
        **auth_headers(target, credentials, body, message_id, http),
    }
    response = http.post(url, body, headers, target.timeout_seconds, method=target.method)
    if not 200 <= response.status < 300:
        detail = f"target {target.name} {answered(response)}"
        if worth_retrying(response.status):
            raise DeliveryFailed(detail, retry_after=retry_after(response.headers))
        raise DeliveryRejected(detail)
    new_ack["payload_hash"] = payload_hash
    store.record_ack(state, target.name, {**new_ack, "acked_at": utcnow().isoformat()})
    return DeliveryResult("sent", state.version, tuple(sorted(to_send)), len(body), missing)


def answered(response: HttpResponse) -> str:
    """What a target answered, for a reason or a log line: its status and size, never its body (receivers
    echo what they were sent in their errors: a name, an address, a phone)."""
    if response.status == NO_ANSWER:  # our own words: why no answer came (connection, deadline, size)
        return f"answered HTTP {NO_ANSWER}: {response.text}"
    size = len(response.text.encode("utf-8", "replace"))
    return f"answered HTTP {response.status} (a {size}-byte body, not kept)"


def robot_markdown(payload: dict[str, Any]) -> str:
    """A change as a WeCom markdown message, cut by UTF-8 bytes to the robot's limit."""
    lines = [
        f"**{payload['entity_type']} {payload['entity_id']}** · version {payload['version']} ({payload['tenant']})"
    ]
    for field, value in sorted(payload["changes"].items()):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        lines.append(f"> {field}: {shown}")
    return cut_utf8("\n".join(lines), MARKDOWN_MAX_BYTES)


def _to_robot(
    target: TargetConfig, payload: dict[str, Any], credentials: dict[str, Any], http: HttpPort, message_id: str
) -> bytes:
    """POST the change to the group robot; its errcode decides: 0 sent, 45009 / -1 retry later, any
    other (93000: invalid key) never works."""
    key = credentials.get("key")
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f'target {target.name}: credentials must be {{"key": "<robot key>"}}')
    body = json.dumps({"msgtype": "markdown", "markdown": {"content": robot_markdown(payload)}}, ensure_ascii=False)
    url = f"{str(target.url).rstrip('/')}/cgi-bin/webhook/send?key={quote(key, safe='')}"
    headers = {"Content-Type": "application/json", **idempotency_header(target, message_id)}
    response = http.post(url, body.encode(), headers, target.timeout_seconds)
    if response.status != 200:
        raise DeliveryFailed(f"robot {target.name} answered HTTP {response.status}")
    code = errcode_of(response.text)
    if code in RETRIABLE:
        raise DeliveryFailed(f"robot {target.name} answered errcode {code}", retry_after=60 if code == 45009 else None)
    if code != OK:
        raise DeliveryRejected(f"robot {target.name} answered errcode {code}")
    return body.encode()


def retry_after(headers: dict[str, str]) -> int | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = (headers or {}).get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return int(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, int((when - datetime.now(UTC)).total_seconds()))


_TOKENS: dict[str, tuple[str, float]] = {}  # target -> (bearer token, expires at): per warm container
_TOKEN_LOCKS: dict[str, threading.Lock] = {}  # target -> its lock: a batch's threads fetch one token, not one each


def delivery_id(tenant: str, entity_type: str, entity_id: str, version: int, target: str) -> str:
    """The id of one delivery of one change: the same on every retry and re-delivery of this version to
    this target, different for anything else. Receivers dedupe on it, so it must never be derived from
    the changed values (a value that flips back, or the same change on two orders, would collide)."""
    return _message_id(tenant, entity_type, entity_id, str(version), target)


def action_id(tenant: str, ledger_key: str, target: str) -> str:
    """The id of one after-sales action's request to one target (the same on every retry of it)."""
    return _message_id(tenant, "action", ledger_key, target)


def _message_id(*parts: str) -> str:
    return f"msg_{hashlib.sha256(chr(0x1F).join(parts).encode()).hexdigest()[:32]}"


def idempotency_header(target: TargetConfig, message_id: str) -> dict[str, str]:
    """``Idempotency-Key`` for HTTP targets; a Standard Webhooks target gets ``webhook-id`` instead (its
    spec's dedupe key, set with the signature)."""
    return {} if isinstance(target.auth, StandardWebhooksAuth) else {"Idempotency-Key": message_id}


def auth_headers(
    target: TargetConfig, credentials: dict[str, Any], body: bytes, message_id: str, http: HttpPort
) -> dict[str, str]:
    """What authenticates a request to ``target``; for Standard Webhooks also its ``webhook-id``
    (``message_id``: see ``delivery_id``) and timestamp, which the signature covers."""
    auth = target.auth
    if isinstance(auth, ApiKeyAuth):
        value = credentials.get("value")
        header = credentials.get("header") or auth.header
        if not isinstance(value, str) or not value or not isinstance(header, str):
            raise ConfigurationError(f'target {target.name}: credentials must be {{"value": "<key>"}}')
        return {header: value}
    if isinstance(auth, StandardWebhooksAuth):
        secret = credentials.get("secret")
        if not isinstance(secret, str) or not secret:
            raise ConfigurationError(f'target {target.name}: credentials must be {{"secret": "whsec_..."}}')
        timestamp = str(int(time.time()))
        return {
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": standard_sign(secret, message_id, timestamp, body),
        }
    if isinstance(auth, OAuth2ClientCredentials):
        return {"Authorization": f"Bearer {_token(target, auth, credentials, http)}"}
    raise ConfigurationError(f"target {target.name}: unknown auth kind")


def _token(target: TargetConfig, auth: OAuth2ClientCredentials, credentials: dict[str, Any], http: HttpPort) -> str:
    with _TOKEN_LOCKS.setdefault(target.name, threading.Lock()):
        return _fetch_token(target, auth, credentials, http)


def _fetch_token(
    target: TargetConfig, auth: OAuth2ClientCredentials, credentials: dict[str, Any], http: HttpPort
) -> str:
    cached = _TOKENS.get(target.name)
    if cached and cached[1] > time.time():
        return cached[0]
    client_id, client_secret = credentials.get("client_id"), credentials.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise ConfigurationError(f"target {target.name}: credentials need client_id and client_secret")
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    if auth.scope:
        form["scope"] = auth.scope
    response = http.post(
        str(auth.token_url),
        urlencode(form).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        target.timeout_seconds,
    )
    if response.status != 200:
        raise DeliveryFailed(f"target {target.name}: token endpoint answered HTTP {response.status}")
    try:
        document = json.loads(response.text)
        token, lifetime = str(document["access_token"]), int(document.get("expires_in", 300))
    except (ValueError, KeyError, TypeError) as exc:
        raise DeliveryFailed(f"target {target.name}: token endpoint answered no access_token") from exc
    _TOKENS[target.name] = (token, time.time() + max(0, lifetime - 60))  # refreshed a minute early
    return token
