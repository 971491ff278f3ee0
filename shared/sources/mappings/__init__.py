"""Status-code maps kept as data (one JSON file per source), validated on load."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TypeVar, get_args

from pydantic import BaseModel, ConfigDict, model_validator

from shared.models import CaseStatus, FulfillmentStatus, PaymentStatus

_HERE = Path(__file__).parent
M = TypeVar("M", bound=BaseModel)

_ALLOWED = {
    "payment_status": set(get_args(PaymentStatus)),
    "fulfillment_status": set(get_args(FulfillmentStatus)),
    "return_status": set(get_args(CaseStatus)),
    "return_topic": set(get_args(CaseStatus)),
}


class StatusMaps(BaseModel):
    """Per canonical field, platform code -> canonical code. ``null`` keys the JSON null value."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    payment_status: dict[str, str]
    fulfillment_status: dict[str, str]
    return_status: dict[str, str] = {}  # a return's own status field
    return_topic: dict[str, str] = {}  # what a returns/* topic says the case's status now is

    @model_validator(mode="after")
    def _targets_are_canonical(self) -> StatusMaps:
        for field_name, allowed in _ALLOWED.items():
            for code, canonical in getattr(self, field_name).items():
                if canonical not in allowed:
                    raise ValueError(f"{field_name}: {code!r} maps to {canonical!r}, not one of {sorted(allowed)}")
        return self

    def lookup(self, field_name: str, code: str | None) -> str | None:
        return getattr(self, field_name).get("null" if code is None else code)


@cache
def status_maps(source: str) -> StatusMaps:
    return load_mapping(source, StatusMaps)


def load_mapping(source: str, model: type[M]) -> M:
    """``<source>.json`` beside this file, validated by the source's own model."""
    return model.model_validate(json.loads((_HERE / f"{source}.json").read_text(encoding="utf-8")))
