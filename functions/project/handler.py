"""State table stream consumer: the customer view (``shared.read.view``) kept up to date.

Each committed state becomes its entity's summary in its customer's view (and its selectors: serials,
tracking and order numbers), each audit record a timeline entry there, and a customer's absorption
into another moves its view into the survivor's. The view is derived data: a record that fails is
retried from the stream, and every write is idempotent (a summary only moves to a newer version).
"""

from __future__ import annotations

import base64
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
from shared.adapters.view_store import DynamoViewStore
from shared.constants import AUDIT_SK_PREFIX, STATE_SK, tenant_salt_secret_name
from shared.identity.resolver import salt_from_secret
from shared.observability import logger, metrics, tracer
from shared.read.view import (
    ENTITY_PREFIX,
    VIEW_ENTITY_TYPES,
    alias_item,
    customer_of,
    entity_item,
    order_entity_ids,
    selector_hmac,
    selectors,
    timeline_item,
    view_pk,
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
    """What the function touches: the states (read), the view (written), the identity index (read, for
    the canonical customer), the tenants' identity salts (selector HMACs)."""

    store: DynamoStateStore
    view: DynamoViewStore
    secrets: SecretReader


@cache
def ports() -> Ports:
    s = settings()
    store = DynamoStateStore(s.state_table)
    return Ports(store, DynamoViewStore(s.state_table, store.client), SecretReader(s.secrets_max_age_seconds))


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


class Projector:
    """One batch's projection: the states its records carry (the newest of each entity), the states and
    canonical customers it read, each read once."""

    def __init__(
        self,
        store: DynamoStateStore,
        view: DynamoViewStore,
        salt_for: Callable[[str], bytes],
        index_for: Callable[[str], DynamoIdentityIndex],
    ) -> None:
        self.store, self.view, self.salt_for, self.index_for = store, view, salt_for, index_for
        self.states: dict[Key, EntityState | None] = {}
        self.indexes: dict[str, DynamoIdentityIndex] = {}
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

    def canonical(self, tenant: str, customer_id: str) -> str:
        if tenant not in self.indexes:
            self.indexes[tenant] = self.index_for(tenant)
        return self.indexes[tenant].canonical(customer_id)

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

    def project_state(self, state: EntityState) -> None:
        if state.entity_type not in VIEW_ENTITY_TYPES:
            return
        own, customer, order_id = self.owner(state)
        if own is None or customer is None:
            return  # no customer: nothing to show it under
        item = entity_item(state.tenant, customer, state, order_id)
        if item is not None and self.view.put_entity(item):
            self.written += 1
        if own != customer:  # an absorbed customer's view points at the survivor's
            self.view.put_item(alias_item(state.tenant, own, customer))
        grouped: dict[tuple[str, str], list[str]] = {}
        for selector in selectors(state):
            grouped.setdefault((selector.kind, selector.value), []).append(selector.ref)
        if grouped:
            salt = self.salt_for(state.tenant)
            for (kind, value), refs in grouped.items():
                self.view.add_selector(state.tenant, kind, selector_hmac(salt, kind, value), customer, refs)
                self.written += 1

    def project_audit(self, audit: AuditRecord) -> None:
        if audit.entity_type not in VIEW_ENTITY_TYPES:
            return
        state = self.state(audit.tenant, audit.entity_type, audit.entity_id)
        if state is None:
            return
        _, customer, _ = self.owner(state)
        if customer is None:
            return
        self.view.put_item(timeline_item(audit.tenant, customer, audit))
        self.written += 1

    def project_absorption(self, tenant: str, alias: str, before: str | None, after: str | None) -> None:
        """A customer absorbed into another: its view's items are copied into the survivor's (a summary
        only where the survivor's is older) and it points there; split again: it points nowhere."""
        if after and after != before:
            survivor = self.canonical(tenant, after)
            for item in self.view.partition(tenant, alias):
                moved = {**item, "pk": {"S": view_pk(tenant, survivor)}}
                if item["sk"]["S"].startswith(ENTITY_PREFIX):
                    self.view.put_entity(moved)
                else:
                    self.view.put_item(moved)
                self.written += 1
            self.view.put_item(alias_item(tenant, alias, survivor))
        elif before and not after:
            self.view.remove_alias(tenant, alias)


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
    )
    failed: dict[str, BaseException] = {}
    parsed: list[tuple[str, tuple[str, Any] | None]] = []
    for record in records:
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", ""))
        try:
            item = parse(record)
        except Exception as exc:  # an image that does not read: this record fails
            failed[sequence] = exc
            continue
        if item is not None and item[0] == "state":
            projector.seen(item[1])
        parsed.append((sequence, item))
    for sequence, item in parsed:
        if item is None:
            continue
        try:
            kind, value = item
            if kind == "state":
                projector.project_state(value)
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
