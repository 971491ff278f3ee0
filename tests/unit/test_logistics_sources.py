"""AfterShip and Kuaidi100: verification, dedupe identity, acks, canonical tracking statuses."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from infra.sandbox.samples import body_bytes, kuaidi100_form, load_sample
from shared.errors import SignatureInvalid
from shared.models import InboxMessage
from shared.sources.aftership import AfterShip, aftership_sign
from shared.sources.base import Headers
from shared.sources.kuaidi100 import Kuaidi100, kuaidi100_sign
from shared.sources.tracking import tracking_maps

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_aftership_signature_matches_the_published_vector() -> None:
    assert (
        aftership_sign("my_secret", b'{"id":820982911946154508,"name":"#9999"}')
        == "UWmFPcwrxLn7+1AvhBs6vTRFPRkfNGH8pt53/pxTr4U="
    )


def test_kuaidi100_sign_matches_the_published_vector() -> None:
    assert kuaidi100_sign("salt123", '{"status":"polling"}') == "D3E37349DAA1504C5808621A3D636F88"


def test_every_canonical_tracking_status_is_reachable_from_each_tracker() -> None:
    canonical = {
        "info_received",
        "in_transit",
        "out_for_delivery",
        "failed_attempt",
        "delivered",
        "exception",
        "expired",
    }
    for source in ("aftership", "17track", "kuaidi100"):
        assert canonical <= set(tracking_maps().root[source].values()), source


def message(source: str, body: bytes, event_id: str, topic: str) -> InboxMessage:
    return InboxMessage(
        source=source,
        tenant="demo",
        dedupe_key=f"{source}:demo:{event_id}",
        source_event_id=event_id,
        topic=topic,
        received_at=NOW,
        headers={},
        body_sha256=hashlib.sha256(body).hexdigest(),
        archive_key="raw/x",
        body=body.decode(),
    )


def test_aftership_update_becomes_a_shipment_with_checkpoints() -> None:
    body = body_bytes(load_sample("aftership_tracking_update"))
    source = AfterShip()
    source.verify(Headers({"Aftership-Hmac-Sha256": aftership_sign("s", body)}), body, ["s"], NOW)
    payload = source.parse(Headers({}), body)
    delivery = source.identify(Headers({}), payload)
    assert delivery.source_event_id == "8f4d3b0e-2a6c-4c1e-9f5e-6a7b8c9d0e1f"
    [event] = source.normalise(message("aftership", body, delivery.source_event_id, delivery.topic), payload)
    shipment = event.entity
    assert (event.entity_id, shipment.status, shipment.order_id) == (  # type: ignore[union-attr]
        "sf-express:SF1410029637153",
        "out_for_delivery",
        "820982911946154508",
    )
    assert [c.status for c in shipment.checkpoints] == ["info_received", "in_transit", "out_for_delivery"]  # type: ignore[union-attr]
    assert source.ack(delivery, False).body == {"meta": {"code": 200}}


def test_kuaidi100_push_is_verified_from_its_form_and_acked_its_own_way() -> None:
    param = json.dumps(load_sample("kuaidi100_push_signed")["body"], ensure_ascii=False, separators=(",", ":"))
    body = kuaidi100_form("salt", param)
    source = Kuaidi100()
    source.verify(Headers({}), body, ["salt"], NOW)
    payload = source.parse(Headers({}), body)
    delivery = source.identify(Headers({}), payload)
    assert delivery.source_event_id == "yuantong:YT7366029163549:2026-11-22 14:05:00"
    [event] = source.normalise(message("kuaidi100", body, delivery.source_event_id, delivery.topic), payload)
    assert (event.entity_id, event.entity.status) == ("yuantong:YT7366029163549", "delivered")  # type: ignore[union-attr]
    assert event.occurred_at == datetime(2026, 11, 22, 6, 5, tzinfo=UTC)  # 14:05 in China is 06:05 UTC
    assert source.ack(delivery, False).body == {"result": True, "returnCode": "200", "message": "成功"}


@pytest.mark.parametrize(
    ("form", "message_text"),
    [
        (b"param=%7B%7D", "missing sign field"),
        (b"sign=ABC", "missing param field"),
        (b"param=%7B%7D&sign=00000000000000000000000000000000", "sign does not match param"),
    ],
)
def test_kuaidi100_refuses_unsigned_or_tampered_pushes(form: bytes, message_text: str) -> None:
    with pytest.raises(SignatureInvalid, match=message_text):
        Kuaidi100().verify(Headers({}), form, ["salt"], NOW)


def test_a_tampered_kuaidi100_param_fails_verification() -> None:
    param = '{"status":"polling"}'
    with pytest.raises(SignatureInvalid):
        Kuaidi100().verify(
            Headers({}), kuaidi100_form("salt", param, tampered_param='{"status":"abort"}'), ["salt"], NOW
        )


def test_17track_push_is_verified_identified_and_mapped() -> None:
    from shared.sources.seventeen_track import SeventeenTrack, seventeen_sign

    body = body_bytes(load_sample("17track_tracking_updated"))
    source = SeventeenTrack()
    assert seventeen_sign("key", b"{}") == hashlib.sha256(b"{}/key").hexdigest()
    source.verify(Headers({"sign": seventeen_sign("key", body)}), body, ["key"], NOW)
    with pytest.raises(SignatureInvalid, match="does not match"):
        source.verify(Headers({"sign": seventeen_sign("other", body)}), body, ["key"], NOW)
    payload = source.parse(Headers({}), body)
    delivery = source.identify(Headers({}), payload)
    assert delivery.source_event_id == "RR123456785CN:3011:2026-11-22T07:10:00Z"
    [event] = source.normalise(message("17track", body, delivery.source_event_id, delivery.topic), payload)
    assert (event.entity_id, event.entity.status) == ("17track-3011:RR123456785CN", "delivered")  # type: ignore[union-attr]
    assert [c.status for c in event.entity.checkpoints] == ["delivered", "in_transit"]  # type: ignore[union-attr]
