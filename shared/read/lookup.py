"""A customer lookup: from what an agent has at hand (a phone, an e-mail, a WeCom external user id, a
serial, a tracking or order number, a customer id) to that customer's view, in at most three DynamoDB
calls:

1. one BatchGetItem of the selector's items: for a phone, an e-mail or a WeCom id the identity index's
   key item (``{tenant}#idkey#{hmac}``, in the state table) and the view's item of that key
   (``{tenant}#sel#id#{hmac}``, in the view table: one call spans both tables),
   which says which view each customer holding the key is in (an absorbed customer's: the
   survivor's); for a serial, a tracking or an order number the view's selector item, whose refs name
   their owner's view; none for a customer id;
2. one Query of the customer's ``E#`` items: the card and every entity summary (the tombstones of
   entities that moved to another customer are filtered out: read, and counted, but not returned);
3. one Query of the newest ``T#`` items (a page of the timeline; the cursor continues it).

Several customers behind one phone (a family) answer with their cards as ``matches`` (call 2 is then a
BatchGetItem of the cards) and no view. A customer id of an absorbed customer, or a key the projector
has not keyed yet, answers with the survivor's view after one more Query per alias hop. Warranty rows
are computed here, against today in the shop's calendar.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from shared.adapters.view_store import DynamoViewStore
from shared.constants import DEFAULT_TIMEZONE
from shared.identity.resolver import IdentityKey, KeyKind, hash_key, normalise_email, normalise_phone
from shared.read.view import (
    ALIAS_SK,
    IDENTITY_SELECTOR,
    SELECTOR_KINDS,
    SELECTOR_SK,
    TIMELINE_PREFIX,
    entity_sk,
    is_live,
    normalise_selector,
    selector_customers,
    selector_hmac,
    selector_owners,
    selector_pk,
    view_pk,
)

IDENTITY_KINDS: dict[str, KeyKind] = {"phone": "phone", "email": "email", "wecom_external_userid": "wecom"}
LOOKUP_KINDS = (*IDENTITY_KINDS, *SELECTOR_KINDS, "customer_id")
MAX_ALIAS_HOPS = 5
MAX_LIMIT = 100
MAX_CURSOR_CHARS = 1024


class InvalidLookup(ValueError):
    """A lookup that cannot be asked: an unknown selector kind, a limit out of range, a cursor that is
    not one this lookup gave out (for this customer)."""


class CustomerMatch(BaseModel):
    model_config = ConfigDict(frozen=True)
    customer_id: str
    card: dict[str, Any] | None


class WarrantyRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    order_id: str
    serial: str
    sku: str | None
    status: Literal["active", "expired", "void", "unknown"]
    ends_on: date | None
    eligible: bool


class LookupResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    found: bool
    selector_kind: str
    customer_id: str | None = None
    customer: dict[str, Any] | None = None  # the card
    matches: list[CustomerMatch] = []  # several customers answer the selector (no view then)
    refs: list[str] = []  # what a serial / tracking / order selector names: "order#shopify:1#line:0"
    orders: list[dict[str, Any]] = []
    after_sales_cases: list[dict[str, Any]] = []
    shipments: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    warranty: list[WarrantyRow] = []
    timeline: list[dict[str, Any]] = []  # newest first
    next_cursor: str | None = None

    def entity_ids(self) -> list[str]:
        """Every entity id the result shows (for the read audit)."""
        ids = [self.customer_id] if self.customer_id else []
        ids += [m.customer_id for m in self.matches]
        for rows, key in (
            (self.orders, "order_id"),
            (self.after_sales_cases, "case_id"),
            (self.shipments, "shipment_id"),
            (self.tickets, "ticket_id"),
        ):
            ids += [str(row[key]) for row in rows]
        return ids


def selector_item_key(
    selector_kind: str, value: str, tenant: str, salt: bytes, default_region: str = "CN"
) -> tuple[str, str] | None:
    """The item a selector is read from, ``None`` when the value is not one (an invalid phone); the
    value itself is never part of a key, only its salted HMAC."""
    if selector_kind in IDENTITY_KINDS:
        kind = IDENTITY_KINDS[selector_kind]
        if kind == "phone":
            normalised = normalise_phone(value, default_region)
        elif kind == "email":
            normalised = normalise_email(value)
        else:
            normalised = value.strip() or None
        if normalised is None:
            return None
        return f"{tenant}#idkey#{hash_key(salt, IdentityKey(kind, normalised))}", "KEY"
    if selector_kind in SELECTOR_KINDS:
        selector = normalise_selector(selector_kind, value)
        if selector is None:
            return None
        return selector_pk(tenant, selector_kind, selector_hmac(salt, selector_kind, selector)), SELECTOR_SK
    raise InvalidLookup(f"unknown selector kind {selector_kind!r} (known: {', '.join(LOOKUP_KINDS)})")


def selector_digest(selector_kind: str, value: str, tenant: str, salt: bytes, default_region: str = "CN") -> str | None:
    """The selector's HMAC as its item key holds it (what a read audit records instead of the value)."""
    if selector_kind == "customer_id":
        return None
    key = selector_item_key(selector_kind, value, tenant, salt, default_region)
    return key[0].rsplit("#", 1)[1] if key else None


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, tenant: str, customer_id: str) -> dict[str, Any]:
    """The timeline key a cursor continues after; refused unless it is within this customer's timeline
    (a cursor is the caller's input: it must not open another customer's view)."""
    if len(cursor) > MAX_CURSOR_CHARS:  # one this lookup gave out is about 150 characters
        raise InvalidLookup("cursor is not one this lookup gave out")
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        pk, sk = key["pk"]["S"], key["sk"]["S"]
    except (ValueError, binascii.Error, KeyError, TypeError, RecursionError) as exc:
        raise InvalidLookup("cursor is not one this lookup gave out") from exc
    if set(key) != {"pk", "sk"} or pk != view_pk(tenant, customer_id) or not str(sk).startswith(TIMELINE_PREFIX):
        raise InvalidLookup("cursor is not one this lookup gave out")
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _doc(item: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(item["doc"]["S"])
    return value


def _alias_target(items: list[dict[str, Any]]) -> str | None:
    for item in items:
        if item["sk"]["S"] == ALIAS_SK:
            return str(_doc(item)["customer_id"])
    return None


def warranty_rows(orders: list[dict[str, Any]], today: date) -> list[WarrantyRow]:
    """One row per order line with a serial: eligible while its last covered day is not past."""
    rows = []
    for order in orders:
        for line in order.get("lines") or []:
            if not line.get("serial"):
                continue
            ends_on = date.fromisoformat(line["warranty_ends_on"]) if line.get("warranty_ends_on") else None
            if line.get("warranty_status") == "void":
                status: Literal["active", "expired", "void", "unknown"] = "void"
            elif ends_on is None:
                status = "unknown"
            else:
                status = "active" if ends_on >= today else "expired"
            rows.append(
                WarrantyRow(
                    order_id=order["order_id"],
                    serial=line["serial"],
                    sku=line.get("sku"),
                    status=status,
                    ends_on=ends_on,
                    eligible=status == "active",
                )
            )
    return rows


def lookup(
    selector_kind: str,
    value: str,
    tenant: str,
    *,
    store: DynamoViewStore,
    salt: bytes | None,
    default_region: str = "CN",
    timezone: str = DEFAULT_TIMEZONE,
    today: date | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> LookupResult:
    """The customer a selector names and their view (module docstring: the calls it makes)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidLookup(f"limit must be within 1..{MAX_LIMIT}")
    not_found = LookupResult(found=False, selector_kind=selector_kind)
    refs: list[str] = []
    if selector_kind == "customer_id":
        candidates = [value.strip()] if value.strip() else []
    else:
        if salt is None:
            raise ValueError("a selector other than customer_id needs the tenant's identity salt")
        key = selector_item_key(selector_kind, value, tenant, salt, default_region)
        if key is None:
            return not_found
        if selector_kind in IDENTITY_KINDS:
            view_key = (selector_pk(tenant, IDENTITY_SELECTOR, key[0].rsplit("#", 1)[1]), SELECTOR_SK)
            found = {i["pk"]["S"]: i for i in store.batch_get([key, view_key])}  # call 1
            if key[0] not in found:
                return not_found
            homes = selector_owners(found.get(view_key[0], {}))
            held = found[key[0]].get("customers", {}).get("SS", [])
            candidates = sorted({homes.get(f"customer#{c}", c) for c in held})  # where each customer is
        else:
            items = store.batch_get([key])  # call 1
            if not items:
                return not_found
            refs = sorted(items[0].get("refs", {}).get("SS", []))
            candidates = selector_customers(items[0])
    if not candidates:
        return not_found

    if len(candidates) > 1:
        customers = _distinct_customers(store, tenant, candidates)
        if len(customers) > 1:
            return LookupResult(
                found=True,
                selector_kind=selector_kind,
                refs=refs,
                matches=[CustomerMatch(customer_id=c, card=card) for c, card in sorted(customers.items())],
            )
        candidates = list(customers)

    customer_id = candidates[0]
    entities = store.entities(tenant, customer_id)  # call 2
    for _ in range(MAX_ALIAS_HOPS):
        survivor = _alias_target(entities)
        if survivor is None or survivor == customer_id:
            break
        customer_id = survivor
        entities = store.entities(tenant, customer_id)  # absorbed: the survivor's view (one more call)
    if not entities:
        return not_found

    card: dict[str, Any] | None = None
    grouped: dict[str, list[dict[str, Any]]] = {"order": [], "after_sales_case": [], "shipment": [], "ticket": []}
    for item in entities:
        sk = item["sk"]["S"]
        if sk == ALIAS_SK:
            continue
        if sk == entity_sk("customer", customer_id):
            card = _doc(item)
            continue
        entity_type = sk.split("#", 2)[1]
        if entity_type in grouped:
            grouped[entity_type].append(_doc(item))
    orders = sorted(grouped["order"], key=lambda o: (o.get("created_at") or "", o["order_id"]), reverse=True)

    start = decode_cursor(cursor, tenant, customer_id) if cursor else None
    page, last = store.timeline(tenant, customer_id, limit, start)  # call 3
    if today is None:
        today = datetime.now(ZoneInfo(timezone)).date()
    return LookupResult(
        found=True,
        selector_kind=selector_kind,
        customer_id=customer_id,
        customer=card,
        refs=refs,
        orders=orders,
        after_sales_cases=sorted(grouped["after_sales_case"], key=lambda c: str(c["case_id"])),
        shipments=sorted(grouped["shipment"], key=lambda s: str(s["shipment_id"])),
        tickets=sorted(grouped["ticket"], key=lambda t: str(t["ticket_id"])),
        warranty=warranty_rows(orders, today),
        timeline=[_doc(item) for item in page],
        next_cursor=encode_cursor(last) if last else None,
    )


def _distinct_customers(store: DynamoViewStore, tenant: str, candidates: list[str]) -> dict[str, dict[str, Any] | None]:
    """The distinct customers behind several ids (an absorbed one counts as its survivor), each with its
    card: one BatchGetItem of every id's card and alias marker (and one more for a survivor's card)."""
    keys = [(view_pk(tenant, c), sk) for c in candidates for sk in (entity_sk("customer", c), ALIAS_SK)]
    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in store.batch_get(keys)}
    survivors: dict[str, str] = {}
    for c in candidates:
        marker = items.get((view_pk(tenant, c), ALIAS_SK))
        survivors[c] = str(_doc(marker)["customer_id"]) if marker else c
    distinct = sorted(set(survivors.values()))
    missing = [s for s in distinct if (view_pk(tenant, s), entity_sk("customer", s)) not in items]
    if missing and len(distinct) > 1:
        for item in store.batch_get([(view_pk(tenant, s), entity_sk("customer", s)) for s in missing]):
            items[(item["pk"]["S"], item["sk"]["S"])] = item
    cards: dict[str, dict[str, Any] | None] = {}
    for s in distinct:
        card = items.get((view_pk(tenant, s), entity_sk("customer", s)))
        cards[s] = _doc(card) if is_live(card) else None  # (a tombstone: the card moved out)
    return cards
