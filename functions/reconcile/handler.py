"""Scheduled reconciliation: one run per ``{"source", "tenant"}`` message from the job's schedule.

Pulls what the platform changed since the watermark, compares it with the state and admits only
what the state does not reflect (see ``shared/pulls/reconcile.py``). ``ReconcileMissed`` counts changes
that had not arrived by webhook: above zero, a subscription or an endpoint is losing events.
Throttling ends the run early (the watermark keeps its progress; the next run resumes). Bad
credentials, a platform error or junk fail the record: retried by SQS, then dead-lettered with the
reason, and the DLQ alarm reaches the on-call group.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.dead_letter import DeadLetteringProcessor, PermanentFailure
from shared.adapters.http import SafeHttp
from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.secrets import SecretReader
from shared.adapters.sqs import SqsQueue
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.watermarks import ReconcileWatermarks
from shared.constants import pull_secret_name
from shared.errors import ConfigurationError
from shared.intake.ingest import StorePorts
from shared.observability import logger, metrics, tracer
from shared.pulls import reconcile
from shared.settings import ReconcileSettings
from shared.state.policy import default_policy


@cache
def settings() -> ReconcileSettings:
    return ReconcileSettings.from_env()


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@dataclass(frozen=True)
class Ports:
    """What the function touches: the webhook path's store (what a pull feeds in is admitted like a
    webhook), the state it compares with, its watermarks, the pull credentials, the shops over HTTPS."""

    inbox: StorePorts
    state: DynamoStateStore
    watermarks: ReconcileWatermarks
    secrets: SecretReader
    http: SafeHttp


@cache
def ports() -> Ports:
    s = settings()
    inbox = StorePorts(
        archive=S3Archive(s.archive_bucket),
        inbox=SqsQueue(s.inbox_queue_url),
        once=AdmissionLedger(s.idempotency_table, s.idempotency_ttl_seconds),
    )
    return Ports(
        inbox,
        DynamoStateStore(s.state_table),
        ReconcileWatermarks(s.state_table),
        SecretReader(s.secrets_max_age_seconds),
        SafeHttp(allow_loopback=s.loopback_ports),
    )


# Each platform's pager, made from its job, its pull secret (each checks the secret holds what it needs, and
# says what is missing) and the SSRF-checked client. Named, not imported: a cold start loads only the pagers
# of the jobs it runs (and their sources' normalisers).
PAGERS: dict[str, str] = {
    "shopify": "shared.pulls.shopify_returns:ShopifyChanges.from_credentials",
    "woocommerce": "shared.pulls.woocommerce_rest:WooCommerceOrders",
    "taobao": "shared.pulls.taobao_top:TaobaoChanges",
    "stripe": "shared.pulls.stripe_events:StripeEvents",
    "zendesk": "shared.pulls.zendesk_export:ZendeskTickets",
    "aftership": "shared.pulls.aftership_trackings:AfterShipTrackings",
    "amazon": "shared.pulls.amazon_orders:AmazonOrders",
    "douyin": "shared.pulls.douyin_orders:DouyinOrders",
    "youzan": "shared.pulls.youzan_cloud:YouzanChanges",
}
MakePager = Callable[[reconcile.ReconcileJob, Mapping[str, Any], SafeHttp], reconcile.PagesPort]


@cache
def make_pager(source: str) -> MakePager:
    """The callable that makes ``source``'s pager (imported on first use)."""
    module, _, path = PAGERS[source].partition(":")
    made: Any = importlib.import_module(module)
    for name in path.split("."):
        made = getattr(made, name)
    return cast(MakePager, made)


def pager(job: reconcile.ReconcileJob, secrets: SecretReader, http: SafeHttp) -> reconcile.PagesPort:
    """The job's platform's pager, with the credentials of its pull secret."""
    name = pull_secret_name(settings().secrets_prefix, job.source, job.tenant)
    credentials = secrets.get_json(name)
    if not credentials:
        raise ConfigurationError(f"secret {name!r} must exist and hold the {job.source} pull's credentials")
    return make_pager(job.source)(job, credentials, http)


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> dict[str, Any]:
    """One run; Powertools passes the invocation's context, whose time left bounds the run."""
    p = ports()
    store_ports, store, watermarks, secrets, http = p.inbox, p.state, p.watermarks, p.secrets, p.http
    try:
        request = json.loads(record.body)
        job = settings().job(str(request["source"]), str(request["tenant"]))
    except (ValueError, KeyError, TypeError, ConfigurationError) as exc:  # no retry makes it a job
        raise PermanentFailure(f'not a configured reconcile job {{"source", "tenant"}}: {exc}') from exc
    result = reconcile.run(
        job,
        pager(job, secrets, http),
        watermarks,
        store.load_states,
        default_policy(),
        store_ports,
        datetime.now(UTC),
        seconds_left=(lambda: lambda_context.get_remaining_time_in_millis() / 1000)
        if lambda_context
        else lambda: float("inf"),
    )
    summary = {**result.as_dict(), "more": result.more, "watermark": str(result.watermark)}
    logger.info("reconciled", extra={"source": job.source, "tenant": job.tenant, **summary})
    for metric, value in (
        ("ReconcilePulled", result.pulled),
        ("ReconcileKnown", result.known),
        ("ReconcileMissed", result.missed),
        ("ReconcileUnusable", result.unusable),
        ("ReconcileThrottled", int(result.throttled)),
    ):
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)
    return summary


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    ports().inbox.once.register_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
