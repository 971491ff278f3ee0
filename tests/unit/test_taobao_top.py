"""Taobao / Tmall through TOP (shared/pulls/taobao_top.py) against the fake gateway (infra/sandbox/
fake_top.py), which checks each call's signature with its own implementation of TOP's documented
algorithm, and the normaliser (shared/sources/taobao.py) over real-shaped records."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest

from infra.sandbox.fake_top import FakeTop
from shared.intake.ingest import inbox_message
from shared.intake.normalise import normalise_message
from shared.models import InboxMessage
from shared.pulls.reconcile import TOP_GATEWAY, PullFailed, ReconcileJob, Throttled
from shared.pulls.taobao_top import PAGE_SIZE, TaobaoChanges, top_sign
from shared.sources.base import Delivery

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 11, 12, 0, tzinfo=CST)
CREDENTIALS = {"app_key": "12345678", "app_secret": "s3cr3t-of-the-app", "session": "6100e2-session-of-the-shop"}
TRADES, REFUNDS = "taobao.trades.sold.increment.get", "taobao.refunds.receive.get"


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]


class InProcess:
    """The fake gateway behind the pager's HttpPost port; ``bodies`` keeps each form as sent."""

    def __init__(self, top: FakeTop) -> None:
        self.top, self.bodies = top, []

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        assert url == "https://gw.api.taobao.com/router/rest"
        assert headers["Content-Type"] == "application/x-www-form-urlencoded;charset=utf-8"
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.bodies.append(form)
        return Answer(200, json.dumps(self.top.answer(form, now=NOW)), {})


def job(**extra: Any) -> ReconcileJob:
    return ReconcileJob.model_validate({"source": "taobao", "tenant": "demo", **extra})


def trade(tid: int, minutes_ago: float, status: str = "WAIT_SELLER_SEND_GOODS", **extra: Any) -> dict[str, Any]:
    modified = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")
    return {"tid": tid, "status": status, "payment": "199.00", "type": "fixed", "created": modified,
            "modified": modified, "buyer_open_uid": f"AAH{tid}", **extra}  # fmt: skip


def refund(refund_id: int, tid: int, minutes_ago: float, **extra: Any) -> dict[str, Any]:
    modified = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "refund_id": refund_id,
        "tid": tid,
        "oid": tid,
        "status": "WAIT_SELLER_AGREE",
        "refund_fee": "59.90",
        "total_fee": "199.00",
        "has_good_return": False,
        "reason": "不想要了",
        "modified": modified,
        **extra,
    }


def pager(top: FakeTop, **extra: Any) -> tuple[TaobaoChanges, InProcess]:
    http = InProcess(top)
    return TaobaoChanges(job(**extra), CREDENTIALS, http, clock=lambda: NOW.astimezone(UTC)), http


def fake() -> FakeTop:
    return FakeTop(**CREDENTIALS)


# -- the signature -----------------------------------------------------------------------------------
def by_hand(params: dict[str, str], secret: str, method: str) -> str:
    """TOP's documented algorithm, written out again: sort, join name+value, digest, upper-case hex."""
    pairs = sorted((k, v) for k, v in params.items() if k != "sign" and v != "")
    text = "".join(k + v for k, v in pairs).encode("utf-8")
    if method == "md5":
        return hashlib.md5(secret.encode() + text + secret.encode()).hexdigest().upper()  # noqa: S324
    return (
        hmac.new(secret.encode(), text, hashlib.sha256 if method == "hmac-sha256" else hashlib.md5).hexdigest().upper()
    )


@pytest.mark.parametrize("method", ["md5", "hmac", "hmac-sha256"])
def test_a_request_the_pager_builds_is_signed_as_top_documents(method: str) -> None:
    top = fake()
    top.put(TRADES, trade(1, 5))
    changes, http = pager(top, sign_method=method)
    [page] = list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30)))
    assert [json.loads(p.text)["tid"] for p in page] == [1]
    first = http.bodies[0]
    assert first["sign"] == by_hand(first, CREDENTIALS["app_secret"], method)
    assert len(first["sign"]) == (64 if method == "hmac-sha256" else 32)
    assert {k: first[k] for k in ("method", "app_key", "session", "format", "v", "sign_method", "timestamp")} == {
        "method": TRADES,
        "app_key": "12345678",
        "session": CREDENTIALS["session"],
        "format": "json",
        "v": "2.0",
        "sign_method": method,
        "timestamp": "2026-11-11 12:00:00",  # China Standard Time
    }
    assert (first["start_modified"], first["end_modified"]) == ("2026-11-11 11:30:00", "2026-11-11 12:00:00")
    # a known vector: the documented scheme over two parameters
    assert top_sign({"b": "2", "a": "1"}, "k", "md5") == hashlib.md5(b"ka1b2k").hexdigest().upper()  # noqa: S324


def test_a_wrong_secret_is_refused_by_the_gateway_as_an_authorisation_failure() -> None:
    top = FakeTop(CREDENTIALS["app_key"], "another-secret", CREDENTIALS["session"])
    changes, _ = pager(top)
    with pytest.raises(PullFailed, match=r"not authorised \(code 25: Invalid signature\)") as failure:
        list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30)))
    assert CREDENTIALS["session"] not in str(failure.value) and CREDENTIALS["app_secret"] not in str(failure.value)


