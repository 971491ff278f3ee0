"""Declarative field maps: an in-house system's own JSON to canonical observations, from config."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from infra.config import EnvironmentConfig, load_environment
from infra.sandbox.samples import body_bytes, load_sample
from shared.errors import NormalisationError
from shared.intake.field_map import FieldMap, MappingFailed
from shared.intake.normalise import normalise_message
from shared.models import InboxMessage
from tests.fakes import FakeArchive

WMS_MAP = load_environment("dev").field_maps["wms"]
BODY = load_sample("wms_stock_movements")["body"]


def _message(body: object) -> InboxMessage:
    return InboxMessage(
        source="wms",
        tenant="demo",
        dedupe_key="wms:demo:msg_1",
        source_event_id="msg_1",
        topic="observation",
        received_at=datetime.now(UTC),
        headers={},
        body_sha256="0",
        archive_key="raw/x",
        body=json.dumps(body, ensure_ascii=False),
    )


def test_the_wms_batch_maps_to_one_canonical_stock_observation_per_movement() -> None:
    assert WMS_MAP.observations(BODY) == [
        {
            "entity_type": "stock",
            "entity_id": "FILTER-X1@SH-01",
            "occurred_at": "2026-11-23T10:20:00+08:00",
            "entity": {
                "adjustment_id": "MV-88120",
                "sku": "FILTER-X1",
                "location": "SH-01",
                "delta": 1,
                "reason": "return_restock",
                "reference": "shopify:return:945000954",
            },
        },
        {
            "entity_type": "stock",
            "entity_id": "AIRPURIFIER-X1@SH-01",
            "occurred_at": "2026-11-23T10:20:00+08:00",
            # no "ref" in this movement: the field is left out, not sent as null
            "entity": {
                "adjustment_id": "MV-88121",
                "sku": "AIRPURIFIER-X1",
                "location": "SH-01",
                "delta": -2,
                "reason": "sale",
            },
        },
    ]


def test_normalise_applies_the_sources_map_and_the_canonical_model_validates_it() -> None:
    restock, sale = normalise_message(_message(BODY), FakeArchive(), {"wms": WMS_MAP})
    assert (restock.entity_type, restock.entity_id, restock.occurred_at) == (
        "stock",
        "FILTER-X1@SH-01",
        datetime(2026, 11, 23, 2, 20, tzinfo=UTC),
    )
    assert (sale.entity.delta, sale.entity.reason, sale.source) == (-2, "sale", "wms")  # type: ignore[union-attr]
    assert restock.event_id != sale.event_id


def test_a_code_the_map_does_not_list_is_quarantined_naming_it() -> None:
    body = {**BODY, "movements": [{**BODY["movements"][0], "type": "XFER"}]}
    with pytest.raises(NormalisationError, match="record 0 field reason: type value is not in the map"):
        normalise_message(_message(body), FakeArchive(), {"wms": WMS_MAP})


def test_a_record_missing_a_required_canonical_field_is_quarantined_naming_it() -> None:
    body = {**BODY, "movements": [{k: v for k, v in BODY["movements"][0].items() if k != "qty"}]}
    with pytest.raises(NormalisationError, match="observation 0: delta: Field required"):
        normalise_message(_message(body), FakeArchive(), {"wms": WMS_MAP})


def test_a_body_without_the_records_list_is_quarantined() -> None:
    with pytest.raises(NormalisationError, match="records: movements is not a list in the body"):
        normalise_message(_message({"warehouse": "SH-01"}), FakeArchive(), {"wms": WMS_MAP})


def test_a_template_over_a_missing_field_says_which() -> None:
    body = {**BODY, "movements": [{k: v for k, v in BODY["movements"][0].items() if k != "item"}]}
    with pytest.raises(MappingFailed, match="record 0 entity_id: template needs field 'sku'"):
        WMS_MAP.observations(body)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": {"colour": "c"}}, r"fields \['colour'\] are not fields of stock"),
        ({"entity_type": "invoice"}, "entity_type"),
        ({"occurred_at": {"path": "t", "utc_offset": "Asia/Shanghai"}}, "utc_offset"),
        ({"entity_id": {"path": "id", "const": "x"}}, "exactly one of path, const or template"),
        ({"fields": {"sku": "item..code"}}, "String should match pattern"),
    ],
)
def test_a_malformed_map_is_refused_when_the_config_loads_naming_the_field(
    change: dict[str, object], message: str
) -> None:
    raw = {**WMS_MAP.model_dump(mode="json", exclude_none=True), **change}
    with pytest.raises(ValidationError, match=message):
        FieldMap.model_validate(raw)


def test_field_maps_are_only_for_enabled_in_house_sources() -> None:
    dev = load_environment("dev").model_dump(mode="json", exclude_none=True)
    with pytest.raises(ValidationError, match=r"field_maps\.shopify: field maps are for enabled in-house sources"):
        EnvironmentConfig.model_validate({**dev, "field_maps": {"shopify": dev["field_maps"]["wms"]}})


def test_the_sample_is_the_wms_format_not_the_canonical_one() -> None:
    assert "entity_type" not in json.loads(body_bytes(load_sample("wms_stock_movements")))
