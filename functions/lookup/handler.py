"""The lookup API behind API Gateway: ``GET /v1/{tenant}/lookup?<one selector>`` -> the customer view.

A reader (a bearer key bound to one tenant and a role, kept in Secrets Manager) asks by exactly one of
``phone``, ``email``, ``order``, ``serial``, ``tracking``, ``wecom_external_userid`` or ``customer_id``;
the answer is the customer's card, orders with warranty, after-sales cases, shipments, tickets and a
paged timeline, masked for the reader's role. Every authenticated lookup is recorded in the read audit
(the selector only as its salted HMAC); a refused one is counted, never recorded as a read.

Status codes: 200 an answer (``matches`` when several customers share the selector, a family's
phone); 400 no selector, more than one, or a malformed one / limit / cursor; 401 no or a wrong key, or
a key of another tenant; 404 nothing found; 503 ``not_configured`` when the tenant has no identity salt
secret (the message names it; a lookup by customer id needs none). Never a 5xx for what a request carries.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.secrets import SecretReader
from shared.adapters.view_store import DynamoViewStore
from shared.constants import tenant_salt_secret_name
from shared.errors import ConfigurationError
from shared.identity.resolver import salt_from_secret
from shared.observability import logger, metrics, tracer
from shared.read.access_log import ReadAudit
from shared.read.answer import Read
from shared.read.lookup import LOOKUP_KINDS, lookup, selector_digest
from shared.read.readers import UNAUTHORIZED, WWW_AUTHENTICATE, Reader, Refusal, authenticate, secret_fetcher
from shared.settings import LookupSettings

app = APIGatewayRestResolver()
MAX_SELECTOR_CHARS = 256


@cache
def settings() -> LookupSettings:
    return LookupSettings.from_env()


@cache
def secrets() -> SecretReader:
    return SecretReader(max_age=settings().secrets_max_age_seconds)


@cache
def view_store() -> DynamoViewStore:
    return DynamoViewStore(settings().view_table, state_table=settings().state_table)


@cache
def read_audit() -> ReadAudit:
    return ReadAudit(settings().state_table, retention_days=settings().read_audit_retention_days)


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _bad(message: str) -> Response[Any]:
    return _answer(400, {"error": "bad_request", "message": message})


def _selector(query: dict[str, str], repeated: list[str]) -> tuple[str, str] | str:
    """The one selector asked for, or what was wrong with the query."""
    if repeated:
        return f"each query parameter at most once (repeated: {', '.join(sorted(repeated))})"
    given = {k: v for k, v in query.items() if k in LOOKUP_KINDS}
    unknown = sorted(set(query) - set(LOOKUP_KINDS) - {"limit", "cursor"})
    if unknown:
        return f"unknown query parameter(s): {', '.join(unknown)}; selectors: {', '.join(LOOKUP_KINDS)}"
    if len(given) != 1:
        return f"ask by exactly one of {', '.join(LOOKUP_KINDS)} (got {len(given)})"
    [(kind, value)] = given.items()
    if not value.strip() or len(value) > MAX_SELECTOR_CHARS:
        return f"{kind}: empty or longer than {MAX_SELECTOR_CHARS} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{kind}: not valid UTF-8"
    return kind, value


@app.get("/v1/<tenant>/lookup")
def lookup_route(tenant: str) -> Response[Any]:
    event = app.current_event
    s = settings()
    found = authenticate(
        event.headers.get("authorization") or event.headers.get("Authorization"),
        tenant,
        secret_fetcher(secrets().get_json, s.secrets_prefix),
    )
    if isinstance(found, Refusal):
        metrics.add_metric(name="LookupRefused", unit=MetricUnit.Count, value=1)
        logger.info("lookup refused", extra={"tenant": tenant, "detail": found.detail})
        return _answer(
            401,
            {"error": UNAUTHORIZED, "message": "a valid reader key for this tenant is required"},
            {"WWW-Authenticate": WWW_AUTHENTICATE},
        )
    reader: Reader = found
    query = dict(event.query_string_parameters or {})
    multi = event.multi_value_query_string_parameters or {}
    selector = _selector(query, [k for k, v in multi.items() if len(v) > 1])
    read = Read(read_audit(), tenant, reader.name, reader.role, event.request_context.request_id or uuid.uuid4().hex)
    if isinstance(selector, str):
        asked = [k for k in query if k in LOOKUP_KINDS]
        read.record(asked[0] if len(asked) == 1 else None, None, [], 400, "bad selector")
        return _bad(selector)
    kind, value = selector
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        read.record(kind, None, [], 400, "bad limit")
        return _bad("limit: a whole number from 1 to 100")
    salt: bytes | None = None
    if kind != "customer_id":  # a customer id is read as it is: no salt needed
        name = tenant_salt_secret_name(s.secrets_prefix, tenant)
        try:
            salt = salt_from_secret(secrets().get_json(name), name)
        except ConfigurationError:
            read.record(kind, None, [], 503, "not configured")
            metrics.add_metric(name="LookupNotConfigured", unit=MetricUnit.Count, value=1)
            return _answer(
                503,
                {
                    "error": "not_configured",
                    "message": f"the tenant's identity salt is not set up: secret {name} (a JSON object with "
                    '"salt", at least 32 characters); lookups by customer_id work without it',
                },
            )
    digest = selector_digest(kind, value, tenant, salt, s.default_phone_region) if salt is not None else None
    if digest is None and kind != "customer_id":
        read.record(kind, None, [], 400, "not a selector")
        return _bad(f"{kind}: not a valid {kind.replace('_', ' ')}")
    status, body = read.answer(
        lambda: lookup(
            kind,
            value,
            tenant,
            store=view_store(),
            salt=salt,
            default_region=s.default_phone_region,
            timezone=s.timezone(tenant),
            limit=limit,
            cursor=query.get("cursor"),
        ),
        kind,
        digest,
        default_region=s.default_phone_region,
        not_found=f"nothing found for that {kind}",
    )
    return _answer(status, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings()  # fail fast on a missing variable, before any request is handled
    return app.resolve(event, context)
