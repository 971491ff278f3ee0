"""Typed per-environment configuration, read from ``cdk.json`` context ``aftersync:environments``.

The stack, the local sandbox and the infra tests all build from this one model, so resource names,
thresholds and targets cannot drift between them. A malformed config fails synth or sandbox start
with a message naming the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.automation.dispatch import Roster
from shared.constants import (
    DEFAULT_TIMEZONE,
    INVOCATION_RESERVE_SECONDS,
    delivery_queue_purpose,
    resource_name,
    secrets_prefix,
)
from shared.delivery.targets import MESSAGE_KINDS, TargetConfig
from shared.errors import ConfigurationError
from shared.intake.field_map import FieldMap
from shared.pulls.reconcile import ReconcileJob
from shared.read.sidebar_config import MAX_CONFIG_BYTES, SidebarConfig
from shared.sources import SOURCES
from shared.sources.inhouse import INHOUSE_SYSTEMS

ROOT = Path(__file__).resolve().parents[1]
CONTEXT_KEY = "aftersync:environments"


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone") from exc
    return name


class ApiThrottle(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    rate_limit: Annotated[float, Field(gt=0)]
    burst_limit: Annotated[int, Field(gt=0)]


RobotName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]


class WeComConfig(BaseModel):
    """Which WeCom group robots get which alarms. Each robot's key (and on-call mobiles) is the secret
    ``aftersync/<env>/wecom/<robot>``: ``{"key": "...", "mentioned_mobile_list": ["..."]}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    robots: dict[Literal["critical", "warning"], Annotated[tuple[RobotName, ...], Field(min_length=1)]]
    api_base: Annotated[str, Field(pattern=r"^https://[^/?#]+$")] = "https://qyapi.weixin.qq.com"

    @model_validator(mode="after")
    def _both_severities(self) -> WeComConfig:
        missing = {"critical", "warning"} - set(self.robots)
        if missing:
            raise ValueError(f"robots: no robot for {sorted(missing)} alarms")
        return self


class SchemaDriftConfig(BaseModel):
    """Schema drift (shared/intake/shapes.py): ``baseline`` is N, the accepted payloads of a source's topic
    that make its shape known (nothing is reported before) and that a field must have been in, every
    one of them, to count as always present (its absence is then a drift)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    baseline: Annotated[int, Field(ge=1, le=100_000)] = 20


class QueueBatching(BaseModel):
    """How an SQS event source mapping hands a queue to its function: more records a batch and a window
    to gather them cut invocations (and cost) at a peak; the window is also the longest a lone record waits."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    window_seconds: Annotated[int, Field(ge=0, le=300)] = 1

    @model_validator(mode="after")
    def _window_for_large_batches(self) -> QueueBatching:
        if self.batch_size > 10 and self.window_seconds < 1:  # Lambda's rule for SQS batches over 10
            raise ValueError("a batch_size over 10 needs window_seconds >= 1")
        return self


class StreamBatching(BaseModel):
    """A DynamoDB stream consumer: batch, window and how many batches run at once per shard."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    window_seconds: Annotated[int, Field(ge=0, le=300)] = 0
    parallelization_factor: Annotated[int, Field(ge=1, le=10)] = 1


class AccountQuotas(BaseModel):
    """Account quotas the environment is deployed with where they differ from AWS's defaults (raised by a
    Service Quotas request before the deploy; docs/configuration-and-deploying.md says which and why).
    None: the default. Read by the capacity model (``aftersync capacity``), not by CloudFormation."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_concurrency: Annotated[int, Field(ge=1000)] | None = None
    api_rps: Annotated[float, Field(ge=10_000)] | None = None
    api_burst: Annotated[int, Field(ge=5_000)] | None = None
    dynamodb_table_wru: Annotated[int, Field(ge=40_000)] | None = None  # on-demand, per table
    dynamodb_table_rru: Annotated[int, Field(ge=40_000)] | None = None


