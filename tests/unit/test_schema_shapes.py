"""Payload shapes and their drift (shared/intake/shapes.py): paths and types, never values; keys that are
data collapsed; caps a hostile payload cannot pass; new, missing and retyped paths, each reported once."""

from __future__ import annotations

import json
from typing import Any

from shared.intake.shapes import (
    MAX_DEPTH,
    MAX_DRIFTS_PER_PAYLOAD,
    MAX_PAYLOAD_PATHS,
    MAX_SHAPE_PATHS,
    Drift,
    Known,
    describe_drifts,
    fold,
    is_name,
    parent_of,
    shape_of,
)
from tests.conftest import ROOT

ORDER = json.loads((ROOT / "events" / "shopify_orders_create.json").read_text(encoding="utf-8"))["body"]


def paths(payload: Any) -> dict[str, list[str]]:
    return {p: sorted(t) for p, t in shape_of(payload).paths.items()}


def test_nested_objects_are_dotted_and_array_elements_merged_under_brackets() -> None:
    payload = {
        "id": 1,
        "total": "9.90",
        "paid": True,
        "note": None,
        "customer": {"email": "li@example.com", "address": {"city": "上海"}},
        "tags": ["a", "b"],
        "lines": [{"sku": "A", "qty": 1}, {"sku": None, "gift": True}],
        "refunds": [],
    }
    assert paths(payload) == {
        "id": ["number"],
        "total": ["string"],
        "paid": ["boolean"],
        "note": ["null"],
        "customer": ["object"],
        "customer.email": ["string"],
        "customer.address": ["object"],
        "customer.address.city": ["string"],
        "tags": ["array"],
        "tags[]": ["string"],
        "lines": ["array"],
        "lines[]": ["object"],
        "lines[].sku": ["null", "string"],
        "lines[].qty": ["number"],
        "lines[].gift": ["boolean"],
        "refunds": ["array"],
    }
    shape = shape_of(payload)
    assert shape.filled == {"", "customer", "customer.address", "tags", "lines", "lines[]"}
    assert not shape.truncated


def test_no_value_reaches_the_shape() -> None:
    text = json.dumps(paths(ORDER), ensure_ascii=False)
    for value in ("jon@example.com", "Snow", "8613800138000", "598.00", "AIRPURIFIER", "Century"):
        assert value in json.dumps(ORDER)
        assert value not in text
    assert "customer.email" in text and "line_items[].sku" in text


def test_keys_that_are_data_collapse_into_one_segment() -> None:
    payload = {
        "metadata": {
            "13800138000": "x",  # a phone number
            "li@example.com": 1,  # an e-mail
            "order_100234": {"qty": 1},  # an id inside a name
            "550e8400-e29b-41d4-a716-446655440000": "u",  # a UUID
            "deadbeefcafebabe1": 2,  # a long hex string
            "2026-12-03": "d",  # a date
            "李雷": "n",  # not ASCII
            "a.b": "dot",  # would break the path notation
        },
        "ok_name": 1,
    }
    assert paths(payload) == {
        "metadata": ["object"],
        "metadata.*": ["number", "object", "string"],
        "metadata.*.qty": ["number"],
        "ok_name": ["number"],
    }
    assert [is_name(k) for k in ("line_items", "sku-2", "v123", "_links", "x1234", "", "a b")] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_an_object_with_very_many_keys_is_a_map_whatever_its_keys() -> None:
    payload = {"stock": {f"sku{chr(97 + i % 26)}{chr(97 + i // 26)}": i for i in range(300)}}
    assert paths(payload) == {"stock": ["object"], "stock.*": ["number"]}


def test_a_hostile_payload_is_capped() -> None:
    deep: Any = "leaf"
    for _ in range(50):
        deep = {"a": deep}
    shape = shape_of(deep)
    assert len(shape.paths) == MAX_DEPTH and shape.truncated
    wide = {f"k{chr(97 + i % 26)}{chr(97 + (i // 26) % 26)}{chr(97 + i // 676)}": {"x": 1} for i in range(199)}
    wide_and_deep = {f"g{chr(97 + g)}": wide for g in range(5)}
    shape = shape_of(wide_and_deep)
    assert len(shape.paths) == MAX_PAYLOAD_PATHS and shape.truncated
    long_key = {("n" * 64): {("m" * 64): {("o" * 64): 1}}}
    assert all(len(p) <= 160 for p in shape_of(long_key).paths)


def test_parent_of() -> None:
    assert [parent_of(p) for p in ("a", "a.b", "a[]", "a[].b", "a[][]", "a.*.c")] == ["", "a", "a", "a[]", "a[]", "a.*"]


def learned(payloads: list[Any], baseline: int) -> Known:
    known = Known()
    for payload in payloads:
        assert fold(known, shape_of(payload), baseline) == []
    return known


