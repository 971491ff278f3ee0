"""Stripe: the refund events an account had since a time, oldest first, for reconciliation.

``GET https://api.stripe.com/v1/events?types[]=charge.refunded&types[]=refund.created&…
&created[gte]=…&created[lt]=…&limit=100&starting_after=evt_…`` with the secret key as a bearer token (a
restricted key with *Events: read* is enough, and is what the pull secret should hold). Events rather
than the refund and charge lists, for three reasons:

- an event is exactly what the webhook would have delivered (the same ``id``, ``type`` and object), so
  the webhook's normaliser reads it unchanged and a pulled event and its webhook are one delivery;
- the event list is by ``created`` and carries every change (a refund going from ``pending`` to
  ``succeeded`` is a new ``refund.updated``), where ``GET /v1/refunds?created[gte]=…`` lists a refund
  once, by its creation, and would miss the status changes reconciliation is for;
- one list covers refunds and refunded charges alike.

Stripe keeps events for 30 days: a pull never asks further back (history beyond that is a backfill of
an export). Lists come newest first with ``has_more``, and ``starting_after`` the last id goes older.
Events are immutable and new ones are added at the newest end, so paging a window with
``starting_after`` never skips one; each window is read whole and handed over oldest first
(``shared/pulls/windows.py``). A 429 is Stripe's rate limiter (``Retry-After`` kept when given); a 401 is
a revoked or mistyped key, a 403 a restricted key without *Events: read*.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, retry_after
from shared.pulls.windows import by_windows
from shared.sources.stripe import TOPICS

API = "https://api.stripe.com"
PAGE_SIZE = 100  # the list's largest ``limit``
RETENTION = timedelta(days=30)  # how long Stripe keeps events
REPEAT = "the next page's cursor repeats an earlier one (the list would never end)"


class HttpGet(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...


class StripeEvents:
    """The reconcile pager for one account: ``credentials`` is the pull secret ``{"api_key"}`` (a
    restricted key ``rk_…`` with Events: read, or the secret key)."""

    def __init__(
        self,
        job: ReconcileJob,
        credentials: Mapping[str, Any],
        http: HttpGet,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        key = credentials.get("api_key")
        if not isinstance(key, str) or not key:
            raise PullFailed("stripe: the pull secret needs api_key (a restricted key with Events: read)")
        self.job, self.http, self.clock, self.timeout = job, http, clock, timeout
        self.base = job.endpoint.rstrip("/")
        self.authorization = f"Bearer {key}"

    def url(self, start: datetime, end: datetime, after: str | None) -> str:
        query: list[tuple[str, str]] = [("types[]", t) for t in sorted(TOPICS)]
        query += [
            ("created[gte]", str(int(start.timestamp()))),
            ("created[lt]", str(int(end.timestamp()))),
            ("limit", str(PAGE_SIZE)),
        ]
        if after is not None:
            query.append(("starting_after", after))
        return f"{self.base}/v1/events?{urlencode(query)}"

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        now = self.clock()
        oldest = now - RETENTION + timedelta(minutes=5)  # Stripe answers nothing older; keep clear of the edge
        span = timedelta(minutes=self.job.window_minutes)
        return by_windows(max(since, oldest), now, span, self.job.max_pages * PAGE_SIZE, self.read, PAGE_SIZE)

    def read(self, start: datetime, end: datetime, most: int | None) -> list[Pulled] | None:
        """Every refund event created in [start, end), newest first as Stripe lists them; None when there
        are more than ``most``."""
        events: list[dict[str, Any]] = []
        after: str | None = None
        asked: set[str] = set()
        while True:
            page, more = self._get(self.url(start, end, after))
            events += page
            if most is not None and len(events) > most:
                return None
            if not more or not page:
                return [self._pulled(e) for e in events]
            after = str(page[-1]["id"])
            if after in asked:  # a page seen before: starting_after would not move on
                raise PullFailed(f"stripe: {REPEAT}")
            asked.add(after)

    def _get(self, url: str) -> tuple[list[dict[str, Any]], bool]:
        """One page of events, and whether there are more (older ones)."""
        # no Stripe-Version: an event keeps the API version it was created with, as its webhook had it
        response = self.http.get(url, {"Authorization": self.authorization}, self.timeout)
        if response.status == 429:
            after = (response.headers or {}).get("retry-after")
            raise Throttled("stripe: 429 rate limited", retry_after(after))
        if response.status == 401:
            raise PullFailed(f"stripe {answered(response)}: the API key was revoked or is not a key")
        if response.status == 403:
            raise PullFailed(f"stripe {answered(response)}: the restricted key lacks Events: read")
        if response.status != 200:
            raise PullFailed(f"stripe {answered(response)}")
        try:
            document = json.loads(response.text)
            events = document["data"]
            if not isinstance(events, list) or not all(isinstance(e, dict) and "id" in e for e in events):
                raise TypeError("data is not a list of events")
            return events, bool(document.get("has_more"))
        except (ValueError, TypeError, KeyError) as exc:
            raise PullFailed(f"stripe: the events page is not usable ({type(exc).__name__})") from exc

    @staticmethod
    def _pulled(event: dict[str, Any]) -> Pulled:
        try:
            created = datetime.fromtimestamp(int(event["created"]), UTC)
            topic = str(event["type"])
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise PullFailed(f"stripe: an event without a usable created or type ({type(exc).__name__})") from exc
        return Pulled.of(created, event, topic)