class ScalingRange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    min: Annotated[int, Field(ge=1, le=40_000)]
    max: Annotated[int, Field(ge=1, le=40_000)]  # (a table's default quota: a raise goes in account_quotas)

    @model_validator(mode="after")
    def _ordered(self) -> ScalingRange:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ProvisionedTable(BaseModel):
    """A table on provisioned capacity with auto scaling on utilisation, instead of on demand: at a steady
    load it costs about 41 % of on-demand per unit (a unit provisioned for an hour at the 70 % target), at
    the price of throttling while auto scaling catches up with a step (minutes): sync's and project's
    records wait in their queue or stream and are retried, nothing is lost, freshness suffers. For a
    planned promotion, raise ``min`` to what ``aftersync capacity`` says the promo needs before it starts.
    The idempotency table has no such setting: ingest writes it before the ack, where a throttle is a 5xx
    to the platform."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    write: ScalingRange
    read: ScalingRange
    target_utilization_percent: Annotated[int, Field(ge=20, le=90)] = 70


class AlarmThresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    period_minutes: Literal[1, 5, 10, 15, 30, 60] = 5
    datapoints_to_alarm: Annotated[int, Field(ge=1, le=10)] = 1
    max_message_age_seconds: Annotated[int, Field(ge=60)] = 900  # oldest message in a working queue
    freshness_p99_seconds: Annotated[int, Field(ge=1)] = 300  # source time -> delivered
    api_4xx_rate: Annotated[float, Field(gt=0, le=1)] = 0.25  # share of requests, over...
    api_4xx_min_requests: Annotated[int, Field(ge=1)] = 20  # ...at least this many in the period


class SidebarEgress(BaseModel):
    """A fixed egress address for the sidebar function's calls to WeCom. A WeCom self-built app created
    since 2022-06-20 answers its server API (gettoken, auth/getuserinfo, ticket/get) only from the IPs
    listed as the app's trusted IPs (企业可信IP), else errcode 60020; a Lambda function has no fixed address.
    ``static_ip``: the stack puts the sidebar function (and only it) in a VPC's private subnets behind a
    NAT gateway with an Elastic IP, and outputs the IPs (``SidebarTrustedIps``) to list in WeCom.
    ``azs``: the availability zones its subnets span; ``nat_per_az``: a NAT gateway (and an IP) in each,
    so a zone's outage does not cut the others off WeCom (one NAT by default: the cost is per NAT)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    static_ip: bool = False
    azs: Annotated[int, Field(ge=1, le=3)] = 2
    nat_per_az: bool = False


class SidebarSettings(SidebarConfig):
    """An environment's ``sidebar`` block: the function's own config (``SidebarConfig``, which travels in
    its environment) and the stack's ``egress`` option, which does not."""

    egress: SidebarEgress = SidebarEgress()

    def function_json(self) -> str:
        """The sidebar function's ``SIDEBAR_JSON``: what differs from the defaults, without ``egress``."""
        return self.model_dump_json(exclude_defaults=True, exclude={"egress"})

    @model_validator(mode="after")
    def _fits(self) -> SidebarSettings:  # replaces SidebarConfig's check: egress is not in the environment
        if len(self.function_json()) > MAX_CONFIG_BYTES:
            raise ValueError(f"sidebar: over {MAX_CONFIG_BYTES} bytes do not fit the sidebar function's environment")
        return self


class EnvironmentConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,11}$")]
    account: str | None = None
    region: str
    sources: tuple[str, ...]
    targets: tuple[TargetConfig, ...] = ()
    success_rate_threshold: Annotated[float, Field(gt=0, le=1)]
    alarms: AlarmThresholds = AlarmThresholds()
    wecom: WeComConfig
    # After-sales automation: which target plays which role (see shared/automation/rules.json); the
    # customer role takes the sms / email targets, any number of them
    automation: dict[Literal["payment", "wms", "oms", "fulfilment"], str] = {}
    customer_notifications: tuple[str, ...] = ()
    # tenant -> its service team: new tickets go to an agent by skill and workload, and move to a
    # colleague at shift end (checked every dispatch_check_minutes)
    dispatch: dict[str, Roster] = {}
    dispatch_check_minutes: Annotated[int, Field(ge=1, le=60)] = 5
    # Queue purpose -> most concurrent batches its event source mapping may run (>= 2): a promotion
    # peak on one domain cannot take the concurrency another needs. Unlisted queues are not capped.
    consumer_concurrency: dict[str, Annotated[int, Field(ge=2, le=1000)]] = {}
    # Queue purpose -> batch size and batching window of its event source mapping (default 10 records, 1 s;
    # the alarms queue 100 records over 10 s, one digest per batch).
    consumer_batching: dict[str, QueueBatching] = {}
    # Stream consumer (publish, audit-archive, project) -> batch, window, parallelization factor (default 100, 0 s, 1)
    stream_consumers: dict[Literal["publish", "audit-archive", "project"], StreamBatching] = {}
    # Function -> memory in MB (more memory is more CPU: a full vCPU at 1,769 MB); default per function
    function_memory_mb: dict[str, Annotated[int, Field(ge=128, le=10_240)]] = {}
    # Function -> reserved concurrency: kept for it (the webhook receiver must never wait for the consumers)
    # and its ceiling
    reserved_concurrency: dict[str, Annotated[int, Field(ge=1, le=10_000)]] = {}
    account_quotas: AccountQuotas = AccountQuotas()
    # the state and view tables on provisioned capacity (absent: on demand)
    table_capacity: dict[Literal["state", "view"], ProvisionedTable] = {}
    api_throttle: ApiThrottle
    max_body_bytes: Annotated[int, Field(gt=0, le=6 * 1024 * 1024)] = 256 * 1024
    idempotency_ttl_hours: Annotated[int, Field(gt=0, le=24 * 30)] = 72
    secrets_max_age_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    log_retention_days: Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1827, 3653]
    removal_policy: Literal["destroy", "retain"]
    max_receive_count: Annotated[int, Field(ge=5)] = 5
    consumer_timeout_seconds: Annotated[int, Field(gt=0, le=900)] = 30
    powertools_layer_version: str = "3.37.0"
    # X-Ray. "lambda": Lambda's own trace of each invocation (init, duration, errors), nothing loaded in
    # the function. "sdk": also the X-Ray SDK in each function, a subsegment per AWS call and outbound
    # HTTP call, at the price of its import at every cold start (docs/operations.md, "Cold start").
    tracing: Literal["lambda", "sdk"] = "lambda"
    # The share of invocations that log at DEBUG (Powertools' per-invocation log sampling): the line
    # per webhook, merged record and delivery. The rest log at INFO, which leaves warnings, errors and
    # metrics: the admission record, the audit trail and the delivery record are the durable trace of
    # every record, and a log line per record at a promo peak costs more than its alarms (docs/capacity.md).
    debug_log_sample_rate: Annotated[float, Field(ge=0, le=1)] = 0.01
    waf: bool = False
    default_phone_region: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = "CN"  # for numbers without +<country>
    # Tenant -> its shop's IANA time zone (a warranty's last day is a day of the shop's calendar); a tenant
    # not listed is in DEFAULT_TIMEZONE (Asia/Shanghai)
    tenant_timezones: dict[str, Annotated[str, AfterValidator(_time_zone)]] = {}
    # Amazon SP-API seller id -> tenant. Non-empty: the stack gets the SP-API notification queue.
    # In-house source -> declarative map from its own JSON to canonical observations (shared/intake/field_map.py)
    field_maps: dict[str, FieldMap] = {}
    amazon_sellers: dict[Annotated[str, Field(pattern=r"^[A-Z0-9]{8,20}$")], Annotated[str, Field(min_length=1)]] = {}
    # Scheduled pulls of what a platform changed, compared with the state: what no webhook brought is
    # fed in (shared/pulls/reconcile.py). Credentials: the secret aftersync/<env>/pull/<source>/<tenant>.
    reconcile: tuple[ReconcileJob, ...] = ()
    # How long the read audit keeps who looked a customer up (``{tenant}#reads#<day>`` items, TTL)
    read_audit_retention_days: Annotated[int, Field(ge=1, le=3653)] = 90
    # The WeCom sidebar page: each tenant's WeCom app and user -> role map (shared/read/sidebar_config.py),
    # and whether its function calls WeCom from a fixed IP (egress)
    sidebar: SidebarSettings = SidebarSettings()
    # Schema drift: the payloads that make a topic's shape known, and "always present" (N)
    schema_drift: SchemaDriftConfig = SchemaDriftConfig()

    @model_validator(mode="after")
    def _known_sources(self) -> EnvironmentConfig:
        unknown = sorted(set(self.sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"sources: {unknown} have no adapter (known: {sorted(SOURCES)})")
        for source in self.field_maps:
            if source not in INHOUSE_SYSTEMS or source not in self.sources:
                raise ValueError(
                    f"field_maps.{source}: field maps are for enabled in-house sources ({sorted(INHOUSE_SYSTEMS)})"
                )
        if len(json.dumps([m.model_dump(mode="json", exclude_none=True) for m in self.field_maps.values()])) > 2048:
            raise ValueError("field_maps: over 2 KB of maps do not fit the normalise function's environment")
        for n, job in enumerate(self.reconcile):
            if job.source in SOURCES and job.source not in self.sources:  # (a pull-only source, Taobao, is not)
                raise ValueError(f"reconcile.{n}.source: {job.source!r} is not an enabled source")
            if not job.endpoint.startswith("https://"):
                raise ValueError(f"reconcile.{n}.url: must use https (got {job.endpoint.split(':', 1)[0]})")
        jobs = [(j.source, j.tenant) for j in self.reconcile]
        if len(jobs) != len(set(jobs)):
            raise ValueError(f"reconcile: one job per source and tenant, got {jobs}")
        for target in self.targets:
            if (
                target.url is not None
                and target.timeout_seconds + INVOCATION_RESERVE_SECONDS >= self.consumer_timeout_seconds
            ):
                raise ValueError(
                    f"consumer_timeout_seconds: {self.consumer_timeout_seconds} s leaves no room for target "
                    f"{target.name!r} (timeout {target.timeout_seconds} s + {INVOCATION_RESERVE_SECONDS} s to record "
                    "a failure)"
                )
        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ValueError(f"targets: names must be unique, got {names}")
        kinds = {t.name: t.kind for t in self.targets}
        for role, target in self.automation.items():
            if target not in names:
                raise ValueError(f"automation.{role}: no target named {target!r} (targets: {names})")
            if kinds[target] != "http":
                raise ValueError(f"automation.{role}: target {target!r} is of kind {kinds[target]}, not http")
        for target in self.customer_notifications:
            if kinds.get(target) not in MESSAGE_KINDS:
                raise ValueError(f"customer_notifications: {target!r} is not an sms or email target")
        if self.sidebar.https_only():
            raise ValueError(f"sidebar: every URL must use https (got {self.sidebar.https_only()[0]})")
        if self.sidebar.egress.static_ip and not self.sidebar.tenants:
            raise ValueError("sidebar.egress.static_ip: no sidebar tenant calls WeCom (a NAT gateway for nothing)")
        return self

    # ---- names shared by the stack, the sandbox and the tests --------------------------------
    def resource(self, purpose: str) -> str:
        return resource_name(self.name, purpose)

    def timezone(self, tenant: str) -> str:
        """The tenant's shop time zone."""
        return self.tenant_timezones.get(tenant, DEFAULT_TIMEZONE)

    @property
    def secrets_prefix(self) -> str:
        return secrets_prefix(self.name)

    def delivery_queue(self, target: str) -> str:
        return self.resource(delivery_queue_purpose(target))

    @property
    def stack_name(self) -> str:
        return f"Aftersync-{self.name}"

    def archive_bucket(self, account: str) -> str:
        return f"{self.resource('archive')}-{account}-{self.region}"


def load_environments(cdk_json: Path = ROOT / "cdk.json") -> dict[str, EnvironmentConfig]:
    context = json.loads(cdk_json.read_text(encoding="utf-8")).get("context", {})
    raw = context.get(CONTEXT_KEY)
    if not isinstance(raw, dict) or not raw:
        raise ConfigurationError(f"cdk.json: context.{CONTEXT_KEY!r} must map environment names to settings")
    configs = {}
    for name, values in raw.items():
        try:
            configs[name] = EnvironmentConfig.model_validate({"name": name, **values})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigurationError(f"cdk.json environment {name!r}: {problems}") from exc
    return configs


def load_environment(name: str, cdk_json: Path = ROOT / "cdk.json") -> EnvironmentConfig:
    environments = load_environments(cdk_json)
    if name not in environments:
        raise ConfigurationError(f"no environment {name!r} in cdk.json (have {sorted(environments)})")
    return environments[name]