# -- paging -----------------------------------------------------------------------------------------
def test_trades_and_refunds_come_oldest_first_read_from_the_last_page_back() -> None:
    top = fake()
    top.put(TRADES, *(trade(1000 + n, 50 - n * 0.1) for n in range(250)))  # 3 pages, the last a partial one
    top.put(REFUNDS, refund(1, 1000, 49.95), refund(2, 1001, 10))
    changes, _ = pager(top)
    pages = list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=55)))
    pulled = [p for page in pages for p in page]
    assert [len(page) for page in pages] == [100, 100, 52]
    assert [p.changed_at for p in pulled] == sorted(p.changed_at for p in pulled)
    assert sorted(json.loads(p.text).get("refund_id", 0) for p in pulled).count(0) == 250
    assert {p.topic for p in pulled} == {"taobao.trade", "taobao.refund"}
    # page 1 of each says the totals; then the trades are read from page 3 back to page 1
    assert top.calls == [(TRADES, 1), (REFUNDS, 1), (TRADES, 3), (TRADES, 2), (TRADES, 1)]


def test_a_trade_modified_while_we_page_moves_the_rest_up_and_none_is_skipped() -> None:
    top = fake()
    top.put(TRADES, *(trade(2000 + n, 50 - n * 0.1) for n in range(150)))  # newest is 2149
    moved = []

    def shop_edits(api: str, page: int) -> None:
        if (api, page) == (TRADES, 2) and not moved:  # between our reads: the newest trade changes again
            moved.append(top.records[TRADES]["2149"])
            top.records[TRADES]["2149"] = {**moved[0], "modified": "2026-11-11 12:00:30"}  # out of the window

    top.before_page = shop_edits
    changes, _ = pager(top)
    pulled = [
        json.loads(p.text)["tid"] for page in changes.pages(NOW.astimezone(UTC) - timedelta(minutes=55)) for p in page
    ]
    assert sorted(set(pulled)) == list(range(2000, 2150))  # 2149 from the first read of page 1
    assert len(pulled) == len(set(pulled))


def test_a_window_holding_more_than_a_run_is_halved_first() -> None:
    top = fake()
    # 450 trades changed between 59 and 54.5 minutes ago (a flash sale's minutes)
    top.put(TRADES, *(trade(3000 + n, 59 - n * 0.01) for n in range(450)))
    changes, http = pager(top, max_pages=2, window_minutes=60)  # a run: 200 records
    pages = list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=60)))
    asked = [
        (b["start_modified"], b["end_modified"]) for b in http.bodies if b["method"] == TRADES and b["page_no"] == "1"
    ]
    # the hour holds 450: halved until a window holds at most 200 (both lists together)
    assert asked[:6] == [
        ("2026-11-11 11:00:00", "2026-11-11 12:00:00"),
        ("2026-11-11 11:00:00", "2026-11-11 11:30:00"),
        ("2026-11-11 11:00:00", "2026-11-11 11:15:00"),
        ("2026-11-11 11:00:00", "2026-11-11 11:07:30"),
        ("2026-11-11 11:00:00", "2026-11-11 11:03:45"),
        ("2026-11-11 11:00:00", "2026-11-11 11:01:52"),
    ]
    assert all(len(page) <= PAGE_SIZE for page in pages)
    pulled = [json.loads(p.text)["tid"] for page in pages for p in page]
    assert sorted(set(pulled)) == list(range(3000, 3450))  # every trade, each window read whole
    changed = [p.changed_at for page in pages for p in page]
    assert changed == sorted(changed)


def test_an_empty_window_yields_nothing_and_costs_a_call_per_list() -> None:
    top = fake()
    changes, _ = pager(top)
    assert list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30))) == []
    assert top.calls == [(TRADES, 1), (REFUNDS, 1)]


def test_the_call_limit_is_throttling_with_the_ban_s_seconds() -> None:
    top = fake()
    top.error = 7
    changes, _ = pager(top)
    with pytest.raises(Throttled, match="call limit") as throttled:
        list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30)))
    assert throttled.value.retry_after == 3


def test_an_invalid_session_asks_for_the_shop_to_authorise_again_and_names_no_secret() -> None:
    top = fake()
    top.error = 27
    changes, _ = pager(top)
    with pytest.raises(PullFailed, match=r"code 27: Invalid session.*authorise the app again") as failure:
        list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30)))
    assert CREDENTIALS["session"] not in str(failure.value)


def test_a_job_needs_its_credentials_and_defaults_to_the_top_gateway() -> None:
    assert job().endpoint == TOP_GATEWAY
    with pytest.raises(PullFailed, match=r"lacks \['session'\]"):
        TaobaoChanges(job(), {"app_key": "1", "app_secret": "2"}, InProcess(fake()))
    with pytest.raises(ValueError, match="needs the shop's or account's url"):
        ReconcileJob.model_validate({"source": "shopify", "tenant": "demo"})


