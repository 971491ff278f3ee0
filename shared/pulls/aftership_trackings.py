"""AfterShip: the trackings an account's parcels changed since a time, oldest change first, for
reconciliation.

``GET https://api.aftership.com/tracking/2024-04/trackings?updated_at_min=…&updated_at_max=…&limit=200
&cursor=…`` with the API key in ``as-api-key``. The answer is ``{"meta": {"code"}, "data": {"pagination":
{"total", "has_next_page", "next_cursor"}, "trackings": [...]}}``; a tracking is the same object as the
``tracking_update`` webhook's ``msg``, so each is handed over wrapped as one (``{"event":
"tracking_update", "msg": tracking}``) and the webhook's normaliser reads it unchanged.

The list is not ordered by update, so each window of update time is read whole and handed over oldest
change first (``shared/pulls/windows.py``); the first page's ``total`` says whether a window is too busy
before reading the rest. AfterShip allows 10 requests a second per account: a 429 stops the run, with
``Retry-After`` or the ``as-rate-limit-reset`` time kept; a 401 or 403 means the key was deleted or lacks
read access.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from shared.delivery.deliver import answered
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, iso_time
from shared.pulls.windows import by_windows

API = "https://api.aftership.com"
VERSION = "2024-04"
PAGE_SIZE = 200  # the list's largest ``limit``
TOPIC = "tracking_update"
REPEAT = "the next page's cursor repeats an earlier one (the list would never end)"


class HttpGet(Protocol):
    def get(self, url: str, headers: dict[str, str], timeout: float) -> Any: ...


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AfterShipTrackings:
    """The reconcile pager for one AfterShip account: ``credentials`` is the pull secret ``{"api_key"}``."""

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
            raise PullFailed("aftership: the pull secret needs api_key")
        self.job, self.http, self.clock, self.timeout, self.key = job, http, clock, timeout, key
        self.base = job.endpoint.rstrip("/")

    def url(self, start: datetime, end: datetime, cursor: str | None) -> str:
        query = {"updated_at_min": iso(start), "updated_at_max": iso(end), "limit": PAGE_SIZE}
        if cursor is not None:
            query["cursor"] = cursor
        return f"{self.base}/tracking/{VERSION}/trackings?{urlencode(query)}"

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        span = timedelta(minutes=self.job.window_minutes)
        return by_windows(since, self.clock(), span, self.job.max_pages * PAGE_SIZE, self.read, PAGE_SIZE)

    def read(self, start: datetime, end: datetime, most: int | None) -> list[Pulled] | None:
        """Every tracking updated in the window; None when the first page's total is over ``most``."""
        trackings, total, cursor = self._get(self.url(start, end, None))
        if most is not None and total > most:
            return None
        cursors: set[str] = set()
        while cursor is not None:
            if cursor in cursors:
                raise PullFailed(f"aftership: {REPEAT}")
            cursors.add(cursor)
            page, _, cursor = self._get(self.url(start, end, cursor))
            trackings += page
        return [self._pulled(t) for t in trackings]

    def _get(self, url: str) -> tuple[list[dict[str, Any]], int, str | None]:
        """One page: its trackings, the window's total, and the cursor of the next page (None: the last)."""
        response = self.http.get(url, {"as-api-key": self.key, "Accept": "application/json"}, self.timeout)
        if response.status == 429:
            raise Throttled("aftership: 429 rate limited", self._wait(response.headers or {}))
        if response.status in (401, 403):
            raise PullFailed(f"aftership {answered(response)}: the API key was deleted or cannot read trackings")
        if response.status != 200:
            raise PullFailed(f"aftership {answered(response)}")
        try:
            data = json.loads(response.text)["data"]
            trackings, pagination = data["trackings"], data.get("pagination") or {}
            if not isinstance(trackings, list) or not all(isinstance(t, dict) for t in trackings):
                raise TypeError("data.trackings is not a list of objects")
            cursor = pagination.get("next_cursor")
            more = bool(pagination.get("has_next_page")) and isinstance(cursor, str) and bool(cursor) and trackings
            return trackings, int(pagination.get("total") or len(trackings)), cursor if more else None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PullFailed(f"aftership: the trackings page is not usable ({type(exc).__name__})") from exc

    def _wait(self, headers: Mapping[str, str]) -> int | None:
        try:
            if headers.get("retry-after"):
                return int(float(headers["retry-after"]))
            if headers.get("as-rate-limit-reset"):  # the epoch second the limit resets
                return max(1, int(float(headers["as-rate-limit-reset"]) - self.clock().timestamp()))
        except (ValueError, OverflowError):  # junk, or "inf"
            pass
        return None

    @staticmethod
    def _pulled(tracking: dict[str, Any]) -> Pulled:
        try:
            changed = iso_time(tracking["updated_at"])
        except (KeyError, ValueError) as exc:
            raise PullFailed(f"aftership: a tracking without a usable updated_at ({type(exc).__name__})") from exc
        return Pulled.of(changed, {"event": TOPIC, "msg": tracking}, TOPIC)
