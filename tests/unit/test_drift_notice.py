"""Schema drift warnings on notify's path: normalise's notice read back by notify, rendered as a warning
block, digested with alarm changes (one robot message), and a junk notice refused with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.delivery.robot import (
    MAX_DRIFT_LINES,
    DriftWarning,
    digests,
    mention,
    parse_alarm,
    parse_drift,
    render_drift,
)
from shared.intake.schema_drift import DriftNotice, SchemaWatch, ShapeStore
from shared.intake.shapes import Drift
from tests.fakes import cloudwatch_message

AT = datetime(2026, 12, 3, 20, 0, 5, tzinfo=UTC)


def notice(*drifts: Drift, delivery: str = "evt-1") -> DriftNotice:
    return DriftNotice("shopify", "orders/create", "demo", delivery, AT, drifts)


def read_back(n: DriftNotice, message_id: str = "m-1") -> DriftWarning:
    return parse_drift(message_id, json.loads(n.to_message()))


def test_a_notice_travels_as_paths_and_types_and_renders_as_a_warning_block() -> None:
    warning = read_back(
        notice(Drift("currency_code", "new", (), ("string",)), Drift("currency", "missing", ("string",), ()))
    )
    assert warning == DriftWarning(
        "m-1",
        "shopify",
        "orders/create",
        "demo",
        "evt-1",
        AT,
        ("new: currency_code (string)", "missing: currency (was always present)"),
    )
    assert render_drift(warning, "prod") == (
        '**<font color="warning">SCHEMA DRIFT</font>** shopify orders/create\n'
        "> env **prod** · warning · tenant demo · delivery evt-1\n"
        "> new: currency_code (string)\n"
        "> missing: currency (was always present)\n"
        "> since 2026-12-03 20:00:05 UTC · `aftersync sources drift --source shopify`"
    )


def test_a_long_notice_shows_its_first_lines_and_how_many_more() -> None:
    many = [Drift(f"f{chr(97 + i)}", "new", (), ("number",)) for i in range(MAX_DRIFT_LINES + 3)]
    text = render_drift(read_back(notice(*many)), "dev")
    assert text.count("> new: ") == MAX_DRIFT_LINES and "> … and 3 more" in text


def test_drift_warnings_and_alarm_changes_share_one_digest_and_drifts_mention_nobody() -> None:
    alarm = parse_alarm("a-1", "warning", cloudwatch_message("aftersync-prod-inbox-age", "ALARM"))
    drifts = [read_back(notice(Drift("tier", "new", (), ("string",)), delivery=f"e{i}"), f"d-{i}") for i in range(2)]
    [message] = digests([alarm, *drifts], "prod")
    content = message.payload["markdown"]["content"]
    assert content.startswith("### Aftersync prod: 1 alarm change(s), 1 firing, 2 schema drift(s)\n")
    assert content.count("SCHEMA DRIFT") == 2 and "aftersync-prod-inbox-age" in content
    assert message.carries == ("a-1", "d-0", "d-1")
    [only_drift] = digests(drifts[:1], "prod")
    assert only_drift.payload["markdown"]["content"].startswith("### Aftersync prod: 1 schema drift(s)\n")
    assert mention(drifts, "prod", ["13800000000"]) is None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"notice": "schema-drift"}, "KeyError: 'drifts'"),
        ({**json.loads(notice(Drift("a", "new")).to_message()), "drifts": []}, "TypeError"),
        ({**json.loads(notice(Drift("a", "new")).to_message()), "drifts": [1]}, "TypeError"),
        ({**json.loads(notice(Drift("a", "new")).to_message()), "detected_at": "yesterday"}, "ValueError"),
    ],
)
def test_a_junk_notice_is_refused_with_a_value_error(body: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=f"not a schema drift notice: {why}"):
        parse_drift("m", body)


def test_only_topics_that_look_like_topics_are_watched_and_delivery_ids_carry_no_markup() -> None:
    watch = SchemaWatch(ShapeStore("unused"), 3, lambda m, e: None)
    watch.observe("shopify", "orders/create", "demo", "e1", {"a": 1})
    watch.observe("shopify", "x" * 101, "demo", "e2", {"a": 1})
    watch.observe("shopify", "<font color=red>", "demo", "e3", {"a": 1})
    watch.observe("shopify", "orders/updated", "demo", "[click](https://evil.example) li@example.com", {"a": 1})
    assert [(s.topic, s.delivery) for s in watch.pending] == [
        ("orders/create", "e1"),
        ("orders/updated", "_click__https:__evil.example__li_example.com"),
    ]
