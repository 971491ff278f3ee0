"""The customer view: what an agent sees of one customer, derived from the merged states (pure).

Items in the view table (the projector writes them, ``shared.adapters.view_store``; the identity index's
key items a lookup reads first are the state table's):

- ``{tenant}#view#{customer_id}`` / ``E#{entity_type}#{entity_id}``: ``doc`` (a JSON summary of the
  entity), ``version`` (the state's: an older version never overwrites a newer one) and ``sel`` (a
  digest of the selectors that state names, ``selector_signature``: a later state naming the same ones
  rewrites the summary alone). A *live* ``E#`` item is in the view its owner pointer names, and only
  there; when the entity moves out, its item becomes a **tombstone** (``tombstone``, the moving state's
  ``version``, ``expires_at``: the table's TTL removes it a day later) that stops a projection still
  in flight from putting the entity back; the lookup skips tombstones;
- ``{tenant}#view#{customer_id}`` / ``T#{occurred_at}#{entity_type}#{entity_id}#{version:012d}``: one
  timeline entry per audit record (``occurred_at`` fixed-width UTC, so the keys sort by time);
- ``{tenant}#view#{alias}`` / ``E#alias``: the customer this one was absorbed into (``doc``:
  ``{"customer_id": ...}``): a lookup that lands on the alias follows it;
- ``{tenant}#viewown#{entity_type}#{entity_id}`` / ``OWN``: the entity's owner pointer: the customer
  whose view holds its ``E#`` and ``T#`` items (``customer_id``; none when the entity has no customer),
  the state ``version`` that put it there (a later state that leaves it where it is rewrites only its
  ``E#`` item; of an entity with no customer, the pointer's ``version`` is its latest state's), and
  ``former``: views it moved out of whose timeline entries are still to be moved (empty once settled).
  A move changes the pointer, the former owner's ``E#`` item (to a tombstone) and the new owner's in
  one transaction conditional on both as read, so an entity is in one view at most and an older state,
  however late, never moves it back;
- ``{tenant}#sel#{kind}#{hmac}`` / ``SEL``: what a serial number, a tracking number or an order number
  points to: ``refs`` (what it names) and, per ref, its owner's view in ``o:{ref}`` (an order moved to
  another customer answers for that one only; two shops' order #1001 are two customers'), with the
  version of the entity's state that wrote them in ``v:{entity_type}#{entity_id}`` (an older state's
  write is refused: a projection that lost a race never points a selector back). The value
  is kept only as a tenant-salted HMAC, like the identity index's keys. Items of an older layout
  carry ``customers`` (every customer seen): read while a ref has no owner yet (``aftersync lookup
  rebuild`` gives every ref one);
- ``{tenant}#sel#id#{hash}`` / ``SEL``: an identity key of a customer's card (its phone, e-mail, WeCom
  id; ``hash`` as the identity index's key item has it) -> ``o:customer#{id}``: the view that customer
  is in. A lookup reads it with the identity key item, in the same call, so an absorbed customer's
  phone leads straight to the survivor's view.

Summaries are built from the state's merged fields; a field the state lacks is null. Values are whole:
masking by the reader's role happens when they are read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard

from shared.identity.resolver import IdentityKey, hash_key, normalise_email, normalise_phone
from shared.state.audit import AuditRecord
from shared.state.merge import LOG_SUFFIX, EntityState
from shared.state.policy import default_policy

VIEW_ENTITY_TYPES = ("customer", "order", "after_sales_case", "shipment", "ticket")
SelectorKind = Literal["serial", "tracking", "order"]
SELECTOR_KINDS: tuple[SelectorKind, ...] = ("serial", "tracking", "order")
ENTITY_PREFIX = "E#"
TIMELINE_PREFIX = "T#"
ALIAS_SK = "E#alias"
SELECTOR_SK = "SEL"
OWNER_SK = "OWN"
REF_OWNER_PREFIX = "o:"  # a selector's attribute naming one ref's owner: o:order#shopify:1
REF_VERSION_PREFIX = "v:"  # a selector's attribute: the version of the entity's state that wrote it: v:order#shopify:1
TOMBSTONE = "tombstone"  # an E# item's attribute: the entity moved out of this view
TOMBSTONE_SECONDS = 86_400  # how long a tombstone stays (TTL): far longer than a projection in flight
TTL_ATTRIBUTE = "expires_at"  # the state table's TTL attribute (infra/constructs/storage.py)
IDENTITY_SELECTOR = "id"
PER_SOURCE_CUSTOMER_ID = "source_customer_id."


def view_pk(tenant: str, customer_id: str) -> str:
    return f"{tenant}#view#{customer_id}"


def entity_sk(entity_type: str, entity_id: str) -> str:
    return f"{ENTITY_PREFIX}{entity_type}#{entity_id}"


def utc_key_time(occurred_at: str) -> str:
    """An ISO-8601 time as fixed-width UTC with microseconds (``2026-11-21T02:31:02.000000Z``): sorts as text."""
    parsed = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timeline_sk(occurred_at: str, entity_type: str, entity_id: str, version: int) -> str:
    return f"{TIMELINE_PREFIX}{utc_key_time(occurred_at)}#{entity_type}#{entity_id}#{version:012d}"


def selector_pk(tenant: str, kind: str, digest: str) -> str:
    return f"{tenant}#sel#{kind}#{digest}"


def owner_pk(tenant: str, entity_type: str, entity_id: str) -> str:
    return f"{tenant}#viewown#{entity_type}#{entity_id}"


@dataclass(frozen=True)
class Owner:
    """An entity's owner pointer as read: whose view holds it, from which state version, and the views
    it moved out of whose timeline is still to be moved."""

    customer_id: str | None
    version: int
    former: frozenset[str] = frozenset()


def owner_from_item(item: dict[str, Any] | None) -> Owner | None:
    if not item:
        return None
    return Owner(
        customer_id=item["customer_id"]["S"] if "customer_id" in item else None,
        version=int(item["version"]["N"]),
        former=frozenset(item.get("former", {}).get("SS", [])),
    )


def is_live(item: dict[str, Any] | None) -> TypeGuard[dict[str, Any]]:
    """Whether an ``E#`` item is an entity's summary (not missing, not a tombstone)."""
    return item is not None and TOMBSTONE not in item


