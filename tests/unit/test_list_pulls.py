"""The Stripe, Zendesk, AfterShip, Amazon SP-API, Douyin shop and Youzan pagers (shared/pulls/) against
their platforms' fakes (infra/sandbox/fake_lists.py), called through the fakes' in-process clients:
real-shaped pages, the last page and an empty one, a record changed while we page, throttling and refused
credentials; and each pulled record read by its source's webhook normaliser as the webhook's record is."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest

from infra.sandbox.fake_lists import FakeAfterShip, FakeAmazon, FakeDouyin, FakeStripe, FakeYouzan, FakeZendesk
from infra.sandbox.samples import load_sample
from shared.intake.ingest import inbox_message
from shared.pulls.aftership_trackings import AfterShipTrackings
from shared.pulls.amazon_orders import AmazonOrders
from shared.pulls.douyin_orders import DouyinOrders
from shared.pulls.reconcile import Pulled, PullFailed, ReconcileJob, Throttled
from shared.pulls.stripe_events import StripeEvents
from shared.pulls.youzan_cloud import YouzanChanges
from shared.pulls.zendesk_export import ZendeskTickets
from shared.sources import NORMALISERS, get_source
from shared.sources.base import Delivery

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
STRIPE_KEY = "rk_test_sandbox"
ZENDESK = {"email": "ops@example.com", "api_token": "zd-token"}
AFTERSHIP_KEY = "as-key"


def job(source: str, **extra: Any) -> ReconcileJob:
    return ReconcileJob.model_validate({"source": source, "tenant": "demo", **extra})


def drain(pages: Any) -> list[list[Pulled]]:
    return [list(p) for p in pages]


def normalised(source: str, pulled: Pulled) -> list[Any]:
    delivery = Delivery(source_event_id="pulled", topic=pulled.topic or "")
    message = inbox_message(source, "demo", delivery, NOW, {}, pulled.text.encode(), origin="reconcile")
    return NORMALISERS[source].normalise(message, json.loads(pulled.text))


# --- Stripe ---------------------------------------------------------------------------------------


def event(n: int, at: datetime, kind: str = "refund.updated") -> dict[str, Any]:
    body = copy.deepcopy(load_sample("stripe_refund_updated")["body"])
    body.update(id=f"evt_{n:05d}", type=kind, created=int(at.timestamp()))
    body["data"]["object"]["id"] = f"re_{n:05d}"
    return body


def stripe(fake: FakeStripe, **extra: Any) -> StripeEvents:
    return StripeEvents(job("stripe", **extra), {"api_key": STRIPE_KEY}, fake, clock=lambda: NOW)


def test_stripe_events_come_oldest_first_a_window_at_a_time_each_once() -> None:
    fake = FakeStripe(STRIPE_KEY)
    fake.put(*(event(n, NOW - timedelta(minutes=150) + timedelta(seconds=20 * n)) for n in range(250)))
    fake.put(event(999, NOW - timedelta(minutes=100), kind="customer.updated"))  # not a refund: not asked for
    pages = drain(stripe(fake).pages(NOW - timedelta(minutes=160)))
    ids = [json.loads(p.text)["id"] for page in pages for p in page]
    assert ids == [f"evt_{n:05d}" for n in range(250)]
    # windows of 60 minutes: 150 events (two pages of Stripe's, oldest last), 100, none
    assert [len(p) for p in pages] == [100, 50, 100]
    assert pages[0][0].topic == "refund.updated" and pages[0][0].changed_at == NOW - timedelta(minutes=150)
    first = fake.requests[0]
    assert first["types[]"] == ["charge.refunded", "refund.created", "refund.failed", "refund.updated"]
    assert first["created[gte]"] == [str(int((NOW - timedelta(minutes=160)).timestamp()))]
    assert first["created[lt]"] == [str(int((NOW - timedelta(minutes=100)).timestamp()))] and first["limit"] == ["100"]
    # the first window's second page starts after the first page's last (oldest) event
    assert [r.get("starting_after") for r in fake.requests] == [None, ["evt_00050"], None, None]


def test_a_stripe_window_with_more_than_a_run_holds_is_halved() -> None:
    fake = FakeStripe(STRIPE_KEY)
    fake.put(*(event(n, NOW - timedelta(minutes=59, seconds=-n)) for n in range(150)))  # 150 in 2.5 minutes
    pages = drain(stripe(fake, max_pages=1).pages(NOW - timedelta(minutes=60)))
    # windows of 3600 → 1800 → 900 → 450 → 225 → 112 s: the last holds ≤ 100 (52), then the rest of the hour
    assert [len(p) for p in pages] == [52, 98]
    assert [json.loads(p.text)["id"] for page in pages for p in page] == [f"evt_{n:05d}" for n in range(150)]


def test_stripe_asks_no_further_back_than_its_30_days_of_events() -> None:
    fake = FakeStripe(STRIPE_KEY)
    assert drain(stripe(fake, window_minutes=1440).pages(NOW - timedelta(days=90))) == []  # nothing: an empty list
    assert int(fake.requests[0]["created[gte]"][0]) == int((NOW - timedelta(days=30, minutes=-5)).timestamp())
    assert len(fake.requests) == 30  # a day a call, and no page after an empty one


def test_stripe_throttling_and_refused_keys() -> None:
    fake = FakeStripe(STRIPE_KEY)
    fake.put(event(1, NOW - timedelta(minutes=5)))
    fake.status = 429
    with pytest.raises(Throttled) as throttled:
        drain(stripe(fake).pages(NOW - timedelta(minutes=10)))
    assert throttled.value.retry_after == 2
    fake.status = None
    with pytest.raises(PullFailed, match=r"answered HTTP 401 .*the API key was revoked") as refused:
        drain(
            StripeEvents(job("stripe"), {"api_key": "rk_test_revoked"}, fake, clock=lambda: NOW).pages(
                NOW - timedelta(minutes=10)
            )
        )
    assert "rk_test" not in str(refused.value)
    with pytest.raises(PullFailed, match="needs api_key"):
        StripeEvents(job("stripe"), {"secret": STRIPE_KEY}, fake)


def test_a_pulled_stripe_event_normalises_as_its_webhook_did() -> None:
    sample = load_sample("stripe_refund_updated")["body"]
    pulled = Pulled(datetime.fromtimestamp(sample["created"], UTC), json.dumps(sample), sample["type"])
    [case] = normalised("stripe", pulled)
    assert (case.entity_id, case.entity.status) == (f"stripe:{sample['data']['object']['id']}", "refunded")


# --- Zendesk --------------------------------------------------------------------------------------


def ticket(n: int, at: datetime, status: str = "open") -> dict[str, Any]:
    return {
        "url": f"https://acme.zendesk.com/api/v2/tickets/{n}.json",
        "id": n,
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "type": "problem",
        "subject": f"Repair {n}",
        "priority": "high",
        "status": status,
        "requester_id": 1512863381522,
        "assignee_id": 1512863381481,
        "tags": ["repair", "warranty"],
        "generated_timestamp": int(at.timestamp()),
    }


def zendesk(fake: FakeZendesk) -> ZendeskTickets:
    return ZendeskTickets(job("zendesk", url="https://acme.zendesk.com"), ZENDESK, fake, clock=lambda: NOW)


def test_zendesk_pages_by_the_export_cursor_to_the_end_of_the_stream() -> None:
    fake = FakeZendesk(**ZENDESK, clock=lambda: NOW)
    fake.put(*(ticket(5000 + n, NOW - timedelta(hours=3) + timedelta(seconds=5 * n)) for n in range(2100)))
    fake.put(ticket(9999, NOW - timedelta(hours=2), status="deleted"))
    pages = drain(zendesk(fake).pages(NOW - timedelta(hours=4)))
    assert [len(p) for p in pages] == [999, 1000, 101]  # the deleted one (on the first page) is left out
    assert [json.loads(p.text)["id"] for page in pages for p in page] == list(range(5000, 7100))
    assert fake.requests[0] == {"start_time": [str(int((NOW - timedelta(hours=4)).timestamp()))], "per_page": ["1000"]}
    assert set(fake.requests[1]) == {"cursor", "per_page"} and len(fake.requests) == 3
    assert pages[0][0].topic == "api:ticket"


def test_a_ticket_changed_while_the_export_pages_comes_again_at_the_end_not_skipped() -> None:
    fake = FakeZendesk(**ZENDESK, clock=lambda: NOW)
    fake.put(*(ticket(n, NOW - timedelta(hours=1, seconds=-n)) for n in range(1, 1501)))

    def edit(call: int) -> None:
        if call == 2:  # between the pages: ticket 3 (handed over already) and 1200 (not yet) change
            fake.put(ticket(3, NOW - timedelta(seconds=90), status="solved"))
            fake.put(ticket(1200, NOW - timedelta(seconds=80), status="pending"))

    fake.before_page = edit
    ids = [json.loads(p.text)["id"] for page in drain(zendesk(fake).pages(NOW - timedelta(hours=2))) for p in page]
    assert ids == [*range(1, 1001), *(n for n in range(1001, 1501) if n != 1200), 3, 1200]


def test_zendesk_start_time_is_at_least_a_minute_back_and_an_empty_export_is_no_page() -> None:
    fake = FakeZendesk(**ZENDESK, clock=lambda: NOW)
    assert drain(zendesk(fake).pages(NOW - timedelta(seconds=10))) == []
    assert fake.requests == [{"start_time": [str(int((NOW - timedelta(minutes=1)).timestamp()))], "per_page": ["1000"]}]


def test_zendesk_throttling_refused_tokens_and_oauth() -> None:
    fake = FakeZendesk(**ZENDESK, clock=lambda: NOW)
    fake.status = 429
    with pytest.raises(Throttled, match="10 requests a minute") as throttled:
        drain(zendesk(fake).pages(NOW - timedelta(hours=1)))
    assert throttled.value.retry_after == 2
    fake.status = None
    other = ZendeskTickets(
        job("zendesk", url="https://acme.zendesk.com"), {"oauth_token": "t"}, fake, clock=lambda: NOW
    )
    assert other.authorization == "Bearer t"
    with pytest.raises(PullFailed, match=r"answered HTTP 401 .*token was revoked"):
        drain(other.pages(NOW - timedelta(hours=1)))
    with pytest.raises(PullFailed, match="email and api_token, or oauth_token"):
        ZendeskTickets(job("zendesk", url="https://acme.zendesk.com"), {"email": "ops@example.com"}, fake)
    with pytest.raises(ValueError, match="needs the shop's or account's url"):
        job("zendesk")


def test_a_pulled_ticket_normalises_to_the_ticket_its_webhook_gives() -> None:
    webhook = load_sample("zendesk_ticket_status_changed")["body"]
    detail = webhook["detail"]
    api = ticket(int(detail["id"]), datetime.fromisoformat(detail["updated_at"].replace("Z", "+00:00")))
    api.update(subject=detail["subject"], requester_id=int(detail["requester_id"]))
    api.update(assignee_id=int(detail["assignee_id"]))
    [pulled] = normalised("zendesk", Pulled(NOW, json.dumps(api), "api:ticket"))
    source = get_source("zendesk", frozenset({"zendesk"}))
    message = inbox_message("zendesk", "demo", Delivery("x", webhook["type"]), NOW, {}, b"{}", origin="webhook")
    [pushed] = source.normalise(message, webhook)
    assert (pulled.entity_id, pulled.entity, pulled.occurred_at) == (
        pushed.entity_id,
        pushed.entity,
        pushed.occurred_at,
    )


# --- AfterShip ------------------------------------------------------------------------------------


def tracking(n: int, updated: datetime, tag: str = "InTransit") -> dict[str, Any]:
    body = copy.deepcopy(load_sample("aftership_tracking_update")["body"]["msg"])
    body.update(
        id=f"trk{n:05d}",
        tracking_number=f"SF{n:010d}",
        tag=tag,
        created_at=(NOW - timedelta(days=2, seconds=-n)).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        updated_at=updated.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
    )
    return body


def aftership(fake: FakeAfterShip, **extra: Any) -> AfterShipTrackings:
    return AfterShipTrackings(job("aftership", **extra), {"api_key": AFTERSHIP_KEY}, fake, clock=lambda: NOW)


def test_aftership_trackings_are_read_a_window_whole_and_handed_over_oldest_update_first() -> None:
    fake = FakeAfterShip(AFTERSHIP_KEY)
    # created in one order, updated in the reverse: the list's order is not the one wanted
    fake.put(*(tracking(n, NOW - timedelta(minutes=1, seconds=10 * n)) for n in range(450)))
    pages = drain(aftership(fake).pages(NOW - timedelta(hours=2)))
    numbers = [json.loads(p.text)["msg"]["tracking_number"] for page in pages for p in page]
    assert numbers == [f"SF{n:010d}" for n in reversed(range(450))]
    # the first hour's 96, then the second's 354 (the one on the bound both include is handed over once)
    assert [len(p) for p in pages] == [96, 200, 154]
    assert {p.topic for page in pages for p in page} == {"tracking_update"}
    first = fake.requests[0]
    assert first == {
        "updated_at_min": ["2026-11-21T10:00:00Z"],
        "updated_at_max": ["2026-11-21T11:00:00Z"],
        "limit": ["200"],
    }
    assert ["cursor" in r for r in fake.requests] == [False, False, True]


def test_aftership_halves_a_window_its_first_page_says_is_too_busy() -> None:
    fake = FakeAfterShip(AFTERSHIP_KEY)
    fake.put(*(tracking(n, NOW - timedelta(minutes=30, seconds=n)) for n in range(250)))  # 250 in 4 minutes
    pages = drain(aftership(fake, max_pages=1).pages(NOW - timedelta(minutes=60)))
    assert sum(len(p) for p in pages) == 250 and all(len(p) <= 200 for p in pages)
    windows = [(r["updated_at_min"][0], r["updated_at_max"][0]) for r in fake.requests if "cursor" not in r]
    assert windows[:2] == [
        ("2026-11-21T11:00:00Z", "2026-11-21T12:00:00Z"),
        ("2026-11-21T11:00:00Z", "2026-11-21T11:30:00Z"),
    ]


def test_aftership_throttling_says_when_the_limit_resets_and_a_bad_key_fails() -> None:
    fake = FakeAfterShip(AFTERSHIP_KEY)
    fake.status = 429
    fake.retry_headers = {"as-rate-limit-reset": str(int(NOW.timestamp()) + 7)}
    with pytest.raises(Throttled) as throttled:
        drain(aftership(fake).pages(NOW - timedelta(minutes=10)))
    assert throttled.value.retry_after == 7
    fake.status = None
    bad = AfterShipTrackings(job("aftership"), {"api_key": "wrong"}, fake, clock=lambda: NOW)
    with pytest.raises(PullFailed, match=r"answered HTTP 401 .*deleted or cannot read"):
        drain(bad.pages(NOW - timedelta(minutes=10)))


def test_a_pulled_tracking_normalises_as_the_webhook_s_msg() -> None:
    msg = load_sample("aftership_tracking_update")["body"]["msg"]
    [shipment] = normalised(
        "aftership", Pulled(NOW, json.dumps({"event": "tracking_update", "msg": msg}), "tracking_update")
    )
    assert (shipment.entity_id, shipment.entity.status) == ("sf-express:SF1410029637153", "out_for_delivery")


def test_the_fakes_answer_over_http_as_in_process() -> None:
    from infra.sandbox.http_servers import serve
    from shared.adapters.http import SafeHttp

    fake = FakeStripe(STRIPE_KEY)
    serve(fake.server)
    try:
        fake.put(event(1, NOW - timedelta(minutes=5)))
        http = SafeHttp(allow_loopback=(fake.server.server_port,))
        url = StripeEvents(job("stripe", url=fake.url), {"api_key": STRIPE_KEY}, http, clock=lambda: NOW).url(
            NOW - timedelta(minutes=10), NOW, None
        )
        over_http = http.get(url, {"Authorization": f"Bearer {STRIPE_KEY}"}, 5)
        in_process = fake.get(url, {"Authorization": f"Bearer {STRIPE_KEY}"}, 5)
        assert (over_http.status, json.loads(over_http.text)) == (in_process.status, json.loads(in_process.text))
        assert parse_qs(urlsplit(url).query)["limit"] == ["100"]
    finally:
        fake.server.shutdown()


# --- Amazon SP-API --------------------------------------------------------------------------------

LWA = {"refresh_token": "Atzr|refresh", "client_id": "amzn1.application-oa2-client.x", "client_secret": "lwa-secret"}


def amazon_order(
    n: int, updated: datetime, status: str = "Unshipped", marketplace: str = "ATVPDKIKX0DER"
) -> dict[str, Any]:
    return {
        "AmazonOrderId": f"114-0000000-{n:07d}",
        "PurchaseDate": (NOW - timedelta(days=3, seconds=-n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "LastUpdateDate": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "OrderStatus": status,
        "FulfillmentChannel": "MFN",
        "MarketplaceId": marketplace,
        "OrderTotal": {"CurrencyCode": "USD", "Amount": "89.00"},
    }


def amazon(fake: FakeAmazon, **extra: Any) -> AmazonOrders:
    spec = {"url": "https://sellingpartnerapi-na.amazon.com", "marketplace_ids": ["ATVPDKIKX0DER"], **extra}
    return AmazonOrders(job("amazon", **spec), LWA, fake, clock=lambda: NOW)


def test_amazon_asks_lwa_once_then_lists_each_window_whole_by_next_token_oldest_update_first() -> None:
    fake = FakeAmazon(**LWA, clock=lambda: NOW)
    # purchased in one order, updated in the reverse; one in another marketplace (not asked for)
    fake.put(*(amazon_order(n, NOW - timedelta(minutes=5, seconds=20 * n)) for n in range(230)))
    fake.put(amazon_order(999, NOW - timedelta(minutes=30), marketplace="A1PA6795UKMFR9"))
    pages = drain(amazon(fake).pages(NOW - timedelta(hours=2)))
    ids = [json.loads(p.text)["AmazonOrderId"] for page in pages for p in page]
    assert ids == [f"114-0000000-{n:07d}" for n in reversed(range(230))]
    assert len(fake.tokens) == 1 and {p.topic for page in pages for p in page} == {"api:order"}
    first = {k: v[0] for k, v in fake.requests[0].items()}
    assert first == {
        "MarketplaceIds": "ATVPDKIKX0DER",
        "LastUpdatedAfter": "2026-11-21T10:00:00Z",
        "LastUpdatedBefore": "2026-11-21T11:00:00Z",
        "MaxResultsPerPage": "100",
    }
    # the second hour ends three minutes short of now (Amazon's data lags; its bound must be 2 minutes back)
    assert fake.requests[1]["LastUpdatedBefore"] == ["2026-11-21T11:57:00Z"]
    # the second window's 166 (one on the bound both include) in two pages: the second by NextToken
    assert [sorted(r) for r in fake.requests[2:]] == [["MarketplaceIds", "NextToken"]]


def test_amazon_throttling_a_refused_grant_and_a_withdrawn_authorisation() -> None:
    fake = FakeAmazon(**LWA, clock=lambda: NOW)
    fake.status = 429
    with pytest.raises(Throttled, match="QuotaExceeded") as throttled:
        drain(amazon(fake).pages(NOW - timedelta(minutes=30)))
    assert throttled.value.retry_after == 60
    fake.status = None
    revoked = AmazonOrders(
        job("amazon", url="https://x.example", marketplace_ids=["ATVPDKIKX0DER"]),
        {**LWA, "refresh_token": "Atzr|revoked"},
        fake,
        clock=lambda: NOW,
    )
    with pytest.raises(
        PullFailed, match=r"refused the refresh token \(answered HTTP 400 .*authorise the app again"
    ) as refused:
        drain(revoked.pages(NOW - timedelta(minutes=30)))
    assert "Atzr" not in str(refused.value) and "lwa-secret" not in str(refused.value)
    withdrawn = amazon(fake)
    withdrawn._token = "Atza|not-issued"
    with pytest.raises(PullFailed, match=r"answered HTTP 403 .*withdrew the authorisation"):
        drain(withdrawn.pages(NOW - timedelta(minutes=30)))
    with pytest.raises(ValueError, match="needs marketplace_ids"):
        job("amazon", url="https://sellingpartnerapi-na.amazon.com")
    with pytest.raises(PullFailed, match="lacks \\['client_secret'\\]"):
        AmazonOrders(
            job("amazon", url="https://x.example", marketplace_ids=["ATVPDKIKX0DER"]),
            {**LWA, "client_secret": ""},
            fake,
        )


def test_a_listed_amazon_order_normalises_as_its_notification_s_order() -> None:
    sample = load_sample("amazon_order_change")["body"]
    change = sample["Payload"]["OrderChangeNotification"]
    listed = {
        "AmazonOrderId": change["AmazonOrderId"],
        "OrderStatus": change["Summary"]["OrderStatus"],
        "PurchaseDate": change["Summary"]["PurchaseDate"],
        "LastUpdateDate": change["OrderChangeTrigger"]["TimeOfOrderChange"],
        "MarketplaceId": change["Summary"]["MarketplaceId"],
    }
    [pulled] = normalised("amazon", Pulled(NOW, json.dumps(listed), "api:order"))
    source = NORMALISERS["amazon"]
    message = inbox_message("amazon", "demo", Delivery("n", "ORDER_CHANGE"), NOW, {}, b"{}", origin="webhook")
    pushed = source.normalise(message, sample)[0]  # (the notification also opens a cancel case)
    assert (pulled.entity_id, pulled.entity, pulled.occurred_at) == (
        pushed.entity_id,
        pushed.entity,
        pushed.occurred_at,
    )


# --- Douyin shop ----------------------------------------------------------------------------------

DOUDIAN = {"app_key": "7301234567890123456", "app_secret": "doudian-secret", "shop_id": "4463798"}


def douyin_order(n: int, updated: datetime, status: int = 2) -> dict[str, Any]:
    return {
        "order_id": f"69200000{n:011d}",
        "order_status": status,
        "pay_amount": 15900,
        "create_time": int((NOW - timedelta(days=1)).timestamp()),
        "update_time": int(updated.timestamp()),
        "shop_id": int(DOUDIAN["shop_id"]),
    }


def douyin(fake: FakeDouyin, **extra: Any) -> DouyinOrders:
    return DouyinOrders(job("douyin", **extra), DOUDIAN, fake, clock=lambda: NOW)


def test_a_doudian_request_is_signed_as_the_documented_algorithm_gives() -> None:
    for how in ("md5", "hmac-sha256"):
        url = douyin(FakeDouyin(**DOUDIAN), sign_method=how).url("order.searchList", {"size": 100, "page": 0}, "tok")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        # computed here from the documentation: secret + app_key… method… param_json… timestamp… v… + secret
        plain = (
            "doudian-secret"
            + "app_key7301234567890123456"
            + "methodorder.searchList"
            + 'param_json{"page":0,"size":100}'
            + "timestamp2026-11-21 20:00:00"
            + "v2"
            + "doudian-secret"
        )
        expected = (
            hashlib.md5(plain.encode()).hexdigest()  # noqa: S324
            if how == "md5"
            else hmac.new(b"doudian-secret", plain.encode(), hashlib.sha256).hexdigest()
        )
        assert urlsplit(url).path == "/order/searchList"
        assert query == {
            "app_key": "7301234567890123456",
            "method": "order.searchList",
            "param_json": '{"page":0,"size":100}',
            "timestamp": "2026-11-21 20:00:00",
            "v": "2",
            "sign_method": how,
            "sign": expected,
            "access_token": "tok",
        }


def test_douyin_asks_a_token_once_and_pages_by_key_so_an_order_changed_mid_paging_is_not_skipped() -> None:
    fake = FakeDouyin(**DOUDIAN, clock=lambda: NOW)
    fake.put(*(douyin_order(n, NOW - timedelta(hours=1) + timedelta(seconds=10 * n)) for n in range(250)))

    def edit(call: int) -> None:
        if call == 3:  # between the first and the second page: order 5 (handed over) changes
            fake.put(douyin_order(5, NOW - timedelta(seconds=30), status=3))

    fake.before_page = edit
    pages = drain(douyin(fake).pages(NOW - timedelta(hours=2)))
    ids = [int(json.loads(p.text)["order_id"]) - 6920000000000000000 for page in pages for p in page]
    assert ids == [*range(250), 5]  # each once, then order 5's change at the end
    assert [len(p) for p in pages] == [100, 99, 52]  # each page after the first re-reads its newest second
    assert len(fake.tokens) == 1 and {p.topic for page in pages for p in page} == {"api:order"}
    lists = [json.loads(r["param_json"][0]) for r in fake.requests if r["method"] == ["order.searchList"]]
    assert [(q["update_time_start"], q["page"]) for q in lists] == [
        (int((NOW - timedelta(hours=2)).timestamp()), 0),
        (int((NOW - timedelta(hours=1) + timedelta(seconds=990)).timestamp()), 0),
        (int((NOW - timedelta(hours=1) + timedelta(seconds=1980)).timestamp()), 0),
    ]


def test_douyin_throttle_and_authorisation_codes_and_a_wrong_secret() -> None:
    fake = FakeDouyin(**DOUDIAN, clock=lambda: NOW)
    fake.throttle_code = 50002
    with pytest.raises(Throttled, match=r"call limit \(code 50002"):
        drain(douyin(fake).pages(NOW - timedelta(hours=1)))
    fake.throttle_code = None
    wrong = DouyinOrders(job("douyin"), {**DOUDIAN, "app_secret": "stolen?"}, fake, clock=lambda: NOW)
    with pytest.raises(PullFailed, match=r"token.create: not authorised \(code 40004.*authorise the app again") as e:
        drain(wrong.pages(NOW - timedelta(hours=1)))
    assert "stolen" not in str(e.value) and "doudian-secret" not in str(e.value)
    other_shop = DouyinOrders(job("douyin"), {**DOUDIAN, "shop_id": "1"}, fake, clock=lambda: NOW)
    with pytest.raises(PullFailed, match=r"code 30002"):
        drain(other_shop.pages(NOW - timedelta(hours=1)))
    with pytest.raises(ValueError, match="md5 or hmac-sha256"):
        job("douyin", sign_method="hmac")


def test_a_listed_douyin_order_normalises_as_its_push_does() -> None:
    push = load_sample("douyin_batch")["body"][0]
    data = json.loads(push["data"])
    listed = {
        **{k: v for k, v in data.items() if k != "p_id"},
        "order_id": str(data["p_id"]),
        "update_time": data["pay_time"],
    }
    [pulled] = normalised("douyin", Pulled(NOW, json.dumps(listed), "api:order"))
    message = inbox_message("douyin", "demo", Delivery("m", "tag:101"), NOW, {}, b"{}", origin="webhook")
    [pushed] = NORMALISERS["douyin"].normalise(message, push)
    assert (pulled.entity_id, pulled.entity, pulled.occurred_at) == (
        pushed.entity_id,
        pushed.entity,
        pushed.occurred_at,
    )


# --- Youzan ---------------------------------------------------------------------------------------

YOUZAN = {"client_id": "yz_client", "client_secret": "yz-secret", "kdt_id": "91234567"}


def youzan_trade(n: int, updated: datetime, status: str = "WAIT_SELLER_SEND_GOODS") -> dict[str, Any]:
    china = updated.astimezone(timezone(timedelta(hours=8)))
    info = {
        "tid": f"E2026112110{n:014d}",
        "status": status,
        "created": (NOW - timedelta(days=1, seconds=-n))
        .astimezone(timezone(timedelta(hours=8)))
        .strftime("%Y-%m-%d %H:%M:%S"),
        "update_time": china.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return {"full_order_info": {"order_info": info, "pay_info": {"payment": "299.00"}}}


def youzan(fake: FakeYouzan, **extra: Any) -> YouzanChanges:
    return YouzanChanges(job("youzan", **extra), YOUZAN, fake, clock=lambda: NOW)


def test_youzan_reads_each_window_from_its_last_page_back_so_a_trade_moving_up_is_not_skipped() -> None:
    fake = FakeYouzan(**YOUZAN)
    # 250 trades updated in the last hour, created in the same order (the list is newest created first)
    fake.put(*(youzan_trade(n, NOW - timedelta(minutes=59) + timedelta(seconds=10 * n)) for n in range(250)))

    def edit(call: int) -> None:
        if call == 4:  # after the last page was read: trade 200 (page 1) leaves the window, all move up one
            fake.put(youzan_trade(200, NOW + timedelta(minutes=1), status="WAIT_BUYER_CONFIRM_GOODS"))

    fake.before_page = edit
    pages = drain(youzan(fake).pages(NOW - timedelta(hours=1)))
    tids = [json.loads(p.text)["order_info"]["tid"] for page in pages for p in page]
    assert tids == [f"E2026112110{n:014d}" for n in range(250)]  # each once, oldest update first
    trade_calls = [q for q in fake.requests if q["api"] == ["youzan.trades.sold.get"]]
    assert [q["page_no"] for q in trade_calls] == [["1"], ["3"], ["2"], ["1"]]
    assert trade_calls[0]["start_update"] == ["2026-11-21 19:00:00"]  # China time
    assert len(fake.tokens) == 1 and {p.topic for page in pages for p in page} == {"api:trade"}


def test_youzan_throttle_and_token_codes_and_a_wrong_secret() -> None:
    fake = FakeYouzan(**YOUZAN)
    fake.throttle_code = 4004
    with pytest.raises(Throttled, match=r"call limit \(code 4004"):
        drain(youzan(fake).pages(NOW - timedelta(minutes=30)))
    fake.throttle_code = None
    wrong = YouzanChanges(job("youzan"), {**YOUZAN, "client_secret": "leaked?"}, fake, clock=lambda: NOW)
    with pytest.raises(PullFailed, match=r"youzan auth/token: error \(code 4001") as e:
        drain(wrong.pages(NOW - timedelta(minutes=30)))
    assert "leaked" not in str(e.value) and "yz-secret" not in str(e.value)
    stale = youzan(fake)
    stale._token = "not-issued"
    with pytest.raises(PullFailed, match=r"not authorised \(code 4203.*authorise the app again"):
        drain(stale.pages(NOW - timedelta(minutes=30)))


def test_a_listed_youzan_trade_normalises_as_its_push_does() -> None:
    push = load_sample("youzan_trade_order_state")["body"]
    msg = json.loads(unquote_plus(push["msg"]))
    # the push's clock is its version (epoch seconds); a listed trade's is its update_time (China time)
    changed = datetime.fromtimestamp(push["version"], timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
    trade = {"order_info": {"tid": msg["tid"], "status": msg["status"], "update_time": changed}}
    trade["pay_info"] = {"payment": msg["payment"]}
    [pulled] = normalised("youzan", Pulled(NOW, json.dumps(trade), "api:trade"))
    message = inbox_message("youzan", "demo", Delivery("m", "TRADE_ORDER_STATE"), NOW, {}, b"{}", origin="webhook")
    [pushed] = NORMALISERS["youzan"].normalise(message, push)
    assert (pulled.entity_id, pulled.entity, pulled.occurred_at) == (
        pushed.entity_id,
        pushed.entity,
        pushed.occurred_at,
    )


def youzan_refund(n: int, updated: datetime, status: str = "WAIT_SELLER_AGREE", goods: bool = False) -> dict[str, Any]:
    china = timezone(timedelta(hours=8))
    return {
        "refund_id": f"2026112110300000{n:08d}",
        "tid": f"E2026112110{n:014d}",
        "kdt_id": 91234567,
        "status": status,
        "return_goods": goods,
        "reason": 11,
        "refund_fee": "99.00",
        "created": (NOW - timedelta(hours=3, seconds=-n)).astimezone(china).strftime("%Y-%m-%d %H:%M:%S"),
        "modified": updated.astimezone(china).strftime("%Y-%m-%d %H:%M:%S"),
    }


def test_youzan_refunds_are_searched_by_epoch_seconds_and_handed_over_with_the_trades_oldest_first() -> None:
    fake = FakeYouzan(**YOUZAN)
    fake.put(youzan_trade(1, NOW - timedelta(minutes=30)))
    fake.put(youzan_refund(1, NOW - timedelta(minutes=20), status="SUCCESS", goods=True))
    fake.put(youzan_refund(2, NOW - timedelta(minutes=40)))
    [page] = drain(youzan(fake).pages(NOW - timedelta(hours=1)))
    assert [(p.topic, p.changed_at) for p in page] == [
        ("api:refund", NOW - timedelta(minutes=40)),
        ("api:trade", NOW - timedelta(minutes=30)),
        ("api:refund", NOW - timedelta(minutes=20)),
    ]
    [refunds] = [q for q in fake.requests if q["api"] == ["youzan.trade.refund.search"]]
    assert (refunds["update_time_start"], refunds["update_time_end"]) == (
        [str(int((NOW - timedelta(hours=1)).timestamp()))],
        [str(int(NOW.timestamp()))],
    )
    [case] = normalised("youzan", page[2])
    assert (case.entity_id, case.entity.kind, case.entity.status, str(case.entity.amount.amount)) == (
        "youzan:202611211030000000000001",
        "return",
        "refunded",
        "99.00",
    )


@pytest.mark.parametrize("source", ["stripe", "zendesk", "aftership", "amazon", "douyin", "youzan"])
def test_a_platform_with_nothing_changed_gives_no_page_and_no_error(source: str) -> None:
    pagers = {
        "stripe": lambda: stripe(FakeStripe(STRIPE_KEY)),
        "zendesk": lambda: zendesk(FakeZendesk(**ZENDESK, clock=lambda: NOW)),
        "aftership": lambda: aftership(FakeAfterShip(AFTERSHIP_KEY)),
        "amazon": lambda: amazon(FakeAmazon(**LWA, clock=lambda: NOW)),
        "douyin": lambda: douyin(FakeDouyin(**DOUDIAN, clock=lambda: NOW)),
        "youzan": lambda: youzan(FakeYouzan(**YOUZAN)),
    }
    assert drain(pagers[source]().pages(NOW - timedelta(hours=2))) == []


def test_youzan_refunds_past_its_3000_deep_limit_in_one_minute_are_read_by_smaller_windows_not_lost() -> None:
    fake = FakeYouzan(**YOUZAN)
    start = NOW - timedelta(minutes=10)
    # a bulk refund: 3,100 refunds modified within one minute (about 52 a second), more than the search lists
    fake.put(*(youzan_refund(n, start + timedelta(seconds=n * 60 // 3100)) for n in range(3100)))
    pages = drain(youzan(fake, max_pages=100).pages(start))
    ids = [json.loads(p.text)["refund_id"] for page in pages for p in page]
    assert sorted(ids) == sorted(f"2026112110300000{n:08d}" for n in range(3100)) and len(ids) == 3100
    refund_calls = [q for q in fake.requests if q["api"] == ["youzan.trade.refund.search"]]
    assert all(int(q["page_no"][0]) * 100 <= 3000 for q in refund_calls)  # never asked past the limit


def test_youzan_fails_a_second_holding_more_than_its_lists_give_rather_than_skip_the_rest() -> None:
    fake = FakeYouzan(**YOUZAN)
    at = NOW - timedelta(minutes=5)
    fake.put(*(youzan_refund(n, at) for n in range(3001)))  # one second: no smaller window to read
    # (the smallest window, [19:54:59, 19:55:00], holds them: both its bounds are included)
    with pytest.raises(PullFailed, match=r"^youzan: more than 3000 changes in one second from 2026-11-21 19:54:59;"):
        drain(youzan(fake, max_pages=100).pages(NOW - timedelta(minutes=10)))


# --- hostile answers: a cursor that does not move, a Retry-After that is not a number ---------------


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]


class Scripted:
    """A platform that answers every list call with the same page (its cursor never moves), and the LWA
    token call with a token; more than 20 calls means the pager is looping."""

    def __init__(self, page: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.page, self.status, self.headers, self.calls = page, status, headers or {}, 0

    def _answer(self, url: str) -> Answer:
        self.calls += 1
        assert self.calls <= 20, "the pager keeps asking for the same page"
        if url.endswith("/auth/o2/token"):
            return Answer(200, json.dumps({"access_token": "Atza|x"}), {})
        return Answer(self.status, json.dumps(self.page), self.headers)

    def get(self, url: str, headers: dict[str, str], timeout: float) -> Answer:
        return self._answer(url)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        return self._answer(url)


def stuck_pager(source: str) -> tuple[Any, Scripted]:
    if source == "zendesk":  # only deleted tickets: nothing to hand over, and the same cursor again
        http = Scripted({"tickets": [ticket(1, NOW - timedelta(hours=1), "deleted")], "after_cursor": "MTU3"})
        return ZendeskTickets(job("zendesk", url="https://acme.zendesk.com"), ZENDESK, http, clock=lambda: NOW), http
    if source == "aftership":
        pagination = {"total": 1, "has_next_page": True, "next_cursor": "eyJpZCI6MX0"}
        trackings = [tracking(1, NOW - timedelta(minutes=30))]
        http = Scripted({"meta": {"code": 200}, "data": {"pagination": pagination, "trackings": trackings}})
        return AfterShipTrackings(job("aftership"), {"api_key": AFTERSHIP_KEY}, http, clock=lambda: NOW), http
    if source == "amazon":
        order = {"AmazonOrderId": "302-1", "OrderStatus": "Shipped", "LastUpdateDate": "2026-11-21T11:30:00Z"}
        http = Scripted({"payload": {"Orders": [order], "NextToken": "Ab1"}})
        amazon_job = job("amazon", url="https://sellingpartnerapi-eu.amazon.com", marketplace_ids=["A1PA6795UKMFR9"])
        return AmazonOrders(amazon_job, LWA, http, clock=lambda: NOW), http
    http = Scripted({"data": [event(1, NOW - timedelta(minutes=30))], "has_more": True})
    return StripeEvents(job("stripe"), {"api_key": STRIPE_KEY}, http, clock=lambda: NOW), http


@pytest.mark.parametrize("source", ["zendesk", "aftership", "amazon", "stripe"])
def test_a_next_page_cursor_that_does_not_move_fails_the_pull_instead_of_looping(source: str) -> None:
    pager, http = stuck_pager(source)
    with pytest.raises(PullFailed, match=rf"^{source}: the next page's cursor repeats an earlier one") as failed:
        drain(pager.pages(NOW - timedelta(hours=1)))
    assert http.calls == (3 if source == "amazon" else 2)  # (Amazon's first call is LWA's)
    assert not any(c in str(failed.value) for c in ("MTU3", "eyJpZCI6MX0", "Ab1", "evt_"))


@pytest.mark.parametrize("source", ["stripe", "zendesk", "aftership"])
@pytest.mark.parametrize("header", ["soon", "Thu, 03 Dec 2026 21:30:00 GMT", "inf", "nan"])
def test_a_429_whose_retry_after_is_not_a_number_is_still_throttling(source: str, header: str) -> None:
    names = {"aftership": "as-rate-limit-reset"}
    http = Scripted(
        {"error": {"type": "rate_limit_error"}}, status=429, headers={names.get(source, "retry-after"): header}
    )
    pagers = {
        "stripe": lambda: StripeEvents(job("stripe"), {"api_key": STRIPE_KEY}, http, clock=lambda: NOW),
        "zendesk": lambda: ZendeskTickets(
            job("zendesk", url="https://acme.zendesk.com"), ZENDESK, http, clock=lambda: NOW
        ),
        "aftership": lambda: AfterShipTrackings(job("aftership"), {"api_key": AFTERSHIP_KEY}, http, clock=lambda: NOW),
    }
    with pytest.raises(Throttled) as throttled:
        drain(pagers[source]().pages(NOW - timedelta(hours=1)))
    assert throttled.value.retry_after is None


def test_douyin_fails_a_pull_whose_next_page_number_answers_the_same_page_instead_of_looping() -> None:
    orders = [douyin_order(n, NOW - timedelta(minutes=30)) for n in range(100)]  # one second, a full page

    class SamePage(Scripted):
        def _answer(self, url: str) -> Answer:
            self.calls += 1
            assert self.calls <= 20, "the pager keeps asking for the same page"
            if "/token/create" in url:
                return Answer(200, json.dumps({"code": 10000, "data": {"access_token": "dy-token"}}), {})
            data = {"shop_order_list": orders, "total": 100_000, "page": 0, "size": 100}
            return Answer(200, json.dumps({"code": 10000, "data": data}), {})

    http = SamePage({})
    pages = DouyinOrders(job("douyin"), DOUDIAN, http, clock=lambda: NOW).pages(NOW - timedelta(hours=1))
    assert len(next(pages)) == 100
    with pytest.raises(PullFailed, match=r"^douyin order.searchList: the next page answered the same orders"):
        next(pages)
    assert http.calls == 4  # the token, page 0, page 0 from the newest second (the same, rightly), page 1


def test_a_douyin_or_youzan_error_echoing_the_token_or_secret_keeps_neither_in_the_reason() -> None:
    class Echoing(Scripted):
        def _answer(self, url: str) -> Answer:
            self.calls += 1
            if "/token/create" in url:
                return Answer(200, json.dumps({"code": 10000, "data": {"access_token": "dy-token-8f3a"}}), {})
            if url.endswith("/auth/token"):
                data = {"access_token": "yz-token-77c1"}
                return Answer(200, json.dumps({"success": True, "code": 200, "data": data}), {})
            if "access_token=yz-token" in url:  # Youzan: the gateway quotes the token it refuses
                said = "access_token yz-token-77c1 expired for client yz-secret"
                return Answer(200, json.dumps({"gw_err_resp": {"err_code": 4203, "err_msg": said}}), {})
            said = "access_token dy-token-8f3a expired; signed with doudian-secret"
            return Answer(200, json.dumps({"code": 30001, "msg": said, "sub_code": "isv.access-token-expired"}), {})

    douyin_pager = DouyinOrders(job("douyin"), DOUDIAN, Echoing({}), clock=lambda: NOW)
    with pytest.raises(PullFailed, match=r"code 30001: access_token \[a credential\] expired") as failed:
        drain(douyin_pager.pages(NOW - timedelta(hours=1)))
    assert "dy-token-8f3a" not in str(failed.value) and DOUDIAN["app_secret"] not in str(failed.value)
    youzan_pager = YouzanChanges(job("youzan"), YOUZAN, Echoing({}), clock=lambda: NOW)
    with pytest.raises(PullFailed, match=r"code 4203: access_token \[a credential\] expired") as failed:
        drain(youzan_pager.pages(NOW - timedelta(hours=1)))
    assert "yz-token-77c1" not in str(failed.value) and YOUZAN["client_secret"] not in str(failed.value)
