"""Before merging: resolve the customer an observation is about to one Aftersync customer id.

- a ``customer`` observation is re-keyed to the resolved customer id;
- an ``order`` that names its source customer gets ``customer_id`` set, and the customer it carries
  (name, e-mail, phone, source id) is merged into that customer's state as a *hint* of its own (see
  ``shared.state.merge.HINT_RANK``): it fills what the customer lacks and the first order's word stays,
  so a customer named on many orders (a guest placeholder, a B2B account) is not written by each;
- an after-sales case or a ticket that names its source customer (requester) gets ``customer_id``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.identity.resolver import IdentityIndex, likely_customer_id, resolve
from shared.models import AfterSalesCase, Customer, ObservedEntity, Order, Ticket
from shared.sources.base import event_id_for


@dataclass(frozen=True)
class Linked:
    observation: ObservedEntity
    hint: bool = False  # implied by an observation of another entity: merged as a hint


def source_customer_ref(event: ObservedEntity) -> str | None:
    """The source's own id of the customer an observation names, if any."""
    entity = event.entity
    if isinstance(entity, Customer):
        return entity.source_customer_id
    if isinstance(entity, Order):
        return entity.customer_source_id
    if isinstance(entity, AfterSalesCase | Ticket):
        return getattr(entity, "customer_ref", None) or getattr(entity, "requester_ref", None)
    return None


def expected_customer(event: ObservedEntity, salt: bytes) -> str | None:
    """The customer this observation most likely resolves to (to read ahead with, never relied on)."""
    reference = source_customer_ref(event)
    return likely_customer_id(event.source, reference, salt) if reference else None


def states_to_read(event: ObservedEntity, salt: bytes) -> list[tuple[str, str, str]]:
    """The states (tenant, type, id) sync will most likely merge this observation into: its own (a
    customer's is known only once resolved) and, for an order or a customer, the customer's."""
    keys: list[tuple[str, str, str]] = (
        [] if isinstance(event.entity, Customer) else [(event.tenant, event.entity_type, event.entity_id)]
    )
    customer = expected_customer(event, salt)
    if customer and isinstance(event.entity, Customer | Order):
        keys.append((event.tenant, "customer", customer))
    return keys


def link_customers(
    event: ObservedEntity,
    index_for: Callable[[str], IdentityIndex],
    salt_for: Callable[[str], bytes],
    default_region: str = "CN",
) -> list[ObservedEntity]:
    return [linked.observation for linked in linked_observations(event, index_for, salt_for, default_region)]


def linked_observations(
    event: ObservedEntity,
    index_for: Callable[[str], IdentityIndex],
    salt_for: Callable[[str], bytes],
    default_region: str = "CN",
) -> list[Linked]:
    entity = event.entity
    if isinstance(entity, Customer):
        resolution = resolve(entity, event.source, index_for(event.tenant), salt_for(event.tenant), default_region)
        return [Linked(event.model_copy(update={"entity_id": resolution.customer_id}))]
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
        return [Linked(order_event), Linked(customer_event, hint=True)]
    reference = getattr(entity, "customer_ref", None) or getattr(entity, "requester_ref", None)
    if isinstance(entity, AfterSalesCase | Ticket) and reference:
        resolution = resolve(
            Customer(source_customer_id=reference),
            event.source,
            index_for(event.tenant),
            salt_for(event.tenant),
            default_region,
        )
        return [
            Linked(
                event.model_copy(update={"entity": entity.model_copy(update={"customer_id": resolution.customer_id})})
            )
        ]
    return [Linked(event)]
