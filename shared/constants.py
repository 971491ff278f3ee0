"""Names shared by the CDK stack, the handlers, the local sandbox and the tests.

Everything that must agree between infrastructure and code (resource names, environment variable
names, event detail types) lives here, so nothing can drift.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

APP = "aftersync"
EVENT_SOURCE = "aftersync"  # EventBridge `source` of every event we put on the bus

# EventBridge detail types
DETAIL_OBSERVED = "{entity_type}.observed"  # normalise -> sync: a source reported an entity
DETAIL_ENTITY_CHANGED = "entity.changed"  # publish -> delivery: state changed, with the changed fields

# What a schema drift notice on the alarms queue says it is: normalise sends it, notify digests it
SCHEMA_DRIFT_NOTICE = "schema-drift"

# State table item layout: one item collection per (tenant, entity): the state, its audit trail and
# one delivery acknowledgement per target. State and audit share a partition so one transaction
# writes both, and partitions spread by tenant and entity id (no hot key in a promotion peak).
STATE_SK = "STATE"
AUDIT_SK_PREFIX = "AUDIT#"
ACK_SK_PREFIX = "ACK#"
DECISION_SK_PREFIX = "DECISION#"  # values an event offered that the policy discarded, when nothing changed
AUDIT_RETENTION_DAYS = 90  # audit records then leave the hot table (TTL) for the archive bucket

# An inbox message carries its raw envelope inline up to this size (SQS's limit is 1 MiB since 2025,
# the default of a new queue, counting body and attributes; a little is left for the attributes);
# a larger envelope goes to the archive first and travels by its key.
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
INLINE_MESSAGE_MAX_BYTES = SQS_MAX_MESSAGE_BYTES - 4 * 1024
# How long an admission record says "being enqueued by another invocation" (capped by that invocation's
# remaining time). Shorter than any platform's wait before it retries a failed delivery; after it, a copy
# of the same body enqueues again (harmless: see docs/design.md, "Ingest: two calls before the ack").
ADMISSION_LEASE_SECONDS = 3
DLQ_SUFFIX = "-dlq"  # every consumer queue <name> has its dead-letter queue <name>-dlq
# Of an invocation's time, what a target call leaves to record its failure (circuit, copy, dead letter):
# a call starts only with its timeout plus this left, and ends this long before the invocation does.
INVOCATION_RESERVE_SECONDS = 3


# DynamoDB's TTL sweeper as it appears in stream records (userIdentity.principalId): only its
# removals are expiries worth archiving. The event source filter and the handler's guard both use it.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
AUDIT_ARCHIVE_PREFIX = "audit/"  # archive bucket, audit records (see the layouts below)

# Archive keys. Batch objects (gzip JSON Lines, one PutObject per batch) start with one hex digit of a
# hash ahead of any time or tenant, so writes spread over 16 key prefixes and S3's 3,500 PUT/s per
# prefix never binds (16 x 3,500 batch objects a second); docs/design.md "Archives" gives the numbers.
ARCHIVE_SHARDS = "0123456789abcdef"
RAW_BATCH_PREFIX = "raw/batches/"  # raw/batches/<shard>/YYYY/MM/DD/HH/<MMSS>-<MMSS>-<batch id>.jsonl.gz
AUDIT_BATCH_PREFIX = "audit/batches/"  # audit/batches/<entity shard>/<tenant>/<entity_type>/YYYY/MM/DD/<id>.jsonl.gz
BATCH_SUFFIX = ".jsonl.gz"


def raw_batch_key(batch_id: str, hour: datetime, first: datetime, last: datetime) -> str:
    """The raw envelopes of one inbox batch received in ``hour``: the shard is the batch id's first hex
    digit; the name carries the minute and second of the first and last envelope received, so a
    replay skips an object outside its window without reading it."""
    return f"{raw_batch_hour_prefix(batch_id[0], hour)}{first:%M%S}-{last:%M%S}-{batch_id}{BATCH_SUFFIX}"


def raw_batch_hour_prefix(shard: str, hour: datetime) -> str:
    return f"{RAW_BATCH_PREFIX}{shard}/{hour:%Y/%m/%d/%H}/"


def raw_event_hour_prefix(source: str, tenant: str, hour: datetime) -> str:
    """Per-event raw objects (``raw/<source>/<tenant>/YYYY/MM/DD/HH/...json``): what ingest wrote for
    every delivery before batch objects, and still writes for a body too large for a queue message."""
    return f"raw/{source}/{tenant}/{hour:%Y/%m/%d/%H}/"


def entity_shard(pk: str) -> str:
    """The archive shard of an entity's audit records: every record of one entity lands in the same one."""
    return hashlib.sha256(pk.encode()).hexdigest()[0]


