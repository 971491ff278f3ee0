"""Per-function settings, validated from the environment once per cold start.

A missing or malformed variable fails the first invocation with a message naming the variable;
there are no silent defaults for anything that names a resource.

Every function imports this module, so it imports no stage's code: a field typed by another stage's
model (a target, a field map, a roster, a reconcile job) is resolved when its settings class is first
validated (``from_env``), importing just the modules that class names. Importing them all here made
each function load every stage at its cold start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PydanticUndefinedAnnotation,
    ValidationError,
    model_validator,
)

from shared.constants import DEFAULT_TIMEZONE, Env
from shared.errors import ConfigurationError

if TYPE_CHECKING:
    from shared.automation.dispatch import Roster
    from shared.delivery.targets import TargetConfig
    from shared.intake.field_map import FieldMap
    from shared.pulls.reconcile import ReconcileJob
    from shared.read.sidebar_config import SidebarConfig
    from shared.routing import ChangeRoute

# The other stages' types a settings field may name, and the module defining each
STAGE_TYPES = {
    "Roster": "shared.automation.dispatch",
    "TargetConfig": "shared.delivery.targets",
    "FieldMap": "shared.intake.field_map",
    "ReconcileJob": "shared.pulls.reconcile",
    "SidebarConfig": "shared.read.sidebar_config",
    "ChangeRoute": "shared.routing",
}


def _csv(value: object) -> object:
    return frozenset(x.strip() for x in value.split(",") if x.strip()) if isinstance(value, str) else value


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


# The loopback ports outbound calls may reach, over plain HTTP too: the sandbox's own fake servers
# (``SafeHttp(allow_loopback=...)``), comma-separated. Empty in every deployed stack.
LoopbackPorts = Annotated[frozenset[Annotated[int, Field(ge=1, le=65535)]], BeforeValidator(_csv)]


class _Settings(BaseModel):
    # built by ``from_env``: a function validates its own settings class, not the other nine
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)

    environment: str = Field(alias=Env.ENVIRONMENT)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        cls.complete()
        try:
            return cls.model_validate(dict(os.environ if environ is None else environ))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"{cls.__name__} cannot start: {problems}") from exc

    @classmethod
    def complete(cls) -> None:
        """Build the schema, importing each stage type a field names (pydantic says which is missing)."""
        namespace: dict[str, Any] = {}
        while not cls.__pydantic_complete__:
            try:
                cls.model_rebuild(_types_namespace=namespace)
            except PydanticUndefinedAnnotation as missing:
                if missing.name not in STAGE_TYPES or missing.name in namespace:
                    raise
                namespace[missing.name] = getattr(import_module(STAGE_TYPES[missing.name]), missing.name)


class _AdmitSettings(_Settings):
    """What admitting a delivery needs (the ingest path's store): dedupe, archive, inbox."""

    idempotency_table: str = Field(alias=Env.IDEMPOTENCY_TABLE)
    archive_bucket: str = Field(alias=Env.ARCHIVE_BUCKET)
    inbox_queue_url: str = Field(alias=Env.INBOX_QUEUE_URL)
    idempotency_ttl_seconds: int = Field(alias=Env.IDEMPOTENCY_TTL_SECONDS, gt=0)


class IngestSettings(_AdmitSettings):
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    enabled_sources: Annotated[frozenset[str], BeforeValidator(_csv)] = Field(alias=Env.ENABLED_SOURCES)
    max_body_bytes: int = Field(alias=Env.MAX_BODY_BYTES, gt=0)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)


class AmazonIntakeSettings(_AdmitSettings):
    quarantine_queue_url: str = Field(alias=Env.QUARANTINE_QUEUE_URL)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    sellers: Annotated[dict[str, str], BeforeValidator(_json)] = Field(alias=Env.AMAZON_SELLERS)  # seller -> tenant


