"""State table stream consumer: the customer view (``shared.read.view``, in the view table) kept up to date.

Each committed state becomes its entity's summary in its owner's view (and its selectors: serials,
tracking and order numbers, a card's identity keys), each audit record a timeline entry there. Where an
entity is is decided by its owner pointer (``shared.adapters.view_store``), and a live ``E#`` item is
only ever in the view the pointer names. So a state that leaves its entity where it is (most of them:
an order's update) costs one conditional PutItem of its summary, no read first: the summary there is
live, older, and names the same selectors, so the pointer names that view. Any other state reads the
pointer (and the summary where it points) and decides: older than what is projected, nothing; the
same view, its summary (and its selectors if they changed); a first placement, the pointer then the
summary; a move, the pointer, a tombstone in the former view and the summary in the new one in one
transaction, so a late older state changes nothing and an order that changed hands leaves the former
customer's view (its timeline entries and its shipments and cases follow). Selectors are written after
the summary, each conditional on the entity's version (a projection that lost a race never points one
back); a duplicate of a state projected already writes them again (a crash between the summary and its
selectors is finished by the stream's retry). A customer absorbed into another, or split off again,
has every entity of the views concerned projected again: each lands in its canonical customer's view.
The view is derived data: a record that fails is retried from the stream, and every write is
idempotent. ``aftersync lookup rebuild`` (``ops.view_rebuild``) projects the stored states with this
same code.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.secrets import SecretReader
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.view_store import DynamoViewStore, PointerMoved
from shared.constants import AUDIT_SK_PREFIX, STATE_SK, tenant_salt_secret_name
from shared.identity.resolver import salt_from_secret
from shared.observability import logger, metrics, tracer
from shared.read.view import (
    ENTITY_PREFIX,
    IDENTITY_SELECTOR,
    VIEW_ENTITY_TYPES,
    Owner,
    alias_item,
    customer_of,
    entity_item,
    identity_digests,
    is_live,
    order_entity_ids,
    selector_hmac,
    selector_pk,
    selector_signature,
    selectors,
    timeline_item,
)
from shared.settings import ProjectSettings
from shared.state.audit import AuditRecord
from shared.state.merge import EntityState
from shared.state.stored import state_from_item

processor = BatchProcessor(event_type=EventType.DynamoDBStreams, logger=logger)  # type: ignore[arg-type]
PROFILE_SK = "PROFILE"


@cache
def settings() -> ProjectSettings:
    return ProjectSettings.from_env()


@dataclass(frozen=True)
class Ports:
    """What the function touches: the states (read, state table), the view (written, its own table), the
    identity index (read, state table: the canonical customer), the tenants' identity salts (selector
    HMACs)."""

    store: DynamoStateStore
    view: DynamoViewStore
    secrets: SecretReader


@cache
def ports() -> Ports:
    s = settings()
    store = DynamoStateStore(s.state_table)
    return Ports(store, DynamoViewStore(s.view_table, store.client), SecretReader(s.secrets_max_age_seconds))


def tenant_salt(tenant: str) -> bytes:
    name = tenant_salt_secret_name(settings().secrets_prefix, tenant)
    return salt_from_secret(ports().secrets.get_json(name), name)


def _low_level(image: dict[str, Any] | None) -> dict[str, Any]:
    """A stream image as a low-level item: Lambda's event carries binary values in base64, the sandbox's
    poller (boto3) as bytes."""
    item = dict(image or {})
    for name, value in item.items():
        if isinstance(value, dict) and isinstance(value.get("B"), str):
            item[name] = {"B": base64.b64decode(value["B"])}
    return item


Key = tuple[str, str, str]
PLACE_ATTEMPTS = 5


@dataclass(frozen=True)
class Placement:
    """Where a state puts its entity: the customer it names (``own``), the view (its canonical
    customer; None: no customer), the ``E#`` item and the selectors ``(pk, refs)`` that name it."""

    own: str | None
    customer: str | None
    item: dict[str, Any] | None
    selectors: tuple[tuple[str, tuple[str, ...]], ...]


