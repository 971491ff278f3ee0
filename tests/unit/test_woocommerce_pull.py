"""The WooCommerce pager (shared/pulls/woocommerce_rest.py) against the fake REST API (infra/sandbox/
fake_woo.py): pages by key, not by number, so an order modified while we page is not skipped."""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra.sandbox.fake_woo import FakeWoo
from infra.sandbox.samples import load_sample
from shared.pulls.reconcile import PullFailed, ReconcileJob, Throttled
from shared.pulls.woocommerce_rest import PER_PAGE, WooCommerceOrders

CREDENTIALS = {"consumer_key": "ck_sandbox", "consumer_secret": "cs_sandbox"}
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
ORDER = load_sample("woocommerce_order_refunded")["body"]


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]


class InProcess:
    def __init__(self, woo: FakeWoo) -> None:
        self.woo, self.urls = woo, []

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Answer:
        self.urls.append(url)
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "shop.example.com", "/wp-json/wc/v3/orders")
        if headers.get("Authorization") != self.woo.authorization:
            return Answer(401, json.dumps({"code": "woocommerce_rest_cannot_view"}), {})
        if self.woo.status is not None:
            return Answer(self.woo.status, "{}", {"retry-after": "2"} if self.woo.status == 429 else {})
        query = {k: v for k, v in (p.split("=", 1) for p in parts.query.split("&"))}
        query["modified_after"] = query["modified_after"].replace("%3A", ":")
        status, body, answer_headers = self.woo.page(query)
        return Answer(status, json.dumps(body), {k.lower(): v for k, v in answer_headers.items()})


def order(order_id: int, at: datetime, **extra: Any) -> dict[str, Any]:
    return {**copy.deepcopy(ORDER), "id": order_id, "date_modified_gmt": at.strftime("%Y-%m-%dT%H:%M:%S"), **extra}


def pager(woo: FakeWoo, credentials: dict[str, str] = CREDENTIALS) -> tuple[WooCommerceOrders, InProcess]:
    job = ReconcileJob.model_validate({"source": "woocommerce", "tenant": "demo", "url": "https://shop.example.com"})
    http = InProcess(woo)
    return WooCommerceOrders(job, credentials, http), http


def ids(pages: list[list[Any]]) -> list[int]:
    return [json.loads(p.text)["id"] for page in pages for p in page]


def test_orders_come_oldest_change_first_keyed_by_the_newest_change_got() -> None:
    woo = FakeWoo(**CREDENTIALS)
    woo.put(*(order(1000 + n, T0 + timedelta(seconds=10 * n)) for n in range(250)))
    changes, http = pager(woo)
    pages = list(changes.pages(T0 - timedelta(minutes=1)))
    assert ids(pages) == list(range(1000, 1250))  # each once, oldest first
    assert [len(p) for p in pages] == [100, 99, 51]  # each page after the first re-reads its newest second
    # page 1 each time, from one second before the newest change the last page had
    assert woo.requests == [
        ("2026-11-21T09:58:59", 1),
        ("2026-11-21T10:16:29", 1),
        ("2026-11-21T10:32:59", 1),
    ]
    assert http.urls[0].endswith("dates_are_gmt=true&orderby=modified&order=asc&per_page=100&page=1")
    assert pages[0][0].changed_at == T0


def test_an_order_modified_while_we_page_is_not_skipped_and_comes_again_with_its_change() -> None:
    woo = FakeWoo(**CREDENTIALS)
    woo.put(*(order(2000 + n, T0 + timedelta(seconds=10 * n)) for n in range(150)))

    def store_edits(page: int) -> None:
        if len(woo.requests) == 2:  # after our first page: the store edits an order we already got
            woo.put(order(2005, T0 + timedelta(hours=1), status="completed"))

    woo.before_page = store_edits
    changes, _ = pager(woo)
    got = ids(list(changes.pages(T0 - timedelta(minutes=1))))
    assert sorted(set(got)) == list(range(2000, 2150))  # with page numbers, 2100 would have been skipped
    assert got.count(2005) == 2 and got[-1] == 2005  # its new version, at the end


def test_a_bulk_edit_of_one_second_is_followed_page_by_page() -> None:
    woo = FakeWoo(**CREDENTIALS)
    woo.put(*(order(3000 + n, T0) for n in range(PER_PAGE + 30)))  # 130 orders in one second
    changes, _ = pager(woo)
    assert sorted(ids(list(changes.pages(T0 - timedelta(minutes=1))))) == list(range(3000, 3130))
    assert woo.requests == [("2026-11-21T09:58:59", 1), ("2026-11-21T09:59:59", 1), ("2026-11-21T09:59:59", 2)]


