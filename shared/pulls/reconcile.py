"""Reconciliation: pull what a platform changed since the last run, compare it with the state, and
feed in only what the state does not already reflect (a webhook that never came).

A platform's webhooks are at-least-once while the subscription is healthy, but a subscription that
failed too often is removed, an outage on our side can outlast the platform's retries, and some
changes never fire a webhook at all. So on a schedule, per (source, tenant):

1. read the watermark (the newest change time seen by the last run), or start ``first_lookback_hours``
   back; go back ``overlap_minutes`` more, since a platform's change times are not strictly ordered
   with its list;
2. page through the platform's records changed since then, oldest first;
3. normalise each page as the webhook path would and compare every record with the state (the
   backfill check: would merging it change anything?). Records the state already reflects are
   counted and dropped; the others are admitted to the inbox with origin ``reconcile``, once per
   record content. A record that does not normalise is admitted too, so normalise quarantines it
   with the reason rather than it vanishing here;
4. move the watermark after every page, so a run cut short (throttled, timed out) resumes there;
   never past the run's own ``now`` (a record dated in the future would stop every later run finding
   anything).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.intake.ingest import StorePorts, store_once
from shared.pulls.backfill import LoadStates, plan, verify
from shared.state.policy import ConflictPolicy

ORIGIN: Literal["reconcile"] = "reconcile"


# The Taobao Open Platform's gateway (a job's ``url`` for ``taobao`` unless it names another)
TOP_GATEWAY = "https://gw.api.taobao.com/router/rest"
# A job's ``url`` where the platform has one API for every account (a shop's own API needs its url)
API_ENDPOINTS: dict[str, str] = {
    "taobao": TOP_GATEWAY,
    "stripe": "https://api.stripe.com",
    "aftership": "https://api.aftership.com",
    "douyin": "https://openapi-fxg.jinritemai.com",
    "youzan": "https://open.youzanyun.com",
}


class ReconcileJob(BaseModel):
    """One scheduled pull: ``{"source": "shopify", "tenant": "acme", "url": "https://acme.myshopify.com"}``,
    or ``{"source": "taobao", "tenant": "acme"}`` (the platform's one API: ``API_ENDPOINTS``). The
    credentials are the secret ``aftersync/<env>/pull/<source>/<tenant>``: Shopify ``{"access_token"}``,
    WooCommerce ``{"consumer_key", "consumer_secret"}``, Taobao ``{"app_key", "app_secret", "session"}``,
    Stripe ``{"api_key"}``, Zendesk ``{"email", "api_token"}`` or ``{"oauth_token"}``, AfterShip
    ``{"api_key"}``, Amazon ``{"refresh_token", "client_id", "client_secret"}``, Douyin ``{"app_key",
    "app_secret", "shop_id"}``, Youzan ``{"client_id", "client_secret", "kdt_id"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Literal["shopify", "woocommerce", "taobao", "stripe", "zendesk", "aftership", "amazon", "douyin", "youzan"]
    tenant: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    # the shop's or account's base URL (Shopify, WooCommerce, Zendesk's https://<subdomain>.zendesk.com), or
    # the platform's API (API_ENDPOINTS by default); https only outside the sandbox
    url: HttpUrl | None = None
    every_minutes: Annotated[int, Field(ge=5, le=1440)] = 15
    overlap_minutes: Annotated[int, Field(ge=0, le=1440)] = 10
    first_lookback_hours: Annotated[int, Field(ge=1, le=24 * 60)] = 24
    max_pages: Annotated[int, Field(ge=1, le=100)] = 20  # per run; the rest waits for the next one
    api_version: Annotated[str, Field(pattern=r"^\d{4}-\d{2}$")] = "2025-01"  # Shopify
    sign_method: Literal["md5", "hmac", "hmac-sha256"] = "hmac-sha256"  # Taobao (all three), Douyin (md5, hmac-sha256)
    # Taobao, Stripe, AfterShip, Amazon, Youzan (lists not ordered by change): the changes read at a time (TOP takes at
    # most a day), halved while one holds more than a run's pages
    window_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    # Amazon: the marketplaces to list (e.g. A1PA6795UKMFR9 for amazon.de), and Login with Amazon's token
    # endpoint (https://api.amazon.com/auth/o2/token unless set: the sandbox's fake)
    marketplace_ids: tuple[Annotated[str, Field(pattern=r"^[A-Z0-9]{8,20}$")], ...] = ()
    auth_url: HttpUrl | None = None

    @model_validator(mode="after")
    def _url(self) -> ReconcileJob:
        if self.url is None and self.source not in API_ENDPOINTS:
            raise ValueError(f"a {self.source} job needs the shop's or account's url")
        if self.source == "douyin" and self.sign_method == "hmac":
            raise ValueError("sign_method: Douyin signs with md5 or hmac-sha256")
        if self.source == "amazon" and not self.marketplace_ids:
            raise ValueError("an amazon job needs marketplace_ids (the marketplaces whose orders to list)")
        return self

    @property
    def endpoint(self) -> str:
        return str(self.url) if self.url is not None else API_ENDPOINTS[self.source]


# What a pulled record is, in the source's webhook terms: its normaliser reads it as that topic (a
# record that says its own topic, as Taobao's trades and refunds do, keeps it).
TOPICS: dict[str, str] = {"shopify": "orders/updated", "woocommerce": "order.updated"}


@dataclass(frozen=True)
class Pulled:
    changed_at: datetime
    text: str  # the record as the platform sent it (JSON)
    topic: str | None = None  # None: the source's TOPICS entry

    @classmethod
    def of(cls, changed_at: datetime, record: Any, topic: str | None = None) -> Pulled:
        """A record as its canonical JSON (keys sorted, compact, UTF-8 kept): the same record is the same
        text, so the same admission key, whichever page or run brought it."""
        text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(changed_at, text, topic)


def iso_time(value: Any) -> datetime:
    """An ISO 8601 time with its offset (``Z`` taken as UTC); ValueError for one without an offset (a
    platform's clock we cannot place)."""
    at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("no time zone")
    return at


class Throttled(Exception):
    """The platform asked us to slow down: this run stops here and the next one resumes."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(value: str | None) -> int | None:
    """A ``Retry-After`` header's seconds; None when absent or not a number (an HTTP date, junk): a 429
    is throttling whatever its header says."""
    try:
        return max(0, int(float(value))) if value else None
    except (ValueError, OverflowError):
        return None


def unquoted(text: str, *credentials: str | None) -> str:
    """A platform's own error text for a reason, with any of the run's credentials it quotes taken out (a
    gateway may echo the token or session it refuses; the reason is logged and kept with the dead letter)."""
    for credential in credentials:
        if credential:
            text = text.replace(credential, "[a credential]")
    return text


class PullFailed(Exception):
    """The platform refused or failed the pull (bad credentials, 5xx, junk): retried, then dead-lettered."""


class PagesPort(Protocol):
    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        """The records changed at or after ``since``, oldest change first, a page at a time."""
        ...


class WatermarkPort(Protocol):
    def load(self, source: str, tenant: str) -> datetime | None: ...

    def save(self, source: str, tenant: str, newest: datetime, run: dict[str, int]) -> None: ...


@dataclass
class RunResult:
    pulled: int = 0
    known: int = 0  # the state already reflected them
    missed: int = 0  # admitted: the state did not have them (or had them older)
    already_admitted: int = 0  # admitted by an earlier run and not processed yet
    unusable: int = 0  # admitted for normalise to quarantine with the reason
    pages: int = 0
    more: bool = False  # stopped at max_pages or by throttling; the next run resumes
    throttled: bool = False
    watermark: datetime | None = None

    def as_dict(self) -> dict[str, int]:
        return {
            "pulled": self.pulled,
            "known": self.known,
            "missed": self.missed,
            "already_admitted": self.already_admitted,
            "unusable": self.unusable,
            "pages": self.pages,
        }


def run(
    job: ReconcileJob,
    pages: PagesPort,
    watermarks: WatermarkPort,
    load_states: LoadStates,
    policy: ConflictPolicy,
    ports: StorePorts,
    now: datetime,
    seconds_left: Callable[[], float] = lambda: float("inf"),
    reserve_seconds: float = 10.0,
) -> RunResult:
    """One pull of ``job``: stops after ``max_pages``, when throttled, or when less than
    ``reserve_seconds`` of the invocation would be left for another page."""
    result = RunResult(watermark=watermarks.load(job.source, job.tenant))
    # never from the future: a watermark saved past ``now`` (see below) would make every run find nothing
    start = min(result.watermark or now - timedelta(hours=job.first_lookback_hours), now) - timedelta(
        minutes=job.overlap_minutes
    )
    try:
        for page in pages.pages(start):
            result.pages += 1
            result.pulled += len(page)
            by_topic: dict[str, list[tuple[int, str]]] = {}
            for n, p in enumerate(page, start=1):
                by_topic.setdefault(p.topic or TOPICS[job.source], []).append((n, p.text))
            for topic, lines in by_topic.items():
                planned = plan(job.source, job.tenant, topic, lines, now, origin=ORIGIN)
                pending = {c.line for c in verify(planned, load_states, policy).checks if c.status != "applied"}
                for record in planned.records:
                    if record.line not in pending:
                        result.known += 1
                    elif store_once(record.message, ports).duplicate:
                        result.already_admitted += 1
                    else:
                        result.missed += 1
                for rejected in planned.rejected:
                    result.unusable += 1
                    if rejected.message is not None:
                        store_once(rejected.message, ports)
            if page:
                # a record dated ahead of now (a platform's clock, a bad date) is handed over, but the
                # watermark stops at now: the next run asks again from there, not from the record's future
                newest = min(max(p.changed_at for p in page), now)
                if result.watermark is None or newest > result.watermark:
                    result.watermark = newest
                watermarks.save(job.source, job.tenant, result.watermark, result.as_dict())
            if result.pages >= job.max_pages or seconds_left() < reserve_seconds:
                result.more = True
                break
    except Throttled:
        result.more = result.throttled = True
    if result.pages == 0 and result.watermark is not None:  # nothing changed since: the run is still recorded
        watermarks.save(job.source, job.tenant, result.watermark, result.as_dict())
    return result