class Projector:
    """One batch's projection: the states its records carry (the newest of each entity), the states and
    canonical customers it read, each read once."""

    def __init__(
        self,
        store: DynamoStateStore,
        view: DynamoViewStore,
        salt_for: Callable[[str], bytes],
        index_for: Callable[[str], DynamoIdentityIndex],
        default_region: str = "CN",
    ) -> None:
        self.store, self.view, self.salt_for, self.index_for = store, view, salt_for, index_for
        self.default_region = default_region
        self.states: dict[Key, EntityState | None] = {}
        self.indexes: dict[str, DynamoIdentityIndex] = {}
        self.pointers: dict[Key, Owner | None] = {}
        self.homes: dict[Key, str | None] = {}  # where this batch's projections left each entity
        self.written = 0

    def seen(self, state: EntityState) -> None:
        key = (state.tenant, state.entity_type, state.entity_id)
        known = self.states.get(key)
        if known is None or known.version < state.version:
            self.states[key] = state

    def state(self, tenant: str, entity_type: str, entity_id: str) -> EntityState | None:
        key = (tenant, entity_type, entity_id)
        if key not in self.states:
            self.states[key], _ = self.store.load(tenant, entity_type, entity_id)
        return self.states[key]

    def order_of(self, state: EntityState) -> EntityState | None:
        """The order a case or a shipment names, if synced (its possible ids read in one call)."""
        candidates = [(state.tenant, "order", i) for i in order_entity_ids(state)]
        unread = [k for k in candidates if k not in self.states]
        if unread:
            found = self.store.load_states(unread)
            for key in unread:
                self.states[key] = found.get(key)
        return next((self.states[k] for k in candidates if self.states[k] is not None), None)

    def index(self, tenant: str) -> DynamoIdentityIndex:
        if tenant not in self.indexes:
            self.indexes[tenant] = self.index_for(tenant)
        return self.indexes[tenant]

    def canonical(self, tenant: str, customer_id: str) -> str:
        return self.index(tenant).canonical(customer_id)

    def owner(self, state: EntityState) -> tuple[str | None, str | None, str | None]:
        """(the customer the state names, its canonical customer, the order's entity id if it has one)."""
        own = customer_of(state)
        order_id = None
        if state.entity_type in ("shipment", "after_sales_case"):
            order = self.order_of(state)
            if order is not None:
                order_id = order.entity_id
                own = own or customer_of(order)
        if own is None:
            return None, None, order_id
        return own, self.canonical(state.tenant, own), order_id

    def expect(self, state: EntityState) -> None:
        """Read the canonical id of the customer this state names with the batch's first identity read."""
        own = customer_of(state)
        if own is not None:
            self.index(state.tenant).expect(own)

    def expected(self, state: EntityState) -> Placement:
        """Where a state puts its entity: the customer's view, its ``E#`` item and its selectors."""
        own, customer, order_id = self.owner(state)
        grouped: dict[str, list[str]] = {}  # (an entity with no customer: its refs point nowhere)
        found = selectors(state)
        salt = self.salt_for(state.tenant) if found or state.entity_type == "customer" else b""
        for selector in found:
            pk = selector_pk(state.tenant, selector.kind, selector_hmac(salt, selector.kind, selector.value))
            grouped.setdefault(pk, []).append(selector.ref)
        for digest in identity_digests(state, salt, self.default_region):
            grouped.setdefault(selector_pk(state.tenant, IDENTITY_SELECTOR, digest), []).append(
                f"customer#{state.entity_id}"
            )
        found_selectors = tuple((pk, tuple(refs)) for pk, refs in grouped.items())
        sel = selector_signature(found_selectors)
        item = entity_item(state.tenant, customer, state, order_id, sel) if customer else None
        return Placement(own, customer, item, found_selectors)

    def pointer(self, tenant: str, entity_type: str, entity_id: str, fresh: bool = False) -> Owner | None:
        key = (tenant, entity_type, entity_id)
        if fresh or key not in self.pointers:
            self.pointers[key] = self.view.owner(tenant, entity_type, entity_id)
        return self.pointers[key]

    def project_state(self, state: EntityState, same_place_likely: bool = False) -> bool:
        """Put the entity where this state says, unless a newer state was projected already (then nothing
        changes). ``same_place_likely``: try the same-owner write first (a stream record of an update;
        a new entity's or a re-projection's would only pay for a write refused). True: written."""
        if state.entity_type not in VIEW_ENTITY_TYPES:
            return False
        placement = self.expected(state)
        key = (state.tenant, state.entity_type, state.entity_id)
        if same_place_likely and placement.customer and placement.item and self.view.refresh(placement.item):
            self.written += 1  # the pointer names this view, the selectors are as they were
            self.homes[key] = placement.customer
            return True
        for _ in range(PLACE_ATTEMPTS):
            try:
                written = self._place(state, placement)
                pointer = self.pointers.get(key)
                self.homes[key] = pointer.customer_id if pointer else None
            except PointerMoved:
                continue  # another projection of this entity got there first: decide again
            break
        else:
            raise PointerMoved(f"{state.entity_type} {state.entity_id}'s owner kept changing; retried from the stream")
        if written and placement.own and placement.customer and placement.own != placement.customer:
            self.view.put_item(alias_item(state.tenant, placement.own, placement.customer))  # the alias points on
        self.settle(*key)
        return written

    def _place(self, state: EntityState, placement: Placement) -> bool:
        """One decision on what the pointer and the summary where it points say (module docstring)."""
        tenant, entity_type, entity_id = key = (state.tenant, state.entity_type, state.entity_id)
        customer, version = placement.customer, state.version
        read = self.pointer(*key, fresh=True)
        if read is None:
            if customer is None or placement.item is None:
                return False  # no customer, never shown: nothing to show it under
            self.pointers[key] = self.view.claim(*key, version, customer)
            self.view.put_entity(placement.item)
            self._selectors(state, placement)
            self.written += 2
            return True
        if read.version > version:
            return False  # a newer state moved it: this one is late
        current = self.view.entity(tenant, read.customer_id, entity_type, entity_id) if read.customer_id else None
        live = current if is_live(current) else None
        projected = max(read.version, int(live["version"]["N"]) if live else 0)
        if read.customer_id == customer:
            if projected > version:
                return False  # a newer state was projected here: this one is late
            if customer is None:
                if projected < version:
                    self.view.keep_version(*key, read, version)
                    self.written += 1
                self._selectors(state, placement)
                return projected < version
            assert placement.item is not None  # (every type the view shows has a summary)
            if live is not None and projected == version and live.get("sel") == placement.item.get("sel"):
                self._selectors(state, placement)  # a duplicate: finish what a crash may have cut short
                return False
            self.view.put_entity(placement.item)
            self._selectors(state, placement)
            self.written += 1
            return True
        if projected > version:
            return False  # a newer state was projected where it is: this one is late
        self.pointers[key] = self.view.place(*key, version, customer, read, current, placement.item)
        self._selectors(state, placement)
        self.written += 2 + (placement.item is not None)
        return True

    def _selectors(self, state: EntityState, placement: Placement) -> None:
        self.written += self.view.point_selectors(
            state.entity_type, state.entity_id, state.version, placement.customer, placement.selectors
        )

    def settle(self, tenant: str, entity_type: str, entity_id: str) -> None:
        """Finish a move: the entity's timeline entries out of every former view into its owner's, and an
        order's shipments and cases there projected again (they follow their order); then the pointer
        forgets the former view. Safe to repeat (a retried record finishes what a crash left)."""
        pointer = self.pointers.get((tenant, entity_type, entity_id))
        if pointer is None or not pointer.former:
            return
        for former in sorted(pointer.former):
            if former != pointer.customer_id:
                entries = self.view.timeline_of(tenant, former, entity_type, entity_id)
                self.view.move(entries, tenant, pointer.customer_id)
                self.written += len(entries)
                if entity_type == "order":
                    for dependent in self._dependents(tenant, former, entity_id):
                        self.project_state(dependent)
            self.view.settled(tenant, entity_type, entity_id, former)
        self.pointers[(tenant, entity_type, entity_id)] = Owner(pointer.customer_id, pointer.version)

    def _dependents(self, tenant: str, customer_id: str, order_id: str) -> list[EntityState]:
        """The shipments and cases in a view that name this order (they are where the order is)."""
        keys = []
        for item in self.view.entities(tenant, customer_id):
            entity_type, _, entity_id = item["sk"]["S"][len(ENTITY_PREFIX) :].partition("#")
            if (
                entity_type in ("shipment", "after_sales_case")
                and json.loads(item["doc"]["S"]).get("order_id") == order_id
            ):
                keys.append((tenant, entity_type, entity_id))
        found = self.store.load_states(keys) if keys else {}
        return [found[k] for k in keys if k in found]

    def project_audit(self, audit: AuditRecord) -> None:
        """A timeline entry in the view the entity is in (its pointer's; before its first projection, the
        one its state names)."""
        if audit.entity_type not in VIEW_ENTITY_TYPES:
            return
        key = (audit.tenant, audit.entity_type, audit.entity_id)
        if key in self.homes:
            customer = self.homes[key]  # where this batch's projection of its state left it
        elif (pointer := self.pointer(*key)) is not None:
            customer = pointer.customer_id
        else:
            state = self.state(audit.tenant, audit.entity_type, audit.entity_id)
            customer = self.owner(state)[1] if state is not None else None
        if customer is None:
            return
        self.view.put_item(timeline_item(audit.tenant, customer, audit))
        self.written += 1

    def reproject_view(self, tenant: str, customer_id: str) -> int:
        """Project again every entity a view holds (each lands in its canonical customer's view); how
        many moved or were rewritten."""
        keys = []
        for item in self.view.entities(tenant, customer_id):
            entity_type, _, entity_id = item["sk"]["S"][len(ENTITY_PREFIX) :].partition("#")
            if entity_type in VIEW_ENTITY_TYPES:
                keys.append((tenant, entity_type, entity_id))
        found = self.store.load_states(keys) if keys else {}
        for key in keys:
            if key in found:
                self.states[key] = found[key]
        return sum(self.project_state(found[k]) for k in keys if k in found)

    def project_absorption(self, tenant: str, alias: str, before: str | None, after: str | None) -> None:
        """A customer absorbed into another: the alias points to the survivor and every entity of its
        view is projected again (into the survivor's). Split off again: the alias points nowhere and
        every entity of the survivor's view is projected again (the split customer's go back)."""
        self.index(tenant).forget()  # the absorption is news: read the profiles again
        if after and after != before:
            survivor = self.canonical(tenant, after)
            self.view.put_item(alias_item(tenant, alias, survivor))
            self.reproject_view(tenant, alias)
        elif before and not after:
            self.view.remove_alias(tenant, alias)
            self.reproject_view(tenant, self.canonical(tenant, before))