class NormaliseSettings(_Settings):
    archive_bucket: str = Field(alias=Env.ARCHIVE_BUCKET)
    field_maps: Annotated[dict[str, FieldMap], BeforeValidator(_json)] = Field(alias=Env.FIELD_MAPS)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    # each entity type's domain queue (what the bus's rule for it would route to)
    observed_queue_urls: Annotated[dict[str, str], BeforeValidator(_json)] = Field(alias=Env.OBSERVED_QUEUE_URLS)
    quarantine_queue_url: str = Field(alias=Env.QUARANTINE_QUEUE_URL)
    # schema drift (shared/intake/schema_drift.py): known shapes and drifts in the state table, notices
    # to the alarms queue; a path in every one of at least ``schema_baseline`` payloads is always present
    state_table: str = Field(alias=Env.STATE_TABLE)
    alarms_queue_url: str = Field(alias=Env.ALARMS_QUEUE_URL)
    schema_baseline: int = Field(alias=Env.SCHEMA_BASELINE, ge=1, le=100_000)


class SyncSettings(_Settings):
    state_table: str = Field(alias=Env.STATE_TABLE)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    quarantine_queue_url: str = Field(alias=Env.QUARANTINE_QUEUE_URL)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)
    default_phone_region: str = Field(alias=Env.DEFAULT_PHONE_REGION, pattern=r"^[A-Z]{2}$")


class PublishSettings(_Settings):
    # every queue that takes changes (a target's deliver queue, the automation queue), with its pattern
    change_routes: Annotated[list[ChangeRoute], BeforeValidator(_json)] = Field(alias=Env.CHANGE_ROUTES)


class ProjectSettings(_Settings):
    """The customer view's projector: reads states and the identity index (state table), writes the view
    (its own table; a card's phone keyed as identity keys it: numbers without a country code in
    ``default_phone_region``)."""

    state_table: str = Field(alias=Env.STATE_TABLE)
    view_table: str = Field(alias=Env.VIEW_TABLE)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)
    default_phone_region: str = Field(alias=Env.DEFAULT_PHONE_REGION, pattern=r"^[A-Z]{2}$")


class LookupSettings(_Settings):
    """What a customer lookup needs (``shared.read.lookup``): the view, the identity salts and the
    readers' secrets, the read audit's retention, the phone region of numbers without a country code,
    each tenant's time zone (warranty days end in the shop's calendar; a tenant not listed is in
    ``DEFAULT_TIMEZONE``). The view is read from its table, the identity index's keys and the read audit
    are in the state table."""

    state_table: str = Field(alias=Env.STATE_TABLE)
    view_table: str = Field(alias=Env.VIEW_TABLE)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)
    read_audit_retention_days: int = Field(alias=Env.READ_AUDIT_RETENTION_DAYS, ge=1, le=3653)
    default_phone_region: str = Field(alias=Env.DEFAULT_PHONE_REGION, pattern=r"^[A-Z]{2}$")
    timezones: Annotated[dict[str, str], BeforeValidator(_json)] = Field(alias=Env.TENANT_TIMEZONES, default={})

    def timezone(self, tenant: str) -> str:
        return self.timezones.get(tenant, DEFAULT_TIMEZONE)


class SidebarSettings(LookupSettings):
    """The WeCom sidebar page (``functions/sidebar``): what a lookup needs, the tenants' WeCom apps and
    user -> role maps, and the loopback ports of the sandbox's fake WeCom (https only otherwise)."""

    sidebar: Annotated[SidebarConfig, BeforeValidator(_json)] = Field(alias=Env.SIDEBAR)
    loopback_ports: LoopbackPorts = Field(alias=Env.ALLOWED_LOOPBACK_PORTS)

    @model_validator(mode="after")
    def _https_only(self) -> Self:
        plain = self.sidebar.https_only()
        if plain and not self.loopback_ports:
            raise ValueError(f"{Env.SIDEBAR}: every URL must use https (got {plain[0]})")
        return self


class AuditArchiveSettings(_Settings):
    archive_bucket: str = Field(alias=Env.ARCHIVE_BUCKET)