def test_nothing_is_reported_during_the_baseline_and_the_steady_state_changes_nothing() -> None:
    known = learned([{"a": 1}, {"a": 2, "b": "x"}, {"a": 3}], baseline=3)  # b: new, then absent: optional
    assert known.payloads == 3 and known.optional == {"b"} and known.counts == {"a": 3}
    before = known.copy()
    assert fold(known, shape_of({"a": 4, "b": "y"}), 3) == []
    assert known.same_as(before)  # nothing to write


def test_a_new_path_after_the_baseline_is_a_drift_once() -> None:
    known = learned([{"a": 1}] * 3, baseline=3)
    assert fold(known, shape_of({"a": 1, "tier": "gold"}), 3) == [Drift("tier", "new", (), ("string",))]
    assert fold(known, shape_of({"a": 1, "tier": "gold"}), 3) == []
    assert known.counts["tier"] == 2


def test_an_always_present_path_gone_is_a_drift_once_then_optional() -> None:
    known = learned([{"currency": "CNY", "id": 1}] * 3, baseline=3)
    drifts = fold(known, shape_of({"currency_code": "CNY", "id": 2}), 3)
    assert drifts == [Drift("currency_code", "new", (), ("string",)), Drift("currency", "missing", ("string",), ())]
    assert describe_drifts(drifts) == ["new: currency_code (string)", "missing: currency (was always present)"]
    assert fold(known, shape_of({"id": 3}), 3) == []  # currency_code was in 1 payload: not always present
    assert known.optional == {"currency", "currency_code"}
    assert fold(known, shape_of({"id": 4, "currency": "CNY"}), 3) == []  # back, and optional: nothing


def test_a_path_not_yet_always_present_is_not_reported_missing() -> None:
    known = learned([{"id": 1}] * 3, baseline=3)
    fold(known, shape_of({"id": 1, "late": 1}), 3)  # new: reported, count 1
    assert fold(known, shape_of({"id": 2}), 3) == []  # gone before 3 payloads had it: optional, silent
    assert "late" in known.optional


def test_a_field_under_an_absent_or_empty_parent_is_not_missing() -> None:
    payload = {"customer": {"email": "x"}, "lines": [{"sku": "a"}]}
    known = learned([payload] * 3, baseline=3)
    assert fold(known, shape_of({"customer": None, "lines": []}), 3) == []
    assert known.optional == set()
    assert fold(known, shape_of({"customer": {}, "lines": [{}]}), 3) == []  # empty: nothing says a field went
    assert fold(known, shape_of({"customer": {"name": "x"}, "lines": [{"qty": 1}]}), 3) == [
        Drift("customer.name", "new", (), ("string",)),
        Drift("lines[].qty", "new", (), ("number",)),
        Drift("customer.email", "missing", ("string",), ()),
        Drift("lines[].sku", "missing", ("string",), ()),
    ]


def test_a_changed_type_is_a_drift_but_null_is_not() -> None:
    known = learned([{"total": "9.90", "note": None}] * 3, baseline=3)
    assert fold(known, shape_of({"total": None, "note": "hi"}), 3) == []  # sometimes null; null learned a type
    assert fold(known, shape_of({"total": 9.9, "note": 5}), 3) == [
        Drift("note", "type", ("null", "string"), ("null", "number", "string")),
        Drift("total", "type", ("null", "string"), ("null", "number", "string")),
    ]
    assert fold(known, shape_of({"total": 1, "note": 1}), 3) == []


def test_a_truncated_payload_reports_nothing_missing() -> None:
    known = learned([{"id": 1, "x": 1}] * 3, baseline=3)
    deep: Any = 1
    for _ in range(20):
        deep = {"d": deep}
    assert fold(known, shape_of({"id": 1, "deep": deep}), 3)[0].path == "deep"
    assert "x" not in known.optional


def test_drifts_per_payload_and_paths_per_shape_are_capped() -> None:
    known = learned([{"id": 1}], baseline=1)
    many = {f"f{chr(97 + i % 26)}{chr(97 + i // 26)}": 1 for i in range(150)}
    assert len(fold(known, shape_of(many), 1)) == MAX_DRIFTS_PER_PAYLOAD
    assert len(known.types) == 151  # every path still learned
    for g in range(20):
        fold(known, shape_of({f"g{chr(97 + g)}": many}), 1)
    assert len(known.types) == MAX_SHAPE_PATHS


def test_a_known_shape_round_trips_through_its_document() -> None:
    known = learned([ORDER, {**ORDER, "note": None}], baseline=5)
    again = Known.from_document(json.loads(json.dumps(known.to_document())), "rev1")
    assert again.same_as(known) and again.rev == "rev1"
    assert len(known.types) == 42  # a real Shopify order: every field path, no value