def test_an_empty_list_yields_nothing() -> None:
    changes, _ = pager(FakeWoo(**CREDENTIALS))
    assert list(changes.pages(T0)) == []


def test_a_429_is_throttling_and_a_revoked_key_fails_without_the_key() -> None:
    woo = FakeWoo(**CREDENTIALS)
    woo.put(order(1, T0))
    woo.status = 429
    changes, _ = pager(woo)
    with pytest.raises(Throttled) as throttled:
        list(changes.pages(T0 - timedelta(minutes=1)))
    assert throttled.value.retry_after == 2
    woo.status = None
    changes, _ = pager(woo, {"consumer_key": "ck_revoked", "consumer_secret": "cs_revoked"})
    with pytest.raises(PullFailed, match=r"answered HTTP 401 .*revoked or cannot read orders") as failure:
        list(changes.pages(T0 - timedelta(minutes=1)))
    assert "cs_revoked" not in str(failure.value)
    assert base64.b64encode(b"ck_revoked:cs_revoked").decode() not in str(failure.value)


def test_a_job_needs_a_url_and_a_key() -> None:
    with pytest.raises(ValueError, match="a woocommerce job needs the shop's or account's url"):
        ReconcileJob.model_validate({"source": "woocommerce", "tenant": "demo"})
    job = ReconcileJob.model_validate({"source": "woocommerce", "tenant": "demo", "url": "https://shop.example.com"})
    with pytest.raises(PullFailed, match="consumer_key and consumer_secret"):
        WooCommerceOrders(job, {"consumer_key": "ck"}, InProcess(FakeWoo(**CREDENTIALS)))


def test_an_order_whose_modification_time_is_not_a_time_fails_naming_the_field_not_its_value() -> None:
    woo = FakeWoo(**CREDENTIALS)
    woo.put(order(1, T0, date_modified_gmt="z Lei Li 13800138000"))  # sorts after any time: listed
    changes, _ = pager(woo)
    with pytest.raises(PullFailed, match=r"an order without a usable date_modified_gmt \(ValueError\)") as failure:
        list(changes.pages(T0 - timedelta(minutes=1)))
    assert "13800138000" not in str(failure.value)


def test_an_order_modified_in_the_very_second_asked_from_is_handed_over() -> None:
    # the pager's contract is "changed at or after since"; modified_after is exclusive, so the pager asks
    # from the second before (a run with overlap_minutes 0 starts at the watermark: its second's other
    # orders, cut off by max_pages, must come next run)
    woo = FakeWoo(**CREDENTIALS)
    woo.put(order(1, T0 - timedelta(seconds=1)), order(2, T0), order(3, T0 + timedelta(seconds=1)))
    changes, _ = pager(woo)
    assert ids(list(changes.pages(T0))) == [2, 3]
    assert woo.requests[-1] == ("2026-11-21T09:59:59", 1)


def test_a_429_whose_retry_after_is_not_a_number_is_still_throttling() -> None:
    class NotANumber(InProcess):
        def get(self, url: str, headers: dict[str, str], timeout: float) -> Answer:
            return Answer(429, "{}", {"retry-after": "Thu, 03 Dec 2026 21:30:00 GMT"})

    job = ReconcileJob.model_validate({"source": "woocommerce", "tenant": "demo", "url": "https://shop.example.com"})
    with pytest.raises(Throttled) as throttled:
        list(WooCommerceOrders(job, CREDENTIALS, NotANumber(FakeWoo(**CREDENTIALS))).pages(T0))
    assert throttled.value.retry_after is None


def test_a_next_page_answering_the_same_orders_fails_the_pull_instead_of_looping() -> None:
    page = [order(1000 + n, T0) for n in range(PER_PAGE)]  # one second: followed by page number

    class SamePage(InProcess):
        def get(self, url: str, headers: dict[str, str], timeout: float) -> Answer:
            self.urls.append(url)
            assert len(self.urls) <= 20, "the pager keeps asking for the same page"
            return Answer(200, json.dumps(page), {})

    job = ReconcileJob.model_validate({"source": "woocommerce", "tenant": "demo", "url": "https://shop.example.com"})
    http = SamePage(FakeWoo(**CREDENTIALS))
    pages = WooCommerceOrders(job, CREDENTIALS, http).pages(T0 - timedelta(minutes=1))
    assert len(next(pages)) == PER_PAGE
    with pytest.raises(PullFailed, match=r"^woocommerce: the next page answered the same orders"):
        next(pages)
    assert len(http.urls) == 3  # page 1, page 1 from the newest second (the same orders, rightly), page 2
