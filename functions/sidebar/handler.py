"""The WeCom sidebar page behind API Gateway: ``GET /v1/{tenant}/sidebar`` and its two data calls.

Its own function, not the lookup's: it alone holds the WeCom apps' corp secrets and the session signing
key and calls WeCom (the lookup function reads no such secret and makes no outbound call), and the page's
HTML and WeCom client stay out of the lookup's cold start.

- ``GET /v1/{tenant}/sidebar`` serves the page (zh-CN or en: ``lang``, else ``Accept-Language``):

  - opened by WeCom (the chat toolbar, 聊天工具栏) with an OAuth ``code``: the code is exchanged through
    the WeCom API for the member's user id (``auth/getuserinfo``), which the tenant's config maps to a role;
    the page gets a session (``shared.read.sidebar_session``) for that user and role. No code: a redirect to
    WeCom's OAuth authorize page (``snsapi_base``), which comes back with one. A code WeCom refuses
    (invalid, expired, used: a code is usable once) is a 401 page with a link to sign in again; a member
    the config does not list a 403 page; WeCom not answering a 503 page;
  - a call centre's screen pop: ``?phone=`` with a reader's ``Authorization: Bearer`` key, or
    ``?link=<grant>`` made by ``aftersync sidebar link`` (no phone in the URL); a refused key or link is a
    401 page. The session carries the phone's HMAC only.

- ``GET /v1/{tenant}/sidebar/jsapi?url=<the page's URL>`` (the session in ``Authorization: Session …``):
  what ``wx.agentConfig`` needs, the signature computed here from the app's jsapi ticket, for a URL of this
  page only;
- ``GET /v1/{tenant}/sidebar/data`` (the session): the lookup answer masked for the session's role, by
  ``wecom_external_userid`` (a WeCom session: the contact ``getCurExternalContact`` named) or the session's
  phone (a screen pop). Every answered read is in the read audit as the lookup API's are, the reader being
  ``wecom:<userid>`` or the reader's name; a refused one (no, a bad, an expired session: 401) is counted,
  never recorded as a read.

WeCom user ids are recorded in the read audit in clear: who read is what the audit is for, and a user id
is the enterprise's own account name for its staff member (not a customer's data). They are never logged.
"""

from __future__ import annotations

import re
import secrets as stdlib_secrets
import time
import uuid
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.http import SafeHttp
from shared.adapters.secrets import SecretReader
from shared.adapters.view_store import DynamoViewStore
from shared.adapters.wecom_app import WeComApp, WeComUnavailable, jsapi_signature
from shared.constants import reader_secret_name, sidebar_key_secret_name, tenant_salt_secret_name, wecom_app_secret_name
from shared.errors import ConfigurationError
from shared.identity.resolver import salt_from_secret
from shared.observability import logger, metrics, tracer
from shared.read import sidebar_page as ui
from shared.read.access_log import ReadAudit
from shared.read.answer import Read
from shared.read.lookup import LookupResult, lookup, selector_digest
from shared.read.readers import WWW_AUTHENTICATE, Reader, Refusal, authenticate, parse_reader_secret, secret_fetcher
from shared.read.sidebar_lookup import lookup_by_digest
from shared.read.sidebar_session import Grant, issue, signing_keys, verify
from shared.settings import SidebarSettings

app = APIGatewayRestResolver()
MAX_PARAM_CHARS = 512
TIMELINE_LIMIT = 20
STATE = "aftersync"  # OAuth state: WeCom hands it back; nothing rides on it (snsapi_base, no cookie)
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")
_SESSION = re.compile(r"^Session +(\S{1,1024})$")


@cache
def settings() -> SidebarSettings:
    return SidebarSettings.from_env()


@cache
def secrets() -> SecretReader:
    return SecretReader(max_age=settings().secrets_max_age_seconds)


@cache
def view_store() -> DynamoViewStore:
    return DynamoViewStore(settings().view_table, state_table=settings().state_table)


@cache
def read_audit() -> ReadAudit:
    return ReadAudit(settings().state_table, retention_days=settings().read_audit_retention_days)


@cache
def http() -> SafeHttp:
    return SafeHttp(allow_loopback=settings().loopback_ports)


@cache
def wecom_app(tenant: str) -> WeComApp:
    """The tenant's WeCom app, one per warm container: its access token and jsapi ticket are kept in it."""
    s = settings()
    return WeComApp(s.sidebar.api_base, s.sidebar.tenants[tenant].corp_id, lambda: _corp_secret(tenant), http())


