"""Zendesk: the tickets an account changed since a time, oldest change first, through the cursor-based
incremental ticket export, for reconciliation.

``GET https://<subdomain>.zendesk.com/api/v2/incremental/tickets/cursor.json?start_time=<unix>&per_page=…``
starts the export; every later page is ``?cursor=<after_cursor>`` until ``end_of_stream``. The export is
ordered by change time and the cursor is Zendesk's own position in it, so a ticket changed while we page
moves to the end and comes again (the compare drops the second copy), never skipped. Each ticket is the
REST API's ticket object, with the fields the webhook's ``detail`` carries (``id``, ``status``,
``priority``, ``assignee_id``, ``requester_id``, ``subject``, ``tags``, ``updated_at``); the Zendesk
normaliser reads it as the topic ``EXPORT_TOPIC``. Deleted tickets (status ``deleted``) are left out:
the hub keeps no deletions of tickets, by webhook or by pull.

Auth: an API token as ``Basic base64("<email>/token:<api_token>")`` or an OAuth token as a bearer, from
the pull secret ``{"email", "api_token"}`` or ``{"oauth_token"}``; HTTPS only. ``start_time`` must be at
least a minute in the past. The export's own rate limit is 10 requests a minute (30 with the High Volume
add-on): a 429 carries ``Retry-After``, and the run stops there (the watermark keeps its progress).
A 401 or 403 means the token was revoked or its agent cannot see the tickets.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, iso_time, retry_after
from shared.sources.zendesk import EXPORT_TOPIC

PER_PAGE = 1000  # the export's largest page
NEWEST_START = timedelta(minutes=1)  # Zendesk refuses a start_time less than a minute ago
REPEAT = "the next page's cursor repeats an earlier one (the list would never end)"


class HttpGet(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...


def authorization(credentials: Mapping[str, Any]) -> str:
    """The pull secret's header: an API token (with the agent's e-mail) or an OAuth token."""
    email, token, oauth = credentials.get("email"), credentials.get("api_token"), credentials.get("oauth_token")
    if isinstance(oauth, str) and oauth:
        return f"Bearer {oauth}"
    if isinstance(email, str) and email and isinstance(token, str) and token:
        return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()
    raise PullFailed("zendesk: the pull secret needs email and api_token, or oauth_token")


class ZendeskTickets:
    """The reconcile pager for one Zendesk account (the job's ``url`` is ``https://<subdomain>.zendesk.com``)."""

    def __init__(
        self,
        job: ReconcileJob,
        credentials: Mapping[str, Any],
        http: HttpGet,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 10.0,
    ) -> None:
        self.job, self.http, self.clock, self.timeout = job, http, clock, timeout
        self.authorization = authorization(credentials)
        self.base = job.endpoint.rstrip("/")

    def first_url(self, since: datetime) -> str:
        start = min(since, self.clock() - NEWEST_START)
        query = urlencode({"start_time": int(start.timestamp()), "per_page": PER_PAGE})
        return f"{self.base}/api/v2/incremental/tickets/cursor.json?{query}"

    def next_url(self, cursor: str) -> str:
        query = urlencode({"cursor": cursor, "per_page": PER_PAGE})
        return f"{self.base}/api/v2/incremental/tickets/cursor.json?{query}"

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        url, cursors = self.first_url(since), set[str]()
        while True:
            tickets, cursor, end = self._get(url)
            page = [self._pulled(t) for t in tickets if t.get("status") != "deleted"]
            if page:
                yield page
            if end or not cursor or not tickets:
                return
            if cursor in cursors:  # a page of deleted tickets only would be asked for again and again
                raise PullFailed(f"zendesk: {REPEAT}")
            cursors.add(cursor)
            url = self.next_url(cursor)

    def _get(self, url: str) -> tuple[list[dict[str, Any]], str | None, bool]:
        """One page: its tickets, the cursor after it, and whether it is the end of the stream."""
        response = self.http.get(url, {"Authorization": self.authorization, "Accept": "application/json"}, self.timeout)
        if response.status == 429:
            after = (response.headers or {}).get("retry-after")
            raise Throttled("zendesk: 429 rate limited (the export allows 10 requests a minute)", retry_after(after))
        if response.status in (401, 403):
            raise PullFailed(f"zendesk {answered(response)}: the token was revoked, or its agent cannot read tickets")
        if response.status != 200:
            raise PullFailed(f"zendesk {answered(response)}")
        try:
            document = json.loads(response.text)
            tickets = document["tickets"]
            if not isinstance(tickets, list) or not all(isinstance(t, dict) for t in tickets):
                raise TypeError("tickets is not a list of objects")
            cursor = document.get("after_cursor")
            return tickets, cursor if isinstance(cursor, str) and cursor else None, bool(document.get("end_of_stream"))
        except (ValueError, TypeError, KeyError) as exc:
            raise PullFailed(f"zendesk: the export page is not usable ({type(exc).__name__})") from exc

    @staticmethod
    def _pulled(ticket: dict[str, Any]) -> Pulled:
        try:
            changed = iso_time(ticket["updated_at"])
        except (KeyError, ValueError) as exc:
            raise PullFailed(f"zendesk: a ticket without a usable updated_at ({type(exc).__name__})") from exc
        return Pulled.of(changed, ticket, EXPORT_TOPIC)
