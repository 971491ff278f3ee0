"""Reconciliation logic on fakes: the Shopify pager (cursor links, the token's origin, junk), and a
run's bounds (pages, time, throttling) with its watermark kept page by page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.http import Response
from shared.intake.ingest import StorePorts
from shared.pulls.backfill import LoadStates
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled, run
from shared.pulls.shopify_admin import ShopifyOrders, next_link
from shared.state.policy import default_policy
from tests.fakes import FakeArchive, FakeOnce, FakeQueue, records

NOTHING: LoadStates = lambda keys: {}  # noqa: E731 - a state store that has nothing yet
JOB = ReconcileJob(source="shopify", tenant="demo", url="https://acme.myshopify.com")  # type: ignore[arg-type]
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class ScriptedHttp:
    def __init__(self, *responses: Response) -> None:
        self.responses = list(responses)
        self.calls: list[tuple[str, dict[str, str], str]] = []

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Response:
        self.calls.append((url, headers, "GET"))
        return self.responses.pop(0)


def page(*orders: dict[str, Any], link: str | None = None) -> Response:
    return Response(200, json.dumps({"orders": list(orders)}), {"link": link} if link else {})


def test_the_pager_follows_the_next_link_with_the_token_and_stops_at_the_last_page() -> None:
    a, b = records()[0], records()[1]
    nxt = "https://acme.myshopify.com/admin/api/2025-01/orders.json?limit=250&page_info=abc"
    http = ScriptedHttp(page(a, link=f'<{nxt}>; rel="next"'), page(b))
    pages = list(ShopifyOrders(JOB, "shpat_x", http).pages(NOW - timedelta(hours=1)))
    assert [[json.loads(p.text)["id"] for p in pg] for pg in pages] == [[a["id"]], [b["id"]]]
    assert pages[0][0].changed_at == datetime.fromisoformat(str(a["updated_at"]))
    first, second = http.calls
    assert first[0] == (
        "https://acme.myshopify.com/admin/api/2025-01/orders.json?status=any"
        "&updated_at_min=2026-11-23T07%3A00%3A00%2B00%3A00&order=updated_at+asc&limit=250"
    )
    assert (second[0], first[1]["X-Shopify-Access-Token"], first[2]) == (nxt, "shpat_x", "GET")


def test_an_order_s_refunds_and_tracked_fulfilments_are_handed_over_beside_it_as_their_webhooks() -> None:
    order = {
        **records()[0],
        "refunds": [{"id": 501, "order_id": records()[0]["id"], "created_at": "2026-11-23T07:30:00+00:00"}],
        "fulfillments": [
            {"id": 601, "order_id": records()[0]["id"], "tracking_number": "SF100", "tracking_company": "SF Express"},
            {"id": 602, "order_id": records()[0]["id"], "tracking_number": None, "tracking_numbers": []},  # pickup
        ],
    }
    [pulled] = list(ShopifyOrders(JOB, "t", ScriptedHttp(page(order))).pages(NOW))
    assert [(p.topic, json.loads(p.text)["id"]) for p in pulled] == [
        (None, order["id"]),
        ("refunds/create", 501),
        ("fulfillments/update", 601),
    ]
    assert {p.changed_at for p in pulled} == {datetime.fromisoformat(str(order["updated_at"]))}


def test_link_headers_are_read_for_next_only() -> None:
    prev = '<https://s/orders.json?page_info=p>; rel="previous"'
    assert next_link(prev) is None
    assert next_link(prev + ', <https://s/orders.json?page_info=n>; rel="next"') == "https://s/orders.json?page_info=n"


def test_a_next_link_to_another_origin_is_not_followed_with_the_token() -> None:
    http = ScriptedHttp(page(records()[0], link='<https://evil.example/steal>; rel="next"'))
    pages = ShopifyOrders(JOB, "shpat_x", http).pages(NOW)
    next(pages)
    with pytest.raises(PullFailed, match=r"leaves the shop \(evil.example\)"):
        next(pages)
    assert len(http.calls) == 1


@pytest.mark.parametrize(
    ("response", "error", "match"),
    [
        (Response(429, "slow down", {"retry-after": "2.0"}), Throttled, "429"),
        (Response(401, '{"errors":"[API] Invalid API key"}', {}), PullFailed, r"HTTP 401 \(a 34-byte body, not kept\)"),
        (Response(200, "<html>", {}), PullFailed, "not usable"),
        (Response(200, '{"orders": {}}', {}), PullFailed, r"not usable \(TypeError\)"),
        (
            Response(200, '{"orders": [{"id": 1, "updated_at": "2026-11-23T08:00:00"}]}', {}),
            PullFailed,
            r"\(ValueError\)",
        ),
        # the reason names the error's type, never the value that would not parse (it may be personal data)
        (Response(200, '{"orders": [{"id": 1, "updated_at": "李雷 13800138000"}]}', {}), PullFailed, r"^[^李]*$"),
    ],
)
def test_refusals_throttling_and_junk_are_told_apart(response: Response, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        next(ShopifyOrders(JOB, "t", ScriptedHttp(response)).pages(NOW))
    if error is Throttled:
        assert caught.value.retry_after == 2


class Pages:
    def __init__(self, pages: list[list[Pulled]], throttle_after: int | None = None) -> None:
        self.pages_, self.throttle_after = pages, throttle_after
        self.since: list[datetime] = []

    def pages(self, since: datetime) -> Iterator[list[Pulled]]:
        self.since.append(since)
        for n, p in enumerate(self.pages_):
            if self.throttle_after is not None and n >= self.throttle_after:
                raise Throttled("429")
            yield p


class Watermarks:
    def __init__(self, start: datetime | None = None) -> None:
        self.value = start
        self.saved: list[tuple[datetime, dict[str, int]]] = []

    def load(self, source: str, tenant: str) -> datetime | None:
        return self.value

    def save(self, source: str, tenant: str, newest: datetime, run: dict[str, int]) -> None:
        self.value = newest
        self.saved.append((newest, dict(run)))


def pulled(minutes_ago: int, order: dict[str, Any]) -> Pulled:
    at = NOW - timedelta(minutes=minutes_ago)
    return Pulled(at, json.dumps({**order, "updated_at": at.isoformat()}))


def ports() -> tuple[StorePorts, FakeQueue]:
    queue = FakeQueue()
    return StorePorts(archive=FakeArchive(), inbox=queue, once=FakeOnce()), queue


def test_a_run_stops_at_max_pages_and_keeps_its_watermark_page_by_page() -> None:
    a, b, c = records()[:3]
    source = Pages([[pulled(50, a)], [pulled(40, b)], [pulled(30, c)]])
    marks = Watermarks()
    store, queue = ports()
    job = JOB.model_copy(update={"max_pages": 2})
    result = run(job, source, marks, NOTHING, default_policy(), store, NOW)
    assert (result.pages, result.missed, result.more, result.throttled) == (2, 2, True, False)
    assert source.since == [NOW - timedelta(hours=24, minutes=10)]  # first run: lookback, then the overlap
    assert [m for m, _ in marks.saved] == [NOW - timedelta(minutes=50), NOW - timedelta(minutes=40)]
    assert marks.saved[-1][1] == {
        "pulled": 2,
        "known": 0,
        "missed": 2,
        "already_admitted": 0,
        "unusable": 0,
        "pages": 2,
    }
    assert len(queue.messages) == 2

    again = Pages([[pulled(40, b)], [pulled(30, c)]])
    result = run(JOB, again, marks, NOTHING, default_policy(), store, NOW)
    assert again.since == [NOW - timedelta(minutes=50)]  # the watermark, less the overlap
    # b was admitted by the first run and is not in the state yet: not admitted twice
    assert (result.missed, result.already_admitted, result.more) == (1, 1, False)


def test_time_running_out_or_throttling_ends_the_run_early_with_its_progress_kept() -> None:
    a, b = records()[:2]
    store, _ = ports()
    clock = iter([100.0, 5.0])  # seconds left after each page
    marks = Watermarks()
    result = run(
        JOB,
        Pages([[pulled(50, a)], [pulled(40, b)], [pulled(30, a)]]),
        marks,
        NOTHING,
        default_policy(),
        store,
        NOW,
        seconds_left=lambda: next(clock),
    )
    assert (result.pages, result.more, marks.value) == (2, True, NOW - timedelta(minutes=40))

    throttled = run(
        JOB,
        Pages([[pulled(20, a)], [pulled(10, b)]], throttle_after=1),
        marks,
        NOTHING,
        default_policy(),
        store,
        NOW,
    )
    assert (throttled.pages, throttled.throttled, throttled.more, marks.value) == (
        1,
        True,
        True,
        NOW - timedelta(minutes=20),
    )


def test_a_record_dated_in_the_future_is_handed_over_but_never_moves_the_watermark_past_now() -> None:
    # a platform's clock ahead, or a plugin writing a bad date: were the watermark to follow it to 2099,
    # every later run would ask from 2099 and find nothing again, silently
    a, b = records()[:2]
    store, queue = ports()
    marks = Watermarks(NOW - timedelta(hours=1))
    future = Pulled(datetime(2099, 1, 1, tzinfo=UTC), json.dumps({**b, "updated_at": "2099-01-01T00:00:00+00:00"}))
    result = run(JOB, Pages([[pulled(30, a), future]]), marks, NOTHING, default_policy(), store, NOW)
    assert (result.missed, len(queue.messages)) == (2, 2)
    assert marks.value == result.watermark == NOW
    later = Pages([[pulled(5, a)]])
    run(JOB, later, marks, NOTHING, default_policy(), store, NOW + timedelta(minutes=15))
    assert later.since == [NOW - timedelta(minutes=10)]
    stuck = Pages([])  # a watermark an earlier run had already saved in the future asks from now
    run(JOB, stuck, Watermarks(datetime(2099, 1, 1, tzinfo=UTC)), NOTHING, default_policy(), store, NOW)
    assert stuck.since == [NOW - timedelta(minutes=10)]


def test_a_record_that_does_not_normalise_is_admitted_for_quarantine_not_dropped() -> None:
    store, queue = ports()
    junk = Pulled(NOW, json.dumps({"id": 7, "updated_at": NOW.isoformat(), "line_items": "?"}))
    result = run(JOB, Pages([[junk]]), Watermarks(), NOTHING, default_policy(), store, NOW)
    assert (result.unusable, result.missed, len(queue.messages)) == (1, 0, 1)
    assert json.loads(queue.messages[0][0])["origin"] == "reconcile"


def test_the_pager_reads_every_page_of_the_fake_shop_over_real_http_get() -> None:
    from infra.sandbox.http_servers import FakeShop, serve
    from shared.adapters.http import SafeHttp

    shop = FakeShop("shpat_x", page_size=1)
    serve(shop.server)
    try:
        a, b = records()[:2]
        shop.put({**a, "updated_at": "2026-11-23T07:30:00+00:00"}, {**b, "updated_at": "2026-11-23T07:40:00+00:00"})
        job = JOB.model_copy(update={"url": shop.url})
        http = SafeHttp(allow_loopback=frozenset({shop.server.server_port}))  # the sandbox's allowance: the shop's port
        pages = list(ShopifyOrders(job, "shpat_x", http).pages(NOW - timedelta(hours=1)))
        assert [[json.loads(p.text)["id"] for p in pg] for pg in pages] == [[a["id"]], [b["id"]]]
        assert shop.requests == 2
        with pytest.raises(PullFailed, match="HTTP 401"):
            next(ShopifyOrders(job, "wrong", http).pages(NOW))
    finally:
        shop.server.shutdown()


def test_every_pulled_source_has_its_pager_and_each_names_what_its_secret_lacks() -> None:
    from typing import get_args

    from functions.reconcile.handler import PAGERS, make_pager

    assert set(PAGERS) == set(get_args(ReconcileJob.model_fields["source"].annotation))
    lacking = (
        ("shopify", '"access_token"'),
        ("woocommerce", "consumer_key"),
        ("taobao", "session"),
        ("stripe", "api_key"),
        ("zendesk", "email and api_token, or oauth_token"),
        ("aftership", "api_key"),
        ("amazon", r"lacks \['refresh_token', 'client_id', 'client_secret'\]"),
        ("douyin", r"lacks \['app_key', 'app_secret', 'shop_id'\]"),
        ("youzan", r"lacks \['client_id', 'client_secret', 'kdt_id'\]"),
    )
    assert {source for source, _ in lacking} == set(PAGERS)
    for source, lacks in lacking:
        extra = {"marketplace_ids": ["ATVPDKIKX0DER"]} if source == "amazon" else {}
        job = ReconcileJob.model_validate(
            {"source": source, "tenant": "demo", "url": "https://shop.example.com", **extra}
        )
        with pytest.raises(PullFailed, match=lacks):
            make_pager(source)(job, {"unrelated": "x"}, ScriptedHttp())  # type: ignore[arg-type]