def _corp_secret(tenant: str) -> str:
    s = settings()
    name = wecom_app_secret_name(s.secrets_prefix, tenant)
    try:
        value = (secrets().get_json(name) or {}).get("corp_secret")
    except ConfigurationError:
        value = None
    if not isinstance(value, str) or not value:
        logger.error("the WeCom app secret is missing or malformed", extra={"tenant": tenant, "secret": name})
        raise WeComUnavailable("no corp secret")
    return value


def _keys() -> list[bytes]:
    name = sidebar_key_secret_name(settings().secrets_prefix)
    try:
        return signing_keys(secrets().get_json(name))
    except ValueError as exc:
        raise ConfigurationError(f"secret {name!r}: {exc}") from exc


def _salt(tenant: str) -> bytes:
    name = tenant_salt_secret_name(settings().secrets_prefix, tenant)
    return salt_from_secret(secrets().get_json(name), name)


def _header(name: str) -> str | None:
    headers = app.current_event.headers or {}
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _query() -> tuple[dict[str, str], list[str]]:
    event = app.current_event
    multi = event.multi_value_query_string_parameters or {}
    return dict(event.query_string_parameters or {}), sorted(k for k, v in multi.items() if len(v) > 1)


# --- answers ---------------------------------------------------------------------------------------------
def _html(status: int, body: str, script_nonce: str, extra: dict[str, str] | None = None) -> Response[Any]:
    s = settings()
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={**ui.headers(script_nonce, s.sidebar.jssdk_scripts), **(extra or {})},
    )


