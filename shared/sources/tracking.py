"""What the tracking providers share: one status table for every tracker (``mappings/tracking.json``) and
``Shipment`` observations keyed ``<carrier>:<tracking number>``; mainland times are UTC+8."""

from __future__ import annotations

from datetime import timedelta, timezone
from functools import cache
from typing import Any

from pydantic import RootModel

from shared.errors import UnusableValue
from shared.models import InboxMessage, ObservedEntity, Shipment, TrackingStatus
from shared.sources.base import observation
from shared.sources.mappings import load_mapping

CHINA = timezone(timedelta(hours=8))  # Kuaidi100 times are mainland local time without an offset


class TrackingMaps(RootModel[dict[str, dict[str, TrackingStatus]]]):
    def status(self, source: str, code: str) -> TrackingStatus:
        try:
            return self.root[source][code]
        except KeyError:
            raise UnusableValue(f"{source} tracking status") from None


@cache
def tracking_maps() -> TrackingMaps:
    return load_mapping("tracking", TrackingMaps)


def shipment_observation(source: str, message: InboxMessage, shipment: Shipment, occurred_at: Any) -> ObservedEntity:
    return observation(source, message, "shipment", shipment.shipment_id, shipment, occurred_at)
