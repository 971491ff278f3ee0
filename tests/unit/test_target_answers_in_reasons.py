"""A target's answer never reaches a reason or a log: receivers echo what they were sent (a name, an
address, a phone) in their error bodies, and reasons travel to DLQ attributes, logs and alarms."""

from __future__ import annotations

import pytest

from shared.delivery.deliver import DeliveryRejected, deliver_change
from shared.delivery.targets import TargetConfig
from shared.errors import DeliveryFailed
from tests.fakes import FakeHttp, FakeStateStore, changed, observe

CRM = TargetConfig(name="crm", url="https://crm.example.com/in", entity_types=("order",))
ECHO = '{"error":"invalid shipping_address for Wang Xiaoming, No. 5 Jianguo Road; phone 13912345678"}'
PERSONAL = ("Wang", "Xiaoming", "Jianguo", "13912345678", "5678")


@pytest.mark.parametrize(("status", "raised"), [(422, DeliveryRejected), (503, DeliveryFailed)])
def test_a_target_error_is_told_by_its_status_and_size_never_its_body(status: int, raised: type[Exception]) -> None:
    store = FakeStateStore()
    observe(store, "shopify:1", 0)
    with pytest.raises(raised) as error:
        deliver_change(changed("shopify:1", 1), CRM, store, FakeHttp(status=status, text=ECHO), {"value": "k"})
    assert str(error.value) == f"target crm answered HTTP {status} (a {len(ECHO)}-byte body, not kept)"
    assert not any(part in str(error.value) for part in PERSONAL)