def _message(
    status: int,
    lang: ui.Lang,
    title: str,
    message: str,
    link: tuple[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> Response[Any]:
    n = ui.nonce()
    return _html(status, ui.message_page(lang, title, message, n, link), n, extra)


def _json(status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=body,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", **(extra or {})},
    )


def _unauthorized() -> Response[Any]:
    metrics.add_metric(name="LookupRefused", unit=MetricUnit.Count, value=1)
    return _json(
        401,
        {"error": "unauthorized", "message": "a valid sidebar session is required: open the sidebar again"},
        {"WWW-Authenticate": 'Session realm="aftersync-sidebar"'},
    )


# --- URLs ----------------------------------------------------------------------------------------------------
def _base_url() -> str | None:
    """Where this API is, as the browser sees it: the configured public URL, else the request's host (and
    the stage, on API Gateway's own domain); ``None`` for a Host header that is not a host."""
    s = settings()
    if s.sidebar.public_url:
        return s.sidebar.public_url
    host = _header("host") or ""
    if not _HOST.match(host):
        return None
    proto = "http" if (_header("x-forwarded-proto") or "https") == "http" and s.loopback_ports else "https"
    stage = app.current_event.request_context.stage
    prefix = f"/{stage}" if host.endswith(".amazonaws.com") and stage else ""
    return f"{proto}://{host}{prefix}"


def _page_url(tenant: str, lang: str | None) -> str | None:
    base = _base_url()
    if base is None:
        return None
    return f"{base}/v1/{quote(tenant, safe='')}/sidebar" + (f"?{urlencode({'lang': lang})}" if lang else "")


def _authorize_url(tenant: str, page_url: str) -> str:
    s = settings()
    wecom = s.sidebar.tenants[tenant]
    query = urlencode(
        {
            "appid": wecom.corp_id,
            "redirect_uri": page_url,
            "response_type": "code",
            "scope": "snsapi_base",
            "state": STATE,
            "agentid": str(wecom.agent_id),
        }
    )
    return f"{s.sidebar.oauth_base}/connect/oauth2/authorize?{query}#wechat_redirect"


def _is_page_url(url: str, tenant: str) -> bool:
    """Whether ``url`` is this tenant's sidebar page on this API (the only URL the JS-SDK is signed for)."""
    base = _base_url()
    if base is None or len(url) > 2048:
        return False
    try:
        given, expected = urlsplit(url), urlsplit(f"{base}/v1/{quote(tenant, safe='')}/sidebar")
    except ValueError:
        return False
    return (given.scheme, given.netloc, given.path) == (expected.scheme, expected.netloc, expected.path)


# --- the page --------------------------------------------------------------------------------------------------
@app.get("/v1/<tenant>/sidebar")
def page_route(tenant: str) -> Response[Any]:
    query, repeated = _query()
    lang = ui.language(query.get("lang"), _header("accept-language"))
    if repeated or any(len(v) > MAX_PARAM_CHARS for v in query.values()):
        return _message(400, lang, "bad_request_title", "bad_request")
    authorization = _header("authorization")
    if authorization is not None or "phone" in query:
        return _screen_pop_by_key(tenant, authorization, query.get("phone"), lang)
    if "link" in query:
        return _screen_pop_by_link(tenant, query["link"], lang)
    s = settings()
    if tenant not in s.sidebar.tenants:
        return _message(404, lang, "not_configured_title", "not_configured")
    page_url = _page_url(tenant, query.get("lang"))
    if page_url is None:
        return _message(400, lang, "bad_request_title", "bad_request")
    sign_in = ("sign_in", _authorize_url(tenant, page_url))
    code = query.get("code")
    if not code:
        return Response(
            status_code=302,
            content_type="text/plain; charset=utf-8",
            body="",
            headers={"Location": sign_in[1], "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", code):
        return _refused_code(lang, sign_in)
    try:
        user = wecom_app(tenant).user_id(code)
    except WeComUnavailable as exc:
        logger.warning("WeCom did not answer a sign-in", extra={"tenant": tenant, "reason": str(exc)})
        metrics.add_metric(name="SidebarWeComUnavailable", unit=MetricUnit.Count, value=1)
        return _message(503, lang, "unavailable_title", "unavailable", extra={"Retry-After": "5"})
    if user is None:
        return _refused_code(lang, sign_in)
    role = s.sidebar.tenants[tenant].users.get(user)
    if role is None:
        metrics.add_metric(name="LookupRefused", unit=MetricUnit.Count, value=1)
        logger.info("sidebar: a WeCom member without a role", extra={"tenant": tenant})
        return _message(403, lang, "forbidden_title", "forbidden")
    token, _ = issue("session", tenant, f"wecom:{user}", role, "wecom", s.sidebar.session_minutes, _keys())
    return _app_page(lang, "wecom", token)


def _refused_code(lang: ui.Lang, sign_in: tuple[str, str]) -> Response[Any]:
    metrics.add_metric(name="LookupRefused", unit=MetricUnit.Count, value=1)
    return _message(401, lang, "unauthorized_title", "unauthorized", link=sign_in)


def _app_page(lang: ui.Lang, mode: ui.Mode, token: str) -> Response[Any]:
    n = ui.nonce()
    scripts = settings().sidebar.jssdk_scripts
    return _html(200, ui.page(lang, mode, token, scripts, n), n)


def _screen_pop_by_key(tenant: str, authorization: str | None, phone: str | None, lang: ui.Lang) -> Response[Any]:
    s = settings()
    found = authenticate(authorization, tenant, secret_fetcher(secrets().get_json, s.secrets_prefix))
    if isinstance(found, Refusal):
        metrics.add_metric(name="LookupRefused", unit=MetricUnit.Count, value=1)
        logger.info("sidebar screen pop refused", extra={"tenant": tenant, "detail": found.detail})
        return _message(401, lang, "unauthorized_title", "reader_refused", extra={"WWW-Authenticate": WWW_AUTHENTICATE})
    reader: Reader = found
    if not phone:
        return _message(400, lang, "bad_request_title", "bad_phone")
    digest = selector_digest("phone", phone, tenant, _salt(tenant), s.default_phone_region)
    if digest is None:
        return _message(400, lang, "bad_request_title", "bad_phone")
    token, _ = issue("session", tenant, reader.name, reader.role, "phone", s.sidebar.session_minutes, _keys(), digest)
    return _app_page(lang, "phone", token)


def _screen_pop_by_link(tenant: str, link: str, lang: ui.Lang) -> Response[Any]:
    s = settings()
    grant = verify(link, "link", tenant, _keys())
    reader = _current_reader(grant.reader, tenant) if isinstance(grant, Grant) else None
    if not isinstance(grant, Grant) or reader is None or grant.digest is None:
        metrics.add_metric(name="LookupRefused", unit=MetricUnit.Count, value=1)
        logger.info(
            "sidebar link refused", extra={"tenant": tenant, "detail": grant if isinstance(grant, str) else "reader"}
        )
        return _message(401, lang, "unauthorized_title", "link_refused")
    token, _ = issue(
        "session", tenant, reader.name, reader.role, "phone", s.sidebar.session_minutes, _keys(), grant.digest
    )
    return _app_page(lang, "phone", token)


def _current_reader(name: str, tenant: str) -> Reader | None:
    """The reader a link was made for, as its secret says now: a reader removed (or moved to another tenant)
    since the link was made cannot use it; its role is today's."""
    try:
        raw = secrets().get_json(reader_secret_name(settings().secrets_prefix, name))
        secret = parse_reader_secret(name, raw) if raw is not None else None
    except (ConfigurationError, ValueError):
        return None
    if secret is None or secret.tenant != tenant:
        return None
    return Reader(name=name, tenant=tenant, role=secret.role)


# --- the page's calls ------------------------------------------------------------------------------------------------
def _session(tenant: str) -> Grant | None:
    match = _SESSION.match((_header("authorization") or "").strip())
    if match is None:
        return None
    grant = verify(match[1], "session", tenant, _keys())
    if not isinstance(grant, Grant):
        logger.info("sidebar session refused", extra={"tenant": tenant, "detail": grant})
        return None
    return grant


@app.get("/v1/<tenant>/sidebar/jsapi")
def jsapi_route(tenant: str) -> Response[Any]:
    grant = _session(tenant)
    if grant is None or grant.subject != "wecom" or tenant not in settings().sidebar.tenants:
        return _unauthorized()
    query, repeated = _query()
    url = query.get("url", "")
    if repeated or set(query) != {"url"} or not _is_page_url(url, tenant):
        return _json(400, {"error": "bad_request", "message": "url: this sidebar page's URL, once"})
    try:
        ticket = wecom_app(tenant).agent_ticket()
    except WeComUnavailable as exc:
        logger.warning("WeCom did not give a jsapi ticket", extra={"tenant": tenant, "reason": str(exc)})
        return _json(503, {"error": "unavailable", "message": "WeCom did not answer"}, {"Retry-After": "5"})
    wecom = settings().sidebar.tenants[tenant]
    timestamp, nonce_str = int(time.time()), stdlib_secrets.token_urlsafe(12)
    return _json(
        200,
        {
            "corpid": wecom.corp_id,
            "agentid": wecom.agent_id,
            "timestamp": timestamp,
            "nonceStr": nonce_str,
            "signature": jsapi_signature(ticket, nonce_str, timestamp, url),
        },
    )


@app.get("/v1/<tenant>/sidebar/data")
def data_route(tenant: str) -> Response[Any]:
    grant = _session(tenant)
    if grant is None:
        return _unauthorized()
    s = settings()
    query, repeated = _query()
    read = Read(
        read_audit(), tenant, grant.reader, grant.role, app.current_event.request_context.request_id or uuid.uuid4().hex
    )
    allowed = {"cursor"} | ({"wecom_external_userid"} if grant.subject == "wecom" else set())
    unknown = sorted(set(query) - allowed)
    if repeated or unknown:
        read.record(None, None, [], 400, "bad query")
        return _json(400, {"error": "bad_request", "message": f"not asked here: {', '.join(repeated or unknown)}"})
    salt = _salt(tenant)
    cursor = query.get("cursor") or None
    if grant.subject == "wecom":
        kind, value = "wecom_external_userid", (query.get("wecom_external_userid") or "").strip()
        if not value or len(value) > MAX_PARAM_CHARS:
            read.record(kind, None, [], 400, "no contact")
            return _json(400, {"error": "bad_request", "message": "wecom_external_userid: the chat's contact"})
        digest = selector_digest(kind, value, tenant, salt, s.default_phone_region)
    else:
        kind, value, digest = "phone", "", grant.digest

    def run() -> LookupResult:
        if grant.subject == "wecom":
            return lookup(
                kind,
                value,
                tenant,
                store=view_store(),
                salt=salt,
                default_region=s.default_phone_region,
                timezone=s.timezone(tenant),
                limit=TIMELINE_LIMIT,
                cursor=cursor,
            )
        return lookup_by_digest(
            kind,
            str(digest),
            tenant,
            store=view_store(),
            salt=salt,
            timezone=s.timezone(tenant),
            limit=TIMELINE_LIMIT,
            cursor=cursor,
        )

    status, body = read.answer(
        run, kind, digest, default_region=s.default_phone_region, not_found="nothing found for this customer"
    )
    return _json(status, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings()  # fail fast on a missing variable, before any request is handled
    return app.resolve(event, context)