def selector_signature(selectors: Sequence[tuple[str, Sequence[str]]]) -> str:
    """A short digest of the selectors ``(pk, refs)`` a state names (the ``E#`` item's ``sel``): equal
    for two states whose selectors are the same, so the later one need not write them again."""
    canonical = sorted((pk, sorted(set(refs))) for pk, refs in selectors)
    return hashlib.sha256(dumps(canonical).encode()).hexdigest()[:24]


def selector_owners(item: dict[str, Any]) -> dict[str, str]:
    """A selector item's refs and the customer whose view each is in (``o:{ref}``)."""
    return {k[len(REF_OWNER_PREFIX) :]: v["S"] for k, v in item.items() if k.startswith(REF_OWNER_PREFIX)}


def selector_customers(item: dict[str, Any]) -> list[str]:
    """The customers a selector answers for: its refs' owners; while a ref of an item of the older layout
    has no owner yet, also every customer that item was seen with (``customers``)."""
    owners = selector_owners(item)
    found = set(owners.values())
    if any(ref not in owners for ref in item.get("refs", {}).get("SS", [])):
        found |= set(item.get("customers", {}).get("SS", []))
    return sorted(found)


def timeline_entity(sk: str) -> tuple[str, str, int] | None:
    """(entity type, entity id, version) of a ``T#`` key; None for another key."""
    if not sk.startswith(TIMELINE_PREFIX):
        return None
    _, _, rest = sk[len(TIMELINE_PREFIX) :].partition("#")
    entity_type, _, rest = rest.partition("#")
    entity_id, _, version = rest.rpartition("#")
    return (entity_type, entity_id, int(version)) if entity_type and entity_id and version.isdigit() else None


