"""Downstream targets as declarative config (validated by pydantic) and the change-only payload.

A target declares where it is, how it authenticates, which entity types and fields it wants, how
canonical fields map to its own names and codes, and how hard to try: a rate limit, a timeout, a
retry policy (exponential backoff with jitter, through the queue's visibility) and a circuit
breaker. Adding a target is config only: an entry in ``cdk.json`` and its secret.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import string
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.errors import UnusableValue
from shared.models import ENTITY_MODELS, EntityType

MESSAGE_KINDS = frozenset({"sms", "email"})
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
SENDER_ID = re.compile(r"[A-Za-z0-9]{1,11}")

# Identifiers always sent with a change so the target can find its record.
IDENTIFIERS: dict[str, tuple[str, ...]] = {"order": ("order_id", "order_number", "channel")}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiKeyAuth(_Frozen):
    """A static key in a header; the secret is ``{"value": "<key>"}`` (or ``{"header", "value"}``)."""

    kind: Literal["api_key"] = "api_key"
    header: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] = "X-Api-Key"


class StandardWebhooksAuth(_Frozen):
    """Signed like Standard Webhooks (``webhook-id/-timestamp/-signature``); secret ``{"secret": "whsec_…"}``."""

    kind: Literal["standard_webhooks"]


class OAuth2ClientCredentials(_Frozen):
    """A bearer token from ``token_url`` (cached until shortly before it expires); secret
    ``{"client_id": …, "client_secret": …}``."""

    kind: Literal["oauth2_client_credentials"]
    token_url: HttpUrl
    scope: str | None = None


Auth = Annotated[ApiKeyAuth | StandardWebhooksAuth | OAuth2ClientCredentials, Field(discriminator="kind")]


class RetryPolicy(_Frozen):
    max_attempts: Annotated[int, Field(ge=2, le=100)] = 30  # then the target's DLQ, with the last error
    base_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    max_seconds: Annotated[int, Field(ge=1, le=43200)] = 900

    def delay(self, attempt: int, rng: random.Random | None = None) -> int:
        """Exponential backoff with full jitter: uniform in [cap/2, cap], cap = base * 2^(attempt-1)."""
        cap = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return max(1, round((rng or random).uniform(cap / 2, cap)))


class CircuitPolicy(_Frozen):
    failures_to_open: Annotated[int, Field(ge=1, le=100)] = 5  # consecutive failures
    open_seconds: Annotated[int, Field(ge=5, le=3600)] = 60  # then one try decides: close or reopen
    # How long a warm container trusts the circuit it last read (0: read it before every delivery). A
    # failure the container sees updates its copy at once; one another container sees reaches it after
    # this long at most, or with its own next failure (whose write returns the circuit's state).
    cache_seconds: Annotated[float, Field(ge=0, le=60)] = 5


# A container sends one record at a time; at ~100 ms a call it carries about this many a second. A rate
# limited target's queue gets the concurrency its limit needs at that pace, and no more.
DELIVERIES_PER_CONTAINER_SECOND = 10


class TargetConfig(_Frozen):
    """One downstream system. Without ``field_map``, ``fields`` (or every field) go under their
    canonical names; with it, ``{"<target field>": "<canonical field>"}`` decides what is sent and how
    it is named, and ``value_maps`` translate codes (``{"status": {"closed": "90"}}``)."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")]
    # http: a REST endpoint; wecom: a WeCom group robot (url = the robot API base, key in the secret),
    # which gets each change as a markdown message, within the robot's 20 messages a minute;
    # sms / email: customer notifications through SNS / SES from the templates
    # (shared/automation/notification_templates.json), called by the customer-notify rule only
    kind: Literal["http", "wecom", "sms", "email"] = "http"
    url: HttpUrl | None = None  # http and wecom only
    # email: the From address (a verified SES identity); sms: an optional sender ID where allowed
    sender: str | None = None
    languages: dict[str, Literal["zh-CN", "en"]] = {}  # tenant -> the language its customers are written in
    default_language: Literal["zh-CN", "en"] = "en"
    entity_types: Annotated[tuple[EntityType, ...], Field(min_length=1)]
    fields: tuple[str, ...] = ()
    field_map: dict[str, str] = {}
    value_maps: dict[str, dict[str, Any]] = {}
    auth: Auth = ApiKeyAuth()
    rate_limit_per_second: Annotated[int, Field(ge=1, le=10000)] | None = None
    # Most containers delivering to this target at once (its queue's event source mapping); without it a
    # rate-limited target gets what its limit needs (``queue_concurrency``), any other is not capped.
    max_concurrency: Annotated[int, Field(ge=2, le=1000)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=25)] = 5.0
    # False: a target only the after-sales automation calls (payment, WMS, OMS actions), with no
    # queue of entity changes of its own
    push_changes: bool = True
    # Only entities whose id starts with one of these (e.g. "zendesk:" for a help desk's write-back:
    # the tickets it knows); routed by EventBridge, so the others never reach the target's queue.
    id_prefixes: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    # http only: how a change is sent. The default POSTs the change envelope to url. A REST API of
    # records takes e.g. PUT {url}{path}, path placeholders ({ticket_id}) filled from the entity's
    # fields (URL-encoded), with the changes alone as the body, optionally under one key ({"ticket": …}).
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    path: Annotated[str, Field(pattern=r"^(/[^\s?#]*)?$", max_length=200)] = ""
    body: Literal["envelope", "changes"] = "envelope"
    wrap: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")] | None = None
    # canonical field -> the JSON type the target insists on ("1512863381481" -> 1512863381481)
    value_types: dict[str, Literal["integer", "string"]] = {}
    retry: RetryPolicy = RetryPolicy()
    circuit: CircuitPolicy = CircuitPolicy()

    @model_validator(mode="before")
    @classmethod
    def _api_key_by_default(cls, data: Any) -> Any:
        """``auth`` without a kind is an API key (the default kind), e.g. ``{"header": "Authorization"}``:
        so written by hand, and so written back by a dump without defaults (the functions' env)."""
        if isinstance(data, dict) and isinstance(data.get("auth"), dict) and "kind" not in data["auth"]:
            return {**data, "auth": {"kind": "api_key", **data["auth"]}}
        return data

    @model_validator(mode="before")
    @classmethod
    def _message_defaults(cls, data: Any) -> Any:
        """SMS and e-mail targets are the customer-notify rule's: after-sales cases, no change pushes."""
        if isinstance(data, dict) and data.get("kind") in MESSAGE_KINDS:
            return {"entity_types": ["after_sales_case"], "push_changes": False, **data}
        return data

    @model_validator(mode="after")
    def _kind(self) -> TargetConfig:
        if self.kind in MESSAGE_KINDS:
            given = sorted(name for name in ("url", "field_map", "value_maps", "fields") if getattr(self, name))
            if given:
                raise ValueError(f"{given}: not used by a target of kind {self.kind} (it sends templates through AWS)")
            if self.push_changes:
                raise ValueError(
                    f"push_changes: a target of kind {self.kind} is called by the customer-notify rule only"
                )
            if self.kind == "email" and not (self.sender and EMAIL.fullmatch(self.sender)):
                raise ValueError("sender: an email target needs its From address (a verified SES identity)")
            if self.kind == "sms" and self.sender is not None and not SENDER_ID.fullmatch(self.sender):
                raise ValueError("sender: an SMS sender ID is 1-11 letters and digits")
        else:
            if self.url is None:
                raise ValueError(f"url: a {self.kind} target needs one")
            if self.sender is not None or self.languages:
                raise ValueError(f"sender / languages: only for sms and email targets, not {self.kind}")
        if self.kind != "http":
            shaped = [
                name
                for name, default in (("method", "POST"), ("path", ""), ("body", "envelope"), ("wrap", None))
                if getattr(self, name) != default
            ]
            if shaped:
                raise ValueError(f"{shaped}: only for http targets, not {self.kind}")
        if self.kind in MESSAGE_KINDS and self.id_prefixes:
            raise ValueError(f"id_prefixes: not used by a target of kind {self.kind}")
        if self.wrap and self.body != "changes":
            raise ValueError('wrap: only with body "changes" (the envelope is not wrapped)')
        if self.max_concurrency is not None and not self.push_changes:
            raise ValueError("max_concurrency: only for a target with a queue of changes (push_changes)")
        return self

    def queue_concurrency(self) -> int | None:
        """The most concurrent batches its queue's event source mapping runs: ``max_concurrency``, or for
        a rate-limited target enough containers to carry its limit (at least 2, SQS's floor), or no cap."""
        if self.max_concurrency is not None:
            return self.max_concurrency
        if self.rate_limit_per_second is None:
            return None
        return max(2, min(1000, math.ceil(self.rate_limit_per_second / DELIVERIES_PER_CONTAINER_SECOND)))

    def token_block(self) -> int:
        """Send slots a container leases at once from the target's counter of the current second: its
        share of the second when all of the queue's containers run (so one lease per container and second
        at full load, not one write per delivery)."""
        if self.rate_limit_per_second is None:
            return 0
        return math.ceil(self.rate_limit_per_second / (self.queue_concurrency() or 1))

    def path_fields(self) -> tuple[str, ...]:
        """The placeholders of ``path``, in order."""
        try:
            return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name is not None)
        except ValueError as exc:
            raise ValueError(f"path: {exc}") from None

    def endpoint(self, entity_id: str, fields: Mapping[str, Any]) -> str:
        """The URL one change of this entity goes to; a placeholder whose field the entity lacks is a
        ``ValueError`` naming it (the change cannot be sent)."""
        values: dict[str, str] = {}
        for name in self.path_fields():
            value = entity_id if name == "entity_id" else fields.get(name)
            if value is None or value == "":
                raise ValueError(f"path needs {name!r}, which {entity_id!r} does not have")
            if str(value) in (".", ".."):
                raise ValueError(f"path: {name} {value!r} would leave the path")
            values[name] = quote(str(value), safe="")
        return str(self.url).rstrip("/") + self.path.format(**values)

    def language(self, tenant: str) -> str:
        return self.languages.get(tenant, self.default_language)

    @model_validator(mode="after")
    def _known_fields(self) -> TargetConfig:
        known = set().union(*(ENTITY_MODELS[t].model_fields for t in self.entity_types))
        for where, names in (("fields", self.fields), ("field_map", tuple(self.field_map.values()))):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(f"{where}: {unknown} are not fields of {list(self.entity_types)}")
        if self.field_map and self.fields:
            raise ValueError("give either fields or field_map, not both")
        sent = set(self.field_map.values()) or set(self.fields) or known
        for where, keyed in (("value_maps", set(self.value_maps)), ("value_types", set(self.value_types))):
            stray = sorted(keyed - sent)
            if stray:
                raise ValueError(f"{where}: {stray} are not fields this target is sent")
        everywhere = set.intersection(*(set(ENTITY_MODELS[t].model_fields) for t in self.entity_types))
        unknown = sorted(set(self.path_fields()) - everywhere - {"entity_id"})
        if unknown:
            raise ValueError(f"path: {unknown} are not fields of every one of {list(self.entity_types)}")
        return self

    def wanted(self, available: Mapping[str, Any]) -> tuple[str, ...]:
        """The canonical fields this target wants (those named in its config, or all present)."""
        named = tuple(dict.fromkeys(self.field_map.values())) or self.fields
        return named or tuple(sorted(available))

    def render(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Changed canonical fields under the target's names, codes translated."""

        def value(field: str) -> Any:
            mapped = self.value_maps.get(field, {})
            raw = changes[field]
            out = mapped.get(str(raw), raw) if isinstance(raw, str | int) else raw
            kind = self.value_types.get(field)
            if kind == "string" and isinstance(out, int | float):
                return str(out)
            if kind == "integer" and not isinstance(out, int):
                if not (isinstance(out, str) and out.strip().lstrip("-").isdigit()):
                    raise UnusableValue(field, f"not an integer, which target {self.name} requires")
                return int(out)
            return out

        if not self.field_map:
            return {field: value(field) for field in changes}
        return {target: value(field) for target, field in self.field_map.items() if field in changes}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def value_hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:32]


def pending_changes(
    target: TargetConfig,
    fields: Mapping[str, Any],
    field_sources: Mapping[str, str],
    acked_hashes: Mapping[str, str],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Fields whose value differs from what the target last acknowledged.

    Returns ``(to_send, new_acked_hashes)``. A field whose current value came from the target
    itself is not sent back (no echo) but is recorded as known to the target.
    """
    to_send: dict[str, Any] = {}
    hashes = dict(acked_hashes)
    for name in target.wanted(fields):
        if name not in fields or (target.field_map and fields[name] is None):
            continue  # reported by the caller (missing_fields), never sent as null
        digest = value_hash(fields[name])
        if hashes.get(name) == digest:
            continue
        hashes[name] = digest
        if field_sources.get(name) != target.name:
            to_send[name] = fields[name]
    return to_send, hashes


def missing_fields(target: TargetConfig, entity_type: str, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """Fields of this entity type the target's map names but the entity does not have: reported,
    never sent as null."""
    named = tuple(dict.fromkeys(target.field_map.values())) or target.fields
    own = ENTITY_MODELS[entity_type].model_fields
    absent = [f for f in named if f in own and (f not in fields or (target.field_map and fields[f] is None))]
    return tuple(absent)
