"""A lookup by a phone's digest: what a screen pop's session carries instead of the number.

A screen-pop link (and the session opened from it) holds the phone only as the tenant-salted HMAC the
identity index keys it by (``shared.read.lookup.selector_digest``), so the number is in no URL, page
or token. This reads the identity index's key item by that digest (one BatchGetItem), then each
customer holding the key through ``lookup(customer_id)`` (the same view, alias hops and warranty as
any lookup): one customer answers with their view, several (a family's phone) with their cards as
``matches``, as a lookup by phone does. One customer costs the same three calls as a lookup by phone.
"""

from __future__ import annotations

from typing import Any

from shared.adapters.view_store import DynamoViewStore
from shared.constants import DEFAULT_TIMEZONE
from shared.read.lookup import CustomerMatch, LookupResult, lookup

MAX_CUSTOMERS = 10  # a key held by more is a shared line (a shop's own number): its cards, not views


def identity_key_item(tenant: str, digest: str) -> tuple[str, str]:
    """The identity index's item of a key by its digest (``shared.adapters.identity_index``'s layout)."""
    return f"{tenant}#idkey#{digest}", "KEY"


def lookup_by_digest(
    selector_kind: str,
    digest: str,
    tenant: str,
    *,
    store: DynamoViewStore,
    salt: bytes,
    timezone: str = DEFAULT_TIMEZONE,
    limit: int = 20,
    cursor: str | None = None,
) -> LookupResult:
    not_found = LookupResult(found=False, selector_kind=selector_kind)
    items = store.batch_get([identity_key_item(tenant, digest)])
    if not items:
        return not_found
    item: dict[str, Any] = items[0]
    candidates = sorted(item.get("customers", {}).get("SS", []))
    if not candidates and "customer_id" in item:
        candidates = [item["customer_id"]["S"]]
    found: dict[str, LookupResult] = {}
    for candidate in candidates[:MAX_CUSTOMERS]:
        result = lookup(
            "customer_id",
            candidate,
            tenant,
            store=store,
            salt=salt,
            timezone=timezone,
            limit=limit,
            cursor=cursor if len(candidates) == 1 else None,
        )
        if result.found and result.customer_id is not None:
            found.setdefault(result.customer_id, result)  # an absorbed customer answers as its survivor
    if not found:
        return not_found
    if len(found) == 1:
        [result] = found.values()
        return result.model_copy(update={"selector_kind": selector_kind})
    return LookupResult(
        found=True,
        selector_kind=selector_kind,
        matches=[CustomerMatch(customer_id=c, card=r.customer) for c, r in sorted(found.items())],
    )
