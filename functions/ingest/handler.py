"""Webhook receiver behind API Gateway: ``POST /webhooks/{source}/{tenant}``."""

from __future__ import annotations

import base64
import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.idempotency import AdmissionLedger
from shared.adapters.s3 import S3Archive
from shared.adapters.secrets import SecretReader
from shared.adapters.sqs import SqsQueue
from shared.errors import WebhookRejected
from shared.intake.ingest import IngestPolicy, IngestPorts, WebhookRequest, accept_webhook
from shared.models import utcnow
from shared.observability import count_by, logger, metrics, tracer
from shared.settings import IngestSettings
from shared.sources.base import Headers

app = APIGatewayRestResolver()

# The inbox send (the second call before the ack) ends, sent or failed, within about the admission
# record's lease (ADMISSION_LEASE_SECONDS): a send that overran it may meet a copy that sends again
# (harmless), and a failed one gives its record up for the platform's retry.
SEND_TIMEOUT_SECONDS = 1.0


@cache
def settings() -> IngestSettings:
    return IngestSettings.from_env()


@cache
def ports() -> IngestPorts:
    s = settings()
    return IngestPorts(
        secrets=SecretReader(max_age=s.secrets_max_age_seconds),
        archive=S3Archive(s.archive_bucket),
        inbox=SqsQueue(s.inbox_queue_url, call_timeout_seconds=SEND_TIMEOUT_SECONDS),
        once=AdmissionLedger(s.idempotency_table, s.idempotency_ttl_seconds),
    )


def _error(description: str) -> Any:
    """An error answer as documented: ``{"error": <reason>, "message": <what was wrong>}``."""
    schema = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@app.post(
    "/webhooks/<source>/<tenant>",
    summary="Receive a platform webhook",
    description=(
        "Verifies the source's signature over the raw body, de-duplicates on the platform's event id, "
        "enqueues the raw delivery, and answers with the acknowledgement the platform expects. "
        "A rejected request leaves nothing behind."
    ),
    tags=["webhooks"],
    operation_id="receiveWebhook",
    responses={
        200: {
            "description": "Accepted, a duplicate of an accepted delivery, or a platform health check; the body "
            "is the source's own acknowledgement",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        400: _error("Malformed: not UTF-8 JSON (or form), or a required header is missing"),
        401: _error("Signature missing, not matching, or its timestamp outside the window"),
        404: _error("Unknown source, or no secret for this tenant"),
        409: _error("The same event id with a different body"),
        413: _error("Body over the configured limit"),
    },
)
def receive(source: str, tenant: str) -> Response[str]:
    event = app.current_event
    raw = event.body or ""
    # API Gateway is configured with binary media type */*, so the body arrives base64-encoded and
    # the signature is checked over the exact bytes the platform signed.
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8")
    s = settings()
    outcome = accept_webhook(
        WebhookRequest(source=source, tenant=tenant, headers=Headers(event.headers), body=body, received_at=utcnow()),
        IngestPolicy(s.enabled_sources, s.max_body_bytes, s.secrets_prefix),
        ports(),
    )
    if not outcome.accepted:
        logger.info("platform health check answered", extra={"source": source, "tenant": tenant})
        metrics.add_metric(name="WebhookPing", unit=MetricUnit.Count, value=1)
    for accepted in outcome.accepted:
        message = accepted.message
        logger.debug(  # per webhook: DEBUG (sampled); the admission record is the durable trace
            "webhook accepted",
            extra={
                "source": source,
                "tenant": tenant,
                "dedupe_key": message.dedupe_key,
                "topic": message.topic,
                "duplicate": accepted.duplicate,
            },
        )
        metrics.add_metric(
            name="WebhookDuplicate" if accepted.duplicate else "WebhookAccepted", unit=MetricUnit.Count, value=1
        )
    return Response(
        status_code=outcome.ack.status_code,
        content_type="application/json",
        body=json.dumps(outcome.ack.body),
    )


@app.exception_handler(WebhookRejected)
def rejected(exc: WebhookRejected) -> Response[str]:
    logger.warning("webhook rejected", extra={"reason": exc.reason, "detail": str(exc)})
    metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
    count_by("WebhookRejected", "reason", exc.reason)
    return Response(
        status_code=exc.status_code,
        content_type="application/json",
        body=json.dumps({"error": exc.reason, "message": str(exc)}),
    )


def openapi_document() -> str:
    """The webhook API as OpenAPI 3.1, generated from the route above (kept in docs/openapi.json)."""
    from shared.sources import SOURCES

    schema = json.loads(
        app.get_openapi_json_schema(
            title="Aftersync webhooks",
            version="1",
            description="Sources: " + ", ".join(sorted(SOURCES)) + ".",
        )
    )
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings()  # fail fast on a missing variable, before any request is handled
    ports().once.register_context(context)
    return app.resolve(event, context)
