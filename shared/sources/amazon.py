"""Amazon SP-API ``ORDER_CHANGE`` notifications.

Amazon does not call a webhook: it sends notifications to an SQS queue whose access policy admits
Amazon's SP-API principal (``arn:aws:iam::437568002678:root``), so there is no HTTP signature and the
queue policy is the trust boundary. The ``amazon-intake`` function reads that queue and admits each
notification into the same path as a webhook — dedupe on ``NotificationMetadata.NotificationId``,
archive, inbox — with the tenant looked up from the seller id in config (``amazon_sellers``).

An ``OrderStatusChange`` is the order's new status; a ``BuyerRequestedChange`` (a buyer asking to
cancel) is also an after-sales case ``amazon:<order id>:cancel`` in ``requested``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from shared.errors import MalformedPayload, NormalisationError, SignatureInvalid, UnknownTenant
from shared.models import AfterSalesCase, InboxMessage, ObservedEntity, Order
from shared.sources.base import PAYLOAD_ERRORS, Ack, Delivery, Headers, JsonSource, describe_error, observation
from shared.sources.china_shops import OrderCodes
from shared.sources.mappings import load_mapping

AMAZON_SP_API_PRINCIPAL = "arn:aws:iam::437568002678:root"
ORDER_CHANGE = "ORDER_CHANGE"
# An order as getOrders lists it (pulled by reconciliation, shared/pulls/amazon_orders.py)
API_ORDER = "api:order"


class AmazonMaps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    order_status: dict[str, OrderCodes]


@cache
def amazon_maps() -> AmazonMaps:
    return load_mapping("amazon", AmazonMaps)


class AmazonSpApi(JsonSource):
    name: ClassVar[str] = "amazon"
    kept_headers: ClassVar[tuple[str, ...]] = ()

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[str], now: datetime) -> None:
        raise SignatureInvalid("Amazon notifications arrive on the SP-API queue, never over HTTP")

    def identify(self, headers: Headers, payload: Any) -> Delivery:
        if not isinstance(payload, dict):
            raise MalformedPayload("an SP-API notification is a JSON object")
        notification_id = (payload.get("NotificationMetadata") or {}).get("NotificationId")
        kind = payload.get("NotificationType")
        if not notification_id or not isinstance(kind, str):
            raise MalformedPayload(
                "an SP-API notification needs NotificationType and NotificationMetadata.NotificationId"
            )
        return Delivery(source_event_id=str(notification_id), topic=kind)

    def tenant(self, payload: dict[str, Any], sellers: Mapping[str, str]) -> str:
        """The tenant this notification belongs to, from its seller id."""
        seller = ((payload.get("Payload") or {}).get("OrderChangeNotification") or {}).get("SellerId")
        if not seller:
            raise MalformedPayload("an ORDER_CHANGE notification needs Payload.OrderChangeNotification.SellerId")
        if seller not in sellers:
            raise UnknownTenant(f"seller {seller!r} is not mapped to a tenant (config: amazon_sellers)")
        return sellers[seller]

    def ack(self, delivery: Delivery, duplicate: bool) -> Ack:
        return Ack(200, {"status": "duplicate" if duplicate else "accepted"})

    def normalise(self, message: InboxMessage, payload: Any) -> list[ObservedEntity]:
        if message.topic == API_ORDER:
            return self._listed(message, payload)
        if message.topic != ORDER_CHANGE:
            raise NormalisationError(self.name, f"unsupported notification type {message.topic!r}")
        try:
            change = payload["Payload"]["OrderChangeNotification"]
            summary = change.get("Summary") or {}
            order_id = str(change["AmazonOrderId"])
            at = (change.get("OrderChangeTrigger") or {}).get("TimeOfOrderChange") or payload["EventTime"]
            values: dict[str, Any] = {"order_id": order_id, "channel": "amazon"}
            if summary.get("OrderStatus"):
                values.update(amazon_maps().order_status[summary["OrderStatus"]].model_dump(exclude_none=True))
            if summary.get("PurchaseDate"):
                values["purchased_at"] = summary["PurchaseDate"]
            order = Order(**values)
            events = [observation(self.name, message, "order", f"amazon:{order_id}", order, at)]
            if change.get("OrderChangeType") == "BuyerRequestedChange":
                case = AfterSalesCase(
                    case_id=f"{order_id}:cancel",
                    kind="refund",
                    scenario="cancel_before_fulfilment",
                    status="requested",
                    order_id=order_id,
                    reason=(change.get("OrderChangeTrigger") or {}).get("ChangeReason") or None,
                )
                events.append(observation(self.name, message, "after_sales_case", f"amazon:{case.case_id}", case, at))
            return events
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"ORDER_CHANGE is not usable: {describe_error(exc)}") from exc

    def _listed(self, message: InboxMessage, order: Any) -> list[ObservedEntity]:
        """An order as getOrders gives it: its status as of ``LastUpdateDate``."""
        try:
            order_id = str(order["AmazonOrderId"])
            values: dict[str, Any] = {"order_id": order_id, "channel": "amazon"}
            values.update(amazon_maps().order_status[order["OrderStatus"]].model_dump(exclude_none=True))
            if order.get("PurchaseDate"):
                values["purchased_at"] = order["PurchaseDate"]
            at = order["LastUpdateDate"]
            return [observation(self.name, message, "order", f"amazon:{order_id}", Order(**values), at)]
        except PAYLOAD_ERRORS as exc:
            raise NormalisationError(self.name, f"a listed order is not usable: {describe_error(exc)}") from exc