def audit_batch_prefix(pk: str) -> str:
    """Where the batch objects holding an entity's archived records are (with those of the other
    entities of its tenant, type and shard)."""
    tenant, entity_type, _ = pk.split("#", 2)
    return f"{AUDIT_BATCH_PREFIX}{entity_shard(pk)}/{tenant}/{entity_type}/"


def audit_batch_key(pk: str, day: datetime, batch_id: str) -> str:
    return f"{audit_batch_prefix(pk)}{day:%Y/%m/%d}/{batch_id}{BATCH_SUFFIX}"


def audit_archive_prefix(pk: str) -> str:
    """Per-record audit objects (``audit/<tenant>/<entity_type>/<entity_id>/<sk>.json``), written before
    batch objects: still read by the trail."""
    tenant, entity_type, entity_id = pk.split("#", 2)
    return f"{AUDIT_ARCHIVE_PREFIX}{tenant}/{entity_type}/{entity_id}/"


def audit_archive_key(pk: str, sk: str) -> str:
    return f"{audit_archive_prefix(pk)}{sk}.json"


class Env:
    """Environment variable names read by the handlers' settings models."""

    ENVIRONMENT = "AFTERSYNC_ENV"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
    STATE_TABLE = "STATE_TABLE"
    VIEW_TABLE = "VIEW_TABLE"  # the customer view (derived from the state table by functions/project)
    ARCHIVE_BUCKET = "ARCHIVE_BUCKET"
    INBOX_QUEUE_URL = "INBOX_QUEUE_URL"
    QUARANTINE_QUEUE_URL = "QUARANTINE_QUEUE_URL"
    EVENT_BUS = "EVENT_BUS_NAME"
    OBSERVED_QUEUE_URLS = "OBSERVED_QUEUE_URLS"  # normalise: {entity type: its domain's queue URL}
    CHANGE_ROUTES = "CHANGE_ROUTES"  # publish: [{"queue": URL, "pattern": EventBridge pattern}]
    SECRETS_PREFIX = "SECRETS_PREFIX"
    ENABLED_SOURCES = "ENABLED_SOURCES"
    MAX_BODY_BYTES = "MAX_BODY_BYTES"
    IDEMPOTENCY_TTL_SECONDS = "IDEMPOTENCY_TTL_SECONDS"
    TARGETS = "TARGETS_JSON"
    ALLOWED_LOOPBACK_PORTS = "ALLOWED_LOOPBACK_PORTS"  # the sandbox's fake servers; empty when deployed
    SECRETS_MAX_AGE_SECONDS = "SECRETS_MAX_AGE_SECONDS"
    DEFAULT_PHONE_REGION = "DEFAULT_PHONE_REGION"
    MAX_RECEIVE_COUNT = "MAX_RECEIVE_COUNT"
    AMAZON_SELLERS = "AMAZON_SELLERS_JSON"
    DISPATCH = "DISPATCH_JSON"
    RECONCILE_JOBS = "RECONCILE_JOBS_JSON"
    FIELD_MAPS = "FIELD_MAPS_JSON"
    WECOM_ROBOTS = "WECOM_ROBOTS_JSON"
    AUTOMATION_ROLES = "AUTOMATION_ROLES_JSON"
    CUSTOMER_NOTIFICATIONS = "CUSTOMER_NOTIFICATIONS_JSON"
    WECOM_API_BASE = "WECOM_API_BASE"
    READ_AUDIT_RETENTION_DAYS = "READ_AUDIT_RETENTION_DAYS"
    TENANT_TIMEZONES = "TENANT_TIMEZONES_JSON"
    SIDEBAR = "SIDEBAR_JSON"
    ALARMS_QUEUE_URL = "ALARMS_QUEUE_URL"  # normalise: schema drift notices, digested by notify
    SCHEMA_BASELINE = "SCHEMA_DRIFT_BASELINE"  # normalise: payloads that make a topic's shape known