# --- selectors -------------------------------------------------------------------------------------
def normalise_selector(kind: str, value: str | None) -> str | None:
    """The form a selector value is keyed by; ``None`` for nothing usable.

    serial / tracking: stripped, upper-case, spaces removed (``sn 123 abc`` → ``SN123ABC``);
    order: the number as the customer knows it (``#1001`` → ``1001``) or ``<source>:<id>``, stripped,
    case-folded, a leading ``#`` dropped."""
    if value is None:
        return None
    if kind in ("serial", "tracking"):
        normalised = re.sub(r"\s+", "", value).upper()
    elif kind == "order":
        normalised = value.strip().casefold()
        normalised = normalised[1:].strip() if normalised.startswith("#") else normalised
    else:
        raise ValueError(f"unknown selector kind {kind!r}")
    return normalised or None


def selector_hmac(salt: bytes, kind: str, normalised: str) -> str:
    """HMAC-SHA256 (hex) of ``"{kind}:{normalised value}"`` with the tenant's identity salt."""
    return hmac.new(salt, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Selector:
    kind: SelectorKind
    value: str  # normalised
    ref: str  # what it points to: "order#shopify:123", "order#shopify:123#line:0", "shipment#zto:7531"


def selectors(state: EntityState) -> list[Selector]:
    """The selectors an entity answers to: an order by its number and its own id, each of its lines
    with a serial by the serial; a shipment by its tracking number."""
    fields = state.fields
    found: list[Selector] = []

    def add(kind: SelectorKind, raw: Any, ref: str) -> None:
        value = normalise_selector(kind, str(raw)) if raw not in (None, "") else None
        if value is not None:
            found.append(Selector(kind, value, ref))

    if state.entity_type == "order":
        ref = f"order#{state.entity_id}"
        add("order", fields.get("order_number"), ref)
        add("order", state.entity_id, ref)
        for index, line in enumerate(_lines(fields)):
            add("serial", line.get("serial_number"), f"{ref}#line:{index}")
    elif state.entity_type == "shipment":
        add("tracking", fields.get("tracking_number"), f"shipment#{state.entity_id}")
    return list(dict.fromkeys(found))


def identity_digests(state: EntityState, salt: bytes, default_region: str) -> list[str]:
    """The identity index's key hashes of a customer card's phone, e-mail and WeCom id (normalised as
    identity does), for its ``{tenant}#sel#id#{hash}`` items; none for another entity."""
    if state.entity_type != "customer":
        return []
    f = state.fields
    keys = []
    if phone := normalise_phone(_text(f.get("phone")), default_region):
        keys.append(IdentityKey("phone", phone))
    if email := normalise_email(_text(f.get("email"))):
        keys.append(IdentityKey("email", email))
    if wecom := (_text(f.get("wecom_external_user_id")) or "").strip():
        keys.append(IdentityKey("wecom", wecom))
    return list(dict.fromkeys(hash_key(salt, key) for key in keys))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- whose view an entity is in ----------------------------------------------------------------------
def customer_of(state: EntityState) -> str | None:
    """The customer an entity belongs to as its own state says (a shipment's is its order's: ``None``
    here; an after-sales case without one falls back to its order's too)."""
    if state.entity_type == "customer":
        return state.entity_id
    if state.entity_type in ("order", "after_sales_case", "ticket"):
        customer = state.fields.get("customer_id")
        return str(customer) if customer else None
    return None


def order_entity_ids(state: EntityState) -> list[str]:
    """The entity ids the order an after-sales case or a shipment names may have, most likely first.

    A source reports its own order id (Youzan's ``tid``); the order's entity id carries the source's
    prefix (``youzan:E2026…``): the case's own prefix, or the source that set the shipment's order id;
    an id that is already qualified is tried as it is too."""
    order_id = state.fields.get("order_id")
    if not order_id:
        return []
    order_id = str(order_id)
    candidates = []
    if state.entity_type == "shipment":
        clock = state.clocks.get("order_id")
        if clock is not None:
            candidates.append(f"{clock.source}:{order_id}")
    else:
        candidates.append(f"{state.entity_id.split(':', 1)[0]}:{order_id}")
    if ":" in order_id:
        candidates.append(order_id)
    return list(dict.fromkeys(candidates))


# --- summaries -----------------------------------------------------------------------------------------
def summary(state: EntityState, order_id: str | None = None) -> dict[str, Any] | None:
    """The ``doc`` of an entity's ``E#`` item; ``None`` for a type the view does not show (stock).
    ``order_id``: the order's entity id when known (a shipment's or a case's)."""
    build = _SUMMARIES.get(state.entity_type)
    return build(state, order_id) if build else None


def _customer(state: EntityState, _: str | None) -> dict[str, Any]:
    f = state.fields
    return {
        "customer_id": state.entity_id,
        "name": f.get("name"),
        "phone": f.get("phone"),
        "email": f.get("email"),
        "wecom_external_user_id": f.get("wecom_external_user_id"),
        "sources": sorted(k[len(PER_SOURCE_CUSTOMER_ID) :] for k in f if k.startswith(PER_SOURCE_CUSTOMER_ID)),
    }


def _lines(fields: dict[str, Any]) -> list[dict[str, Any]]:
    lines = fields.get("lines")
    return [line for line in lines if isinstance(line, dict)] if isinstance(lines, list) else []


def _money(value: Any) -> tuple[Any, Any]:
    return (value.get("amount"), value.get("currency")) if isinstance(value, dict) else (None, None)


def _order(state: EntityState, _: str | None) -> dict[str, Any]:
    f = state.fields
    total, currency = _money(f.get("total"))
    return {
        "order_id": state.entity_id,
        "source": state.entity_id.split(":", 1)[0] if ":" in state.entity_id else f.get("channel"),
        "number": f.get("order_number"),
        "status": f.get("status"),
        "financial_status": f.get("payment_status"),
        "fulfillment_status": f.get("fulfillment_status"),
        "total": total,
        "currency": currency,
        "created_at": f.get("purchased_at"),
        "lines": [
            {
                "sku": line.get("sku"),
                "title": line.get("title"),
                "quantity": line.get("quantity"),
                "serial": line.get("serial_number"),
                "warranty_months": line.get("warranty_months"),
                "warranty_ends_on": line.get("warranty_ends_on"),
                "warranty_status": line.get("warranty_status"),
            }
            for line in _lines(f)
        ],
    }


def status_path(state: EntityState) -> list[str]:
    """The statuses an after-sales case went through so far, in order (transitions the state machine
    refused left out, as the merge leaves them out of ``status``)."""
    machine = default_policy().for_type(state.entity_type).state_machine
    if machine is None:
        return [state.fields["status"]] if state.fields.get("status") else []
    prefix = f"{machine.field}{LOG_SUFFIX}"
    path: list[str] = []
    current: str | None = None
    for key in sorted(k for k in state.fields if k.startswith(prefix)):
        entry = state.fields[key]
        value, source = entry.get("value"), entry.get("source")
        if machine.allows(current, value) or source in machine.authoritative_sources:
            current = value
            if not path or path[-1] != value:
                path.append(value)
    return path


def _case(state: EntityState, order_id: str | None) -> dict[str, Any]:
    f = state.fields
    amount, currency = _money(f.get("amount"))
    candidates = order_entity_ids(state)
    return {
        "case_id": state.entity_id,
        "kind": f.get("kind"),
        "status": f.get("status"),
        "status_path": status_path(state),
        "amount": amount,
        "currency": currency,
        "order_id": order_id or (candidates[0] if candidates else None),
    }


def _shipment(state: EntityState, order_id: str | None) -> dict[str, Any]:
    f = state.fields
    checkpoints = [c for c in f.get("checkpoints") or [] if isinstance(c, dict)]
    last = max(checkpoints, key=lambda c: str(c.get("at") or ""), default=None)
    candidates = order_entity_ids(state)
    return {
        "shipment_id": state.entity_id,
        "carrier": f.get("carrier"),
        "tracking_number": f.get("tracking_number"),
        "status": f.get("status"),
        "last_checkpoint": (
            {"time": last.get("at"), "location": last.get("location"), "message": last.get("message")} if last else None
        ),
        "order_id": order_id or (candidates[0] if candidates else None),
    }


def _ticket(state: EntityState, _: str | None) -> dict[str, Any]:
    f = state.fields
    return {
        "ticket_id": state.entity_id,
        "status": f.get("status"),
        "assignee": f.get("assignee"),
        "priority": f.get("priority"),
        "subject": f.get("subject"),
    }


_SUMMARIES = {
    "customer": _customer,
    "order": _order,
    "after_sales_case": _case,
    "shipment": _shipment,
    "ticket": _ticket,
}


def timeline_doc(audit: AuditRecord) -> dict[str, Any]:
    return {
        "entity_type": audit.entity_type,
        "entity_id": audit.entity_id,
        "version": audit.version,
        "source": audit.source,
        "occurred_at": audit.occurred_at,
        # a state machine's log entries ("status_log.<time>|<event id>") are the merge's bookkeeping: the
        # status they decided is in the same record as its own change
        "changes": [
            {"field": c["field"], "after": c.get("after")} for c in audit.changes if LOG_SUFFIX not in c["field"]
        ],
    }


# --- items ---------------------------------------------------------------------------------------------
def dumps(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entity_item(
    tenant: str, customer_id: str, state: EntityState, order_id: str | None = None, sel: str | None = None
) -> dict[str, Any] | None:
    """The ``E#`` item of an entity in its customer's view (a DynamoDB low-level item), or ``None``;
    ``sel``: the signature of the selectors the state names."""
    doc = summary(state, order_id)
    if doc is None:
        return None
    item = {
        "pk": {"S": view_pk(tenant, customer_id)},
        "sk": {"S": entity_sk(state.entity_type, state.entity_id)},
        "doc": {"S": dumps(doc)},
        "version": {"N": str(state.version)},
    }
    if sel is not None:
        item["sel"] = {"S": sel}
    return item


def tombstone_item(
    tenant: str, customer_id: str, entity_type: str, entity_id: str, version: int, now: int
) -> dict[str, Any]:
    """What is left of an entity's ``E#`` item in a view it moved out of at ``version`` (``now``: epoch seconds)."""
    return {
        "pk": {"S": view_pk(tenant, customer_id)},
        "sk": {"S": entity_sk(entity_type, entity_id)},
        TOMBSTONE: {"BOOL": True},
        "version": {"N": str(version)},
        TTL_ATTRIBUTE: {"N": str(now + TOMBSTONE_SECONDS)},
    }


def timeline_item(tenant: str, customer_id: str, audit: AuditRecord) -> dict[str, Any]:
    return {
        "pk": {"S": view_pk(tenant, customer_id)},
        "sk": {"S": timeline_sk(audit.occurred_at, audit.entity_type, audit.entity_id, audit.version)},
        "doc": {"S": dumps(timeline_doc(audit))},
    }


def alias_item(tenant: str, alias: str, customer_id: str) -> dict[str, Any]:
    return {
        "pk": {"S": view_pk(tenant, alias)},
        "sk": {"S": ALIAS_SK},
        "doc": {"S": dumps({"customer_id": customer_id})},
    }