# -- the normaliser ---------------------------------------------------------------------------------
def message(topic: str, record: dict[str, Any]) -> InboxMessage:
    """The envelope reconcile admits for a pulled record (as ``shared.pulls.backfill.plan`` makes it)."""
    body = json.dumps(record, ensure_ascii=False).encode()
    delivery = Delivery(source_event_id="reconcile:1", topic=topic)
    headers = {"Content-Type": "application/json"}
    return inbox_message("taobao", "demo", delivery, NOW.astimezone(UTC), headers, body, origin="reconcile")


def test_a_trade_and_a_refund_become_an_order_and_a_case() -> None:
    [order] = normalise_message(
        message("taobao.trade", trade(88, 3, "WAIT_BUYER_CONFIRM_GOODS", type="tmall_i18n")), None
    )  # type: ignore[arg-type]
    assert (order.entity_type, order.entity_id) == ("order", "taobao:88")
    assert order.entity.model_dump(exclude_none=True, exclude_defaults=True) == {
        "order_id": "88",
        "channel": "tmall",
        "status": "open",
        "payment_status": "paid",
        "fulfillment_status": "fulfilled",
        "total": {"amount": Decimal("199.00"), "currency": "CNY"},
        "purchased_at": datetime(2026, 11, 11, 3, 57, tzinfo=UTC),
        "customer_source_id": "AAH88",
    }
    assert order.occurred_at == datetime(2026, 11, 11, 3, 57, tzinfo=UTC)
    [case] = normalise_message(message("taobao.refund", refund(7, 88, 1, has_good_return=True, status="SUCCESS")), None)  # type: ignore[arg-type]
    assert (case.entity_type, case.entity_id) == ("after_sales_case", "taobao:7")
    assert case.entity.model_dump(exclude_none=True, exclude_defaults=True) == {
        "case_id": "7",
        "kind": "return",
        "status": "refunded",
        "order_id": "88",
        "amount": {"amount": Decimal("59.90"), "currency": "CNY"},
        "reason": "不想要了",
    }


def test_an_unknown_status_is_quarantined_with_its_name() -> None:
    from shared.errors import NormalisationError

    with pytest.raises(NormalisationError, match="TRADE_SOMETHING_NEW"):
        normalise_message(message("taobao.trade", trade(1, 1, "TRADE_SOMETHING_NEW")), None)  # type: ignore[arg-type]


def test_taobao_is_never_a_webhook_source() -> None:
    from shared.errors import UnknownSource
    from shared.sources import NORMALISERS, SOURCES, get_source

    assert "taobao" in NORMALISERS and "taobao" not in SOURCES
    with pytest.raises(UnknownSource):
        get_source("taobao", frozenset({"taobao"}))


def test_a_trade_on_the_second_two_windows_share_is_handed_over_once() -> None:
    top = fake()
    top.put(TRADES, trade(4000, 30))  # exactly where the first window ends and the second begins
    changes, http = pager(top, window_minutes=30)
    pulled = [p for page in changes.pages(NOW.astimezone(UTC) - timedelta(minutes=60)) for p in page]
    windows = sorted({(b["start_modified"], b["end_modified"]) for b in http.bodies})
    assert windows == [("2026-11-11 11:00:00", "2026-11-11 11:30:00"), ("2026-11-11 11:30:00", "2026-11-11 12:00:00")]
    assert [json.loads(p.text)["tid"] for p in pulled] == [4000]


def test_a_record_whose_modified_is_not_a_time_fails_the_run_naming_the_field_not_its_value() -> None:
    top = fake()
    top.put(TRADES, trade(5000, 5))
    changes, http = pager(top)

    def garbled(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        answer = InProcess.post(http, url, body, headers, timeout)
        return Answer(
            200, answer.text.replace('"modified": "2026-11-11 11:55:00"', '"modified": "李雷 13800138000"'), {}
        )

    http.post = garbled  # type: ignore[method-assign]
    with pytest.raises(PullFailed, match=r"a taobao.trade record without a usable 'modified' \(ValueError\)") as e:
        list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30)))
    assert "13800138000" not in str(e.value)


def test_an_error_whose_text_echoes_the_session_or_secret_keeps_neither_in_the_reason() -> None:
    # a gateway that quotes what it was sent back in its sub_msg: the reason is kept in the DLQ and logged
    class Echoing:
        def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
            said = (
                f"session {CREDENTIALS['session']} of app {CREDENTIALS['app_key']} signed {CREDENTIALS['app_secret']}"
            )
            error = {"code": 27, "msg": "Invalid session", "sub_code": "invalid-sessionkey", "sub_msg": said}
            return Answer(200, json.dumps({"error_response": error}), {})

    changes = TaobaoChanges(job(), CREDENTIALS, Echoing(), clock=lambda: NOW)
    with pytest.raises(
        PullFailed, match=r"code 27: Invalid session; invalid-sessionkey; session \[a credential\]"
    ) as failure:
        list(changes.pages(NOW.astimezone(UTC) - timedelta(minutes=30)))
    assert CREDENTIALS["session"] not in str(failure.value) and CREDENTIALS["app_secret"] not in str(failure.value)