# A tenant's time zone when its config names none (the shop's calendar: a warranty's last day)
DEFAULT_TIMEZONE = "Asia/Shanghai"


def resource_name(environment: str, purpose: str) -> str:
    """Physical name of a resource, e.g. ``aftersync-dev-inbox``."""
    return f"{APP}-{environment}-{purpose}"


def delivery_queue_purpose(target: str) -> str:
    return f"deliver-{target}"


def target_from_queue_name(queue_name: str, environment: str) -> str:
    prefix = resource_name(environment, delivery_queue_purpose(""))
    if not queue_name.startswith(prefix):
        raise ValueError(f"queue {queue_name!r} is not a delivery queue of environment {environment!r}")
    return queue_name[len(prefix) :]


def secrets_prefix(environment: str) -> str:
    return f"{APP}/{environment}"


def pull_secret_name(prefix: str, source: str, tenant: str) -> str:
    """Secret holding the API credentials a scheduled pull uses: ``{"access_token": "…"}`` (Shopify),
    ``{"consumer_key", "consumer_secret"}`` (WooCommerce), ``{"app_key", "app_secret", "session"}``
    (Taobao/Tmall through TOP).
    Apart from the webhook secrets, so only the reconcile function can read it."""
    return f"{prefix}/pull/{source}/{tenant}"


def source_secret_name(prefix: str, source: str, tenant: str) -> str:
    """Secret holding a source's signing secrets for one tenant: ``{"secrets": [newest, older…]}``."""
    return f"{prefix}/sources/{source}/{tenant}"


def tenant_salt_secret_name(prefix: str, tenant: str) -> str:
    """The tenant's identity salt: ``{"salt": "<random, at least 32 characters>"}``."""
    return f"{prefix}/tenants/{tenant}/identity"


def target_secret_name(prefix: str, target: str) -> str:
    """Secret holding a target's credentials: ``{"header": "X-Api-Key", "value": "…"}``."""
    return f"{prefix}/targets/{target}"


def reader_secret_name(prefix: str, name: str) -> str:
    """A reader of the lookup API (an agent, a supervisor, a system):
    ``{"tenant": "<tenant>", "role": "agent"|"supervisor"|"system", "keys": ["<name>.<random>", …]}``
    (several keys while one is rotated out). Its bearer key starts with ``<name>.``, which finds it."""
    return f"{prefix}/readers/{name}"


def wecom_app_secret_name(prefix: str, tenant: str) -> str:
    """A tenant's WeCom self-built app (the sidebar's): ``{"corp_secret": "<the app's Secret>"}``. Apart
    from the group robots' keys (``wecom/<robot>``): only the sidebar function reads it."""
    return f"{prefix}/wecom-app/{tenant}"


def sidebar_key_secret_name(prefix: str) -> str:
    """The keys signing the sidebar's sessions and screen-pop links: ``{"keys": ["<newest>", "<older>", …]}``
    (each at least 32 characters; the first signs, every one verifies, while one is rotated out)."""
    return f"{prefix}/sidebar/signing"


def metrics_namespace(environment: str) -> str:
    """CloudWatch namespace of an environment's metrics (alarms and dashboard read it)."""
    return f"Aftersync/{environment}"


def robot_secret_name(prefix: str, robot: str) -> str:
    """``{"key": "<robot key>", "mentioned_mobile_list": ["<on-call mobile>", …]}``"""
    return f"{prefix}/wecom/{robot}"


ALARM_TOPIC_SUFFIXES = {"critical": "alarms-critical", "warning": "alarms-warning"}
