"""Before merging: resolve the customer an observation is about to one Aftersync customer id.

- a ``customer`` observation is re-keyed to the resolved customer id;
- an ``order`` that names its source customer gets ``customer_id`` set, and the customer it carries
  (name, e-mail, phone, source id) is merged into that customer's state as an observation of its own;
- an after-sales case or a ticket that names its source customer (requester) gets ``customer_id``.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.identity.resolver import IdentityIndex, resolve
from shared.models import AfterSalesCase, Customer, ObservedEntity, Order, Ticket
from shared.sources.base import event_id_for


def link_customers(
    event: ObservedEntity,
    index_for: Callable[[str], IdentityIndex],
    salt_for: Callable[[str], bytes],
    default_region: str = "CN",
) -> list[ObservedEntity]:
    entity = event.entity
    if isinstance(entity, Customer):
        resolution = resolve(entity, event.source, index_for(event.tenant), salt_for(event.tenant), default_region)
        return [event.model_copy(update={"entity_id": resolution.customer_id})]
    if isinstance(entity, Order) and entity.customer_source_id:
        customer = Customer(
            source_customer_id=entity.customer_source_id,
            name=entity.customer_name,
            email=entity.customer_email,
            phone=entity.customer_phone,
        )
        resolution = resolve(customer, event.source, index_for(event.tenant), salt_for(event.tenant), default_region)
        order_event = event.model_copy(
            update={"entity": entity.model_copy(update={"customer_id": resolution.customer_id})}
        )
        customer_event = event.model_copy(
            update={
                "event_id": event_id_for(event.event_id, "customer", resolution.customer_id),
                "entity_type": "customer",
                "entity_id": resolution.customer_id,
                "entity": customer,
            }
        )
        return [order_event, customer_event]
    reference = getattr(entity, "customer_ref", None) or getattr(entity, "requester_ref", None)
    if isinstance(entity, AfterSalesCase | Ticket) and reference:
        resolution = resolve(
            Customer(source_customer_id=reference),
            event.source,
            index_for(event.tenant),
            salt_for(event.tenant),
            default_region,
        )
        return [event.model_copy(update={"entity": entity.model_copy(update={"customer_id": resolution.customer_id})})]
    return [event]