class _TargetSettings(_Settings):
    """The targets a function calls: https only, unless the sandbox allows its local fake ones."""

    targets: Annotated[tuple[TargetConfig, ...], BeforeValidator(_json)] = Field(alias=Env.TARGETS)
    loopback_ports: LoopbackPorts = Field(alias=Env.ALLOWED_LOOPBACK_PORTS)

    @model_validator(mode="after")
    def _https_only(self) -> Self:
        for target in self.targets:
            if target.url is not None and target.url.scheme != "https" and not self.loopback_ports:
                raise ValueError(f"target {target.name!r}: url must use https (got {target.url.scheme})")
        return self

    def target(self, name: str) -> TargetConfig:
        for target in self.targets:
            if target.name == name:
                return target
        raise ConfigurationError(f"no target named {name!r} in {Env.TARGETS}")


class DeliverSettings(_TargetSettings):
    state_table: str = Field(alias=Env.STATE_TABLE)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)


class NotifySettings(_Settings):
    state_table: str = Field(alias=Env.STATE_TABLE)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)
    robots: Annotated[dict[Literal["critical", "warning"], tuple[str, ...]], BeforeValidator(_json)] = Field(
        alias=Env.WECOM_ROBOTS
    )
    api_base: str = Field(alias=Env.WECOM_API_BASE, pattern=r"^https?://[^/?#]+$")
    loopback_ports: LoopbackPorts = Field(alias=Env.ALLOWED_LOOPBACK_PORTS)  # the sandbox's fake robot

    @model_validator(mode="after")
    def _https_only(self) -> NotifySettings:
        if not self.api_base.startswith("https://") and not self.loopback_ports:
            raise ValueError(f"{Env.WECOM_API_BASE} must use https")
        return self


class AutomateSettings(_TargetSettings):
    state_table: str = Field(alias=Env.STATE_TABLE)
    event_bus: str = Field(alias=Env.EVENT_BUS)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)
    roles: Annotated[dict[str, str], BeforeValidator(_json)] = Field(alias=Env.AUTOMATION_ROLES)
    # the sms / email targets the customer-notify rule writes through
    customer_targets: Annotated[tuple[str, ...], BeforeValidator(_json)] = Field(alias=Env.CUSTOMER_NOTIFICATIONS)
    default_phone_region: str = Field(alias=Env.DEFAULT_PHONE_REGION, pattern=r"^[A-Z]{2}$")
    dispatch: Annotated[dict[str, Roster], BeforeValidator(_json)] = Field(alias=Env.DISPATCH)  # tenant -> team


class ReconcileSettings(_AdmitSettings):
    state_table: str = Field(alias=Env.STATE_TABLE)
    secrets_prefix: str = Field(alias=Env.SECRETS_PREFIX)
    secrets_max_age_seconds: int = Field(alias=Env.SECRETS_MAX_AGE_SECONDS, ge=0)
    max_receive_count: int = Field(alias=Env.MAX_RECEIVE_COUNT, ge=1)
    jobs: Annotated[tuple[ReconcileJob, ...], BeforeValidator(_json)] = Field(alias=Env.RECONCILE_JOBS)
    loopback_ports: LoopbackPorts = Field(alias=Env.ALLOWED_LOOPBACK_PORTS)  # the sandbox's fake shop

    @model_validator(mode="after")
    def _https_only(self) -> Self:
        for job in self.jobs:
            for name, url in (("url", job.endpoint), ("auth_url", str(job.auth_url or "https:"))):
                scheme = url.split(":", 1)[0]
                if scheme != "https" and not self.loopback_ports:
                    raise ValueError(f"reconcile {job.source}/{job.tenant}: {name} must use https (got {scheme})")
        return self

    def job(self, source: str, tenant: str) -> ReconcileJob:
        for job in self.jobs:
            if (job.source, job.tenant) == (source, tenant):
                return job
        raise ConfigurationError(f"no reconcile job for {source}/{tenant} in {Env.RECONCILE_JOBS}")
