"""Which functions exist, what each consumes and the environment each needs.

Used by the CDK functions construct and by the local sandbox, so the handlers see the same
variables in both.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from infra.config import EnvironmentConfig, QueueBatching, StreamBatching
from shared.automation.rules import AUTOMATED_TYPES
from shared.constants import DETAIL_ENTITY_CHANGED, DETAIL_OBSERVED, EVENT_SOURCE, Env, metrics_namespace
from shared.delivery.targets import TargetConfig
from shared.sources.amazon import AMAZON_SP_API_PRINCIPAL


@dataclass(frozen=True)
class ResourceRefs:
    """Physical names/URLs (plain strings locally, CDK tokens in the stack)."""

    idempotency_table: str
    state_table: str
    archive_bucket: str
    inbox_queue_url: str
    quarantine_queue_url: str
    event_bus: str
    view_table: str  # the customer view (functions/project writes it; lookup and sidebar read it)
    domain_queue_urls: Mapping[str, str]  # by domain (DOMAINS): where normalise sends each observation
    # by queue purpose (change_routes): where publish sends the changes each route's pattern matches
    change_queue_urls: Mapping[str, str]
    alarms_queue_url: str = ""  # notify's queue: alarm changes, and normalise's schema drift notices


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str  # dotted module.attribute, importable from the code asset root
    description: str
    memory_mb: int = 256
    # None: the environment's consumer_timeout_seconds (every queue consumer); a number: its own
    timeout_seconds: int | None = None


FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec(
            "ingest",
            "functions.ingest.handler.lambda_handler",
            "Verify, dedupe, archive and enqueue webhooks",
            # on the platforms' ack path (Shopify waits 5 s): more memory is more CPU, a short timeout
            memory_mb=512,
            timeout_seconds=10,
        ),
        FunctionSpec("normalise", "functions.normalise.handler.lambda_handler", "Raw envelopes to canonical events"),
        FunctionSpec("sync", "functions.sync.handler.lambda_handler", "Merge observations into per-entity state"),
        FunctionSpec("publish", "functions.publish.handler.lambda_handler", "Audit inserts to entity.changed events"),
        FunctionSpec(
            "project", "functions.project.handler.lambda_handler", "States and audit records to the customer view"
        ),
        FunctionSpec("deliver", "functions.deliver.handler.lambda_handler", "Push unacknowledged changes to targets"),
        FunctionSpec(
            "lookup",
            "functions.lookup.handler.lambda_handler",
            "Customer 360: a reader's lookup of the customer view",
            timeout_seconds=10,
        ),
        FunctionSpec(
            "sidebar",
            "functions.sidebar.handler.lambda_handler",
            "Customer 360: the WeCom sidebar page and a call centre's screen pop",
            timeout_seconds=10,
        ),
        FunctionSpec(
            "audit-archive", "functions.audit_archive.handler.lambda_handler", "Archive expiring audit records"
        ),
        FunctionSpec("notify", "functions.notify.handler.lambda_handler", "Alarm changes to WeCom group robots"),
        FunctionSpec("automate", "functions.automate.handler.lambda_handler", "After-sales automation rules"),
        FunctionSpec(
            "reconcile",
            "functions.reconcile.handler.lambda_handler",
            "Pull what platforms changed; feed in what no webhook brought",
        ),
        FunctionSpec(
            "amazon-intake",
            "functions.amazon_intake.handler.lambda_handler",
            "Admit Amazon SP-API notifications into the inbox",
        ),
    )
}


# Batching of the queues whose consumers want other than 10 records over 1 s: the alarms queue is read in
# batches of up to 100 gathered over 10 s (one digest per batch and robot); a reconcile run is one message.
DEFAULT_BATCHING = {
    "alarms": QueueBatching(batch_size=100, window_seconds=10),
    "reconcile": QueueBatching(batch_size=1),
}


def queue_batching(cfg: EnvironmentConfig, purpose: str) -> QueueBatching:
    """The batch size and window of a queue's event source mapping: the environment's, else the default."""
    return cfg.consumer_batching.get(purpose) or DEFAULT_BATCHING.get(purpose) or QueueBatching()


# The state table stream's readers: audit inserts to events, expiring audit records to the archive,
# states and audit records to the customer view (the sandbox and the tests poll the stream for each).
STREAM_CONSUMERS = ("publish", "audit-archive", "project")

# audit-archive: big batches gathered for up to a minute (nothing waits on an archived record), so one
# PutObject carries many records
DEFAULT_STREAM_BATCHING = {"audit-archive": StreamBatching(batch_size=1000, window_seconds=60)}


def stream_batching(cfg: EnvironmentConfig, function: str) -> StreamBatching:
    """A stream consumer's batch, window and parallelization factor: the environment's, else the default."""
    return cfg.stream_consumers.get(function) or DEFAULT_STREAM_BATCHING.get(function) or StreamBatching()


def function_memory_mb(cfg: EnvironmentConfig, function: str) -> int:
    return cfg.function_memory_mb.get(function, FUNCTIONS[function].memory_mb)


def deployed_functions(cfg: EnvironmentConfig) -> list[str]:
    """The functions an environment runs: the SP-API intake only where Amazon sellers are configured,
    reconcile only where pulls are."""
    optional = {"amazon-intake": bool(cfg.amazon_sellers), "reconcile": bool(cfg.reconcile)}
    return [name for name in FUNCTIONS if optional.get(name, True)]


def function_environment(
    function: str,
    cfg: EnvironmentConfig,
    refs: ResourceRefs,
    loopback_ports: Collection[int] = (),
    wecom_api_base: str | None = None,
) -> dict[str, str]:
    """A function's variables. The sandbox alone passes ``loopback_ports``, its fake servers' ports (its
    fake targets, robot and shop speak plain HTTP on 127.0.0.1; no other loopback port, e.g. moto's,
    may be called), and a local ``wecom_api_base``. Deployed, the allowance is stated and empty."""
    allowance = ",".join(str(port) for port in sorted(set(loopback_ports)))
    common = {
        Env.ENVIRONMENT: cfg.name,
        "POWERTOOLS_SERVICE_NAME": "aftersync",
        "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace(cfg.name),
    }
    per_function: dict[str, dict[str, str]] = {
        "ingest": {
            Env.IDEMPOTENCY_TABLE: refs.idempotency_table,
            Env.ARCHIVE_BUCKET: refs.archive_bucket,
            Env.INBOX_QUEUE_URL: refs.inbox_queue_url,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.ENABLED_SOURCES: ",".join(cfg.sources),
            Env.MAX_BODY_BYTES: str(cfg.max_body_bytes),
            Env.IDEMPOTENCY_TTL_SECONDS: str(cfg.idempotency_ttl_hours * 3600),
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
        },
        "normalise": {
            Env.FIELD_MAPS: json.dumps(
                {k: v.model_dump(mode="json", exclude_none=True) for k, v in cfg.field_maps.items()},
                separators=(",", ":"),
                sort_keys=True,
            ),
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.ARCHIVE_BUCKET: refs.archive_bucket,
            Env.OBSERVED_QUEUE_URLS: json.dumps(
                {t: refs.domain_queue_urls[domain] for domain, types in DOMAINS.items() for t in types},
                separators=(",", ":"),
            ),
            Env.QUARANTINE_QUEUE_URL: refs.quarantine_queue_url,
            Env.STATE_TABLE: refs.state_table,
            Env.ALARMS_QUEUE_URL: refs.alarms_queue_url,
            Env.SCHEMA_BASELINE: str(cfg.schema_drift.baseline),
        },
        "sync": {
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.STATE_TABLE: refs.state_table,
            Env.QUARANTINE_QUEUE_URL: refs.quarantine_queue_url,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.DEFAULT_PHONE_REGION: cfg.default_phone_region,
        },
        "amazon-intake": {
            Env.IDEMPOTENCY_TABLE: refs.idempotency_table,
            Env.ARCHIVE_BUCKET: refs.archive_bucket,
            Env.INBOX_QUEUE_URL: refs.inbox_queue_url,
            Env.QUARANTINE_QUEUE_URL: refs.quarantine_queue_url,
            Env.IDEMPOTENCY_TTL_SECONDS: str(cfg.idempotency_ttl_hours * 3600),
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.AMAZON_SELLERS: json.dumps(cfg.amazon_sellers, separators=(",", ":"), sort_keys=True),
        },
        "reconcile": {
            Env.STATE_TABLE: refs.state_table,
            Env.IDEMPOTENCY_TABLE: refs.idempotency_table,
            Env.ARCHIVE_BUCKET: refs.archive_bucket,
            Env.INBOX_QUEUE_URL: refs.inbox_queue_url,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.IDEMPOTENCY_TTL_SECONDS: str(cfg.idempotency_ttl_hours * 3600),
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.RECONCILE_JOBS: json.dumps(
                [j.model_dump(mode="json", exclude_defaults=True) for j in cfg.reconcile], separators=(",", ":")
            ),
            Env.ALLOWED_LOOPBACK_PORTS: allowance,
        },
        "publish": {
            Env.CHANGE_ROUTES: json.dumps(
                [{"queue": refs.change_queue_urls[r.queue_purpose], "pattern": r.pattern} for r in change_routes(cfg)],
                separators=(",", ":"),
            )
        },
        "lookup": {
            Env.STATE_TABLE: refs.state_table,
            Env.VIEW_TABLE: refs.view_table,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.READ_AUDIT_RETENTION_DAYS: str(cfg.read_audit_retention_days),
            Env.DEFAULT_PHONE_REGION: cfg.default_phone_region,
            Env.TENANT_TIMEZONES: json.dumps(cfg.tenant_timezones, separators=(",", ":"), sort_keys=True),
        },
        "sidebar": {
            Env.STATE_TABLE: refs.state_table,
            Env.VIEW_TABLE: refs.view_table,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.READ_AUDIT_RETENTION_DAYS: str(cfg.read_audit_retention_days),
            Env.DEFAULT_PHONE_REGION: cfg.default_phone_region,
            Env.TENANT_TIMEZONES: json.dumps(cfg.tenant_timezones, separators=(",", ":"), sort_keys=True),
            Env.SIDEBAR: cfg.sidebar.function_json(),
            Env.ALLOWED_LOOPBACK_PORTS: allowance,
        },
        "project": {
            Env.STATE_TABLE: refs.state_table,
            Env.VIEW_TABLE: refs.view_table,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.DEFAULT_PHONE_REGION: cfg.default_phone_region,
        },
        "automate": {
            Env.STATE_TABLE: refs.state_table,
            Env.EVENT_BUS: refs.event_bus,
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.TARGETS: targets_json(cfg.targets),
            Env.AUTOMATION_ROLES: json.dumps(cfg.automation, separators=(",", ":"), sort_keys=True),
            Env.CUSTOMER_NOTIFICATIONS: json.dumps(cfg.customer_notifications, separators=(",", ":")),
            Env.DEFAULT_PHONE_REGION: cfg.default_phone_region,
            Env.ALLOWED_LOOPBACK_PORTS: allowance,
            Env.DISPATCH: json.dumps(
                {t: r.model_dump(mode="json", exclude_defaults=True) for t, r in cfg.dispatch.items()},
                separators=(",", ":"),
            ),
        },
        "notify": {
            Env.STATE_TABLE: refs.state_table,
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
            Env.WECOM_ROBOTS: json.dumps(cfg.wecom.robots, separators=(",", ":"), sort_keys=True),
            Env.WECOM_API_BASE: wecom_api_base or cfg.wecom.api_base,
            Env.ALLOWED_LOOPBACK_PORTS: allowance,
        },
        "audit-archive": {Env.ARCHIVE_BUCKET: refs.archive_bucket},
        "deliver": {
            Env.MAX_RECEIVE_COUNT: str(cfg.max_receive_count),
            Env.STATE_TABLE: refs.state_table,
            Env.SECRETS_PREFIX: cfg.secrets_prefix,
            Env.TARGETS: targets_json(cfg.targets),
            Env.ALLOWED_LOOPBACK_PORTS: allowance,
            Env.SECRETS_MAX_AGE_SECONDS: str(cfg.secrets_max_age_seconds),
        },
    }
    return {**common, **per_function[function]}


LAMBDA_ENVIRONMENT_BYTES = 4 * 1024  # Lambda: a function's variables, names and values together
EXAMPLE_ACCOUNT = "123456789012"  # an account id's 12 digits, for what a deployed URL or bucket name takes


def deployed_environment_bytes(function: str, cfg: EnvironmentConfig) -> int:
    """The bytes Lambda counts for ``function``'s variables from ``function_environment`` once deployed:
    resource names and queue URLs as CloudFormation resolves them (the synthesized template holds only
    their tokens)."""

    def url(purpose: str) -> str:
        return f"https://sqs.{cfg.region}.amazonaws.com/{EXAMPLE_ACCOUNT}/{cfg.resource(purpose)}"

    refs = ResourceRefs(
        idempotency_table=cfg.resource("idempotency"),
        state_table=cfg.resource("state"),
        archive_bucket=cfg.archive_bucket(EXAMPLE_ACCOUNT),
        inbox_queue_url=url("inbox"),
        quarantine_queue_url=url("quarantine"),
        event_bus=cfg.resource("bus"),
        view_table=cfg.resource("view"),
        domain_queue_urls={domain: url(domain) for domain in DOMAINS},
        change_queue_urls={r.queue_purpose: url(r.queue_purpose) for r in change_routes(cfg)},
        alarms_queue_url=url("alarms"),
    )
    return sum(len(k.encode()) + len(v.encode()) for k, v in function_environment(function, cfg, refs).items())


def targets_json(targets: Iterable[TargetConfig]) -> str:
    """Targets for a function's environment: only what differs from the defaults (Lambda's whole
    environment must stay under 4 KB); read back, it validates to the same config."""
    return json.dumps([t.model_dump(mode="json", exclude_defaults=True) for t in targets], separators=(",", ":"))


@dataclass(frozen=True)
class QueueSpec:
    purpose: str  # physical name: cfg.resource(purpose); its DLQ: cfg.resource(purpose + "-dlq")
    consumer: str | None  # function that consumes it; None for the quarantine (operators read it)
    external_writer: str | None = None  # an outside principal that writes to it (Amazon SP-API)


@dataclass(frozen=True)
class Route:
    """An EventBridge pattern and the queue that takes what it matches: a rule on the bus (``routes``),
    or a route publish evaluates itself (``change_routes``)."""

    purpose: str
    pattern: dict[str, object]
    queue_purpose: str


# Observations are routed by domain, so a promotion peak of orders cannot starve after-sales work.
DOMAINS: dict[str, tuple[str, ...]] = {
    "orders": ("order", "customer"),
    "after-sales": ("after_sales_case", "stock"),
    "logistics": ("shipment",),
    "tickets": ("ticket",),
}


def queues(cfg: EnvironmentConfig) -> list[QueueSpec]:
    return [
        QueueSpec("inbox", "normalise"),
        *(QueueSpec(domain, "sync") for domain in DOMAINS),
        QueueSpec("quarantine", None),
        QueueSpec("alarms", "notify"),  # CloudWatch alarm changes, via the two alarm topics
        *(QueueSpec(f"deliver-{t.name}", "deliver") for t in cfg.targets if t.push_changes),
        QueueSpec("automation", "automate"),  # after-sales changes -> the automation rules
        *([QueueSpec("amazon", "amazon-intake", AMAZON_SP_API_PRINCIPAL)] if cfg.amazon_sellers else []),
        *([QueueSpec("reconcile", "reconcile")] if cfg.reconcile else []),  # one message per scheduled run
    ]


def routes(cfg: EnvironmentConfig) -> list[Route]:
    """The bus's rules: each entity type's observations (the automation's, today) to its domain's queue.
    normalise sends its own observations straight to the queue (it has the same map)."""
    return [
        Route(
            domain,
            {"source": [EVENT_SOURCE], "detail-type": [DETAIL_OBSERVED.format(entity_type=t) for t in types]},
            domain,
        )
        for domain, types in DOMAINS.items()
    ]


def change_routes(cfg: EnvironmentConfig) -> list[Route]:
    """Where ``entity.changed`` goes: publish evaluates these patterns (``shared.routing``) and sends each
    change to every queue whose pattern matches, as a rule per queue on the bus would have."""
    result = [
        Route(
            "automation",
            {
                "source": [EVENT_SOURCE],
                "detail-type": [DETAIL_ENTITY_CHANGED],
                "detail": {"entity_type": sorted(AUTOMATED_TYPES)},
            },
            "automation",
        )
    ]
    for target in (t for t in cfg.targets if t.push_changes):
        result.append(
            Route(
                f"deliver-{target.name}",
                {
                    "source": [EVENT_SOURCE],
                    "detail-type": [DETAIL_ENTITY_CHANGED],
                    # No echo: a change that came from this target is not routed back to it.
                    "detail": {
                        "entity_type": list(target.entity_types),
                        "origin_source": [{"anything-but": [target.name]}],
                        **({"entity_id": [{"prefix": p} for p in target.id_prefixes]} if target.id_prefixes else {}),
                    },
                },
                f"deliver-{target.name}",
            )
        )
    return result