def parse(record: dict[str, Any]) -> tuple[str, Any] | None:
    """What a stream record carries for the view: ("state", EntityState), ("audit", AuditRecord),
    ("profile", (tenant, customer, alias_of before, alias_of after)), or None."""
    stream = record.get("dynamodb") or {}
    sk = str(stream.get("Keys", {}).get("sk", {}).get("S", ""))
    event = record.get("eventName")
    if sk == STATE_SK and event in ("INSERT", "MODIFY"):
        return "state", state_from_item(_low_level(stream.get("NewImage")))
    if sk.startswith(AUDIT_SK_PREFIX) and event == "INSERT":
        return "audit", AuditRecord.model_validate_json(stream["NewImage"]["record"]["S"])
    if sk == PROFILE_SK and event in ("INSERT", "MODIFY"):
        pk = str(stream["Keys"]["pk"]["S"])
        tenant, _, customer = pk.partition("#idprofile#")
        before = (stream.get("OldImage") or {}).get("alias_of", {}).get("S")
        after = (stream.get("NewImage") or {}).get("alias_of", {}).get("S")
        return ("profile", (tenant, customer, before, after)) if customer and before != after else None
    return None


def project_batch(records: list[dict[str, Any]]) -> dict[str, BaseException]:
    """Project a batch; returns the records that failed (by sequence number) with their error."""
    p = ports()
    projector = Projector(
        p.store,
        p.view,
        cache(tenant_salt),
        lambda tenant: DynamoIdentityIndex(settings().state_table, tenant, p.store.client),
        settings().default_phone_region,
    )
    failed: dict[str, BaseException] = {}
    parsed: list[tuple[str, tuple[str, Any] | None, bool]] = []
    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            item = parse(record)
        except Exception as exc:  # an image that does not read: this record fails
            failed[sequence] = exc
            continue
        if item is not None and item[0] == "state":
            projector.seen(item[1])
            projector.expect(item[1])  # every state's customer read in one call, with the first
        parsed.append((sequence, item, record.get("eventName") == "MODIFY"))
    # audit records last: by then the batch's states are where they belong (and it is known where)
    parsed.sort(key=lambda entry: entry[1] is not None and entry[1][0] == "audit")
    for sequence, item, update in parsed:
        if item is None:
            continue
        try:
            kind, value = item
            if kind == "state":
                projector.project_state(value, same_place_likely=update)
            elif kind == "audit":
                projector.project_audit(value)
            else:
                projector.project_absorption(*value)
        except Exception as exc:
            logger.warning("projection failed", extra={"kind": item[0], "error": type(exc).__name__})
            failed[sequence] = exc
    metrics.add_metric(name="ViewItemsWritten", unit=MetricUnit.Count, value=projector.written)
    return failed


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    failed = project_batch(list(event.get("Records", [])))

    def verdict(record: Any) -> None:
        """The outcome decided for the batch, reported through the processor (batch item failures)."""
        sequence = str(record.dynamodb.sequence_number if record.dynamodb else "")
        if sequence in failed:
            raise failed[sequence]

    return process_partial_response(event=event, record_handler=verdict, processor=processor, context=context)
