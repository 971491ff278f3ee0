"""Paging a list that comes newest first (or in no useful order) oldest change first, by time windows.

The reconcile run moves its watermark to the newest change a page handed over, so pages must come
oldest change first: a run cut short must never have passed a change it did not hand over. Stripe's
event list, TOP's incremental APIs and AfterShip's tracking list give their records newest first or by
creation, so their pagers read a window of change time whole (every page of it), sort it, and hand it
over in pages, oldest first, before the next window:

- a window that holds more than a run's worth of records is halved (down to a minute, or the
  ``smallest`` a platform's bounds allow) and read again, so one run's ``max_pages`` still moves the
  watermark (and a list that refuses to go deep, as Youzan's, is read in windows it can list whole);
- the windows are [start, end) at whole seconds, but a platform's bounds may include both ends (TOP's
  do), so a record the last window handed over is not handed over again;
- the last window ends at ``now``: a change made later comes with the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from shared.pulls.reconcile import Pulled

SMALLEST = timedelta(minutes=1)

# (start, end, most) -> the window's records, or None when it holds more than ``most`` (None: read it all)
ReadWindow = Callable[[datetime, datetime, int | None], list[Pulled] | None]


def by_windows(
    since: datetime,
    now: datetime,
    span: timedelta,
    most: int,
    read: ReadWindow,
    page_size: int,
    smallest: timedelta = SMALLEST,
) -> Iterator[list[Pulled]]:
    """The records changed in [since, now), a window of ``span`` at a time (halved while a window holds
    more than ``most``, down to ``smallest``, which is read whole), each window's oldest change first,
    ``page_size`` to a page."""
    start = since.replace(microsecond=0)
    width = span
    before: set[Pulled] = set()
    while start < now:
        end = min(start + width, now)
        records = read(start, end, most if end - start > smallest else None)
        if records is None:
            # too busy: ask for less at a time (whole seconds, as the platforms' bounds are)
            width = max(timedelta(seconds=(end - start).total_seconds() // 2), smallest)
            continue
        # a record read twice (two pages, or the window before shares its bound) is handed over once
        fresh = sorted((p for p in dict.fromkeys(records) if p not in before), key=lambda p: p.changed_at)
        before = set(fresh)
        for i in range(0, len(fresh), page_size):
            yield fresh[i : i + page_size]
        start, width = end, span
