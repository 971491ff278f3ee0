"""``aftersync lookup rebuild``: the customer view projected again from the stored states.

The projector (``functions.project.handler``) keeps the view from the state table's stream, so an
entity that has not changed since the view was deployed (or since a projection failed past its retries)
is not in it, and items an older projector left behind (an order under a customer it no longer
belongs to) stay. A rebuild scans the tenant's states and, with the projector's own code, puts each
entity where it belongs: its owner pointer, its ``E#`` item, its selectors, an absorbed customer's
alias marker, and a timeline entry for every audit record still in the table. Then it sweeps the
tenant's views: an ``E#`` or ``T#`` item of an entity in a view that is not its owner's, and an alias
marker of a customer that is no longer absorbed (or into another), is removed or rewritten; the
tombstones moves leave stay until they expire (they stop projections still in flight).

Safe to re-run and to stop part way (every write is the projector's idempotent one, and an entity whose
items are already as they should be is not written again: a second run reports nothing to do); safe
while the projector runs (a placement is conditional on the owner pointer, and a newer state than the
one read wins). ``dry_run`` counts what it would change and changes nothing.

The view has a table of its own (issue 15: its writes took the state table's capacity, which is
sync's). A deployment from before it has its view items in the state table and starts with an empty
view table: a rebuild fills it. ``purge_state_table`` then deletes the tenant's view items still in the
state table (``--purge-state-table``): nothing reads them any more, but only tombstones expire, so the
rest would stay, taking storage and backups, for good.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from functions.project.handler import Placement, Projector
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.view_store import DynamoViewStore
from shared.read.view import (
    ALIAS_SK,
    ENTITY_PREFIX,
    OWNER_SK,
    SELECTOR_SK,
    TOMBSTONE,
    VIEW_ENTITY_TYPES,
    alias_item,
    entity_sk,
    is_live,
    owner_from_item,
    owner_pk,
    selector_owners,
    selector_pk,
    timeline_entity,
    timeline_item,
    view_pk,
)
from shared.state.merge import EntityState

if TYPE_CHECKING:  # the stubs are a dev dependency: types only, nothing at run time
    from types_boto3_dynamodb.client import DynamoDBClient

CHUNK = 100  # states read per BatchGetItem
BATCH_WRITE_MAX = 25  # requests a BatchWriteItem takes
BATCH_WRITE_ATTEMPTS = 5


@dataclass
class RebuildReport:
    """What a rebuild did (or, dry, would do), by kind of item."""

    tenant: str
    dry_run: bool
    entity_types: list[str]
    states: int = 0  # states read
    placed: int = 0  # entities put where they belong (pointer, E# item, selectors, alias marker)
    timeline: int = 0  # timeline entries written
    removed: int = 0  # stale E# / T# items and alias markers deleted
    aliases: int = 0  # alias markers rewritten to the current survivor
    without_customer: int = 0  # states naming no customer (shown in no view)
    changed_entities: list[str] = field(default_factory=list)  # "order#shopify:1", the first 50
    purged: int = 0  # view items deleted from the state table (``purge_state_table``)

    @property
    def changes(self) -> int:
        return self.placed + self.timeline + self.removed + self.aliases + self.purged

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changes": self.changes}


def rebuild_view(
    projector: Projector,
    store: DynamoStateStore,
    view: DynamoViewStore,
    tenant: str,
    entity_types: Sequence[str] = (),
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RebuildReport:
    """Project every state of ``tenant`` (of ``entity_types``; none: every type the view shows) and sweep
    the views (module docstring)."""
    types = [t for t in VIEW_ENTITY_TYPES if not entity_types or t in entity_types]
    report = RebuildReport(tenant=tenant, dry_run=dry_run, entity_types=types)
    keys = [k for k in store.entities(tenant) if k[1] in types]
    homes: dict[tuple[str, str], str | None] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        found = store.load_states(chunk)
        for key in chunk:
            if key in found:
                projector.seen(found[key])
        for key in chunk:
            state = found.get(key)
            if state is None:
                continue  # deleted meanwhile
            report.states += 1
            placement = projector.expected(state)
            homes[(state.entity_type, state.entity_id)] = placement.customer
            if placement.customer is None:
                report.without_customer += 1
            if not _in_place(view, state, placement):
                report.placed += 1
                _note(report, state)
                if not dry_run:
                    projector.project_state(state)
            written = _timeline(store, view, state, placement.customer, dry_run)
            if written:
                report.timeline += written
                _note(report, state)
        if progress is not None:
            progress(min(start + CHUNK, len(keys)), len(keys))
    _sweep(projector, view, tenant, types, homes, dry_run, report)
    return report


def _note(report: RebuildReport, state: EntityState) -> None:
    name = f"{state.entity_type}#{state.entity_id}"
    if len(report.changed_entities) < 50 and name not in report.changed_entities:
        report.changed_entities.append(name)


def _in_place(view: DynamoViewStore, state: EntityState, placement: Placement) -> bool:
    """Whether the view already holds the entity as this state puts it (one BatchGetItem)."""
    tenant, customer = state.tenant, placement.customer
    pointer_key = (owner_pk(tenant, state.entity_type, state.entity_id), OWNER_SK)
    keys = [pointer_key, *((pk, SELECTOR_SK) for pk, _ in placement.selectors)]
    if customer:
        keys.append((view_pk(tenant, customer), entity_sk(state.entity_type, state.entity_id)))
    alias = placement.own if placement.own and customer and placement.own != customer else None
    if alias:
        keys.append((view_pk(tenant, alias), ALIAS_SK))
    items = {(i["pk"]["S"], i["sk"]["S"]): i for i in view.batch_get(keys)}
    pointer = owner_from_item(items.get(pointer_key))
    if pointer is None:
        return customer is None  # never projected: in place only when it belongs nowhere
    if pointer.version > state.version:
        return True  # a newer state was projected since this one was read
    if pointer.customer_id != customer or pointer.former:
        return False
    if customer is None:
        return pointer.version == state.version  # (in no view, the pointer carries the latest version)
    entity = items.get((view_pk(tenant, customer), entity_sk(state.entity_type, state.entity_id)))
    if placement.item is None or not is_live(entity):
        return placement.item is None and not is_live(entity)
    if int(entity["version"]["N"]) > state.version:
        return True  # a newer state was projected since this one was read
    if tuple(entity.get(a) for a in ("doc", "version", "sel")) != tuple(
        placement.item[a] for a in ("doc", "version", "sel")
    ):
        return False
    for pk, refs in placement.selectors:
        owners = selector_owners(items.get((pk, SELECTOR_SK), {}))
        if any(owners.get(ref) != customer for ref in refs):
            return False
    if alias:
        marker = items.get((view_pk(tenant, alias), ALIAS_SK))
        return marker is not None and marker["doc"] == alias_item(tenant, alias, customer)["doc"]
    return True


def _timeline(
    store: DynamoStateStore, view: DynamoViewStore, state: EntityState, customer: str | None, dry_run: bool
) -> int:
    """The entity's timeline entries its owner's view lacks (from the audit records still in the table),
    written unless ``dry_run``; how many."""
    if customer is None:
        return 0
    wanted = [
        timeline_item(state.tenant, customer, audit)
        for audit in store.audit_trail(state.tenant, state.entity_type, state.entity_id)
    ]
    if not wanted:
        return 0
    have = {(i["pk"]["S"], i["sk"]["S"]): i for i in view.batch_get([(i["pk"]["S"], i["sk"]["S"]) for i in wanted])}
    missing = [i for i in wanted if have.get((i["pk"]["S"], i["sk"]["S"]), {}).get("doc") != i["doc"]]
    if not dry_run:
        for item in missing:
            view.put_item(item)
    return len(missing)


def _sweep(
    projector: Projector,
    view: DynamoViewStore,
    tenant: str,
    types: Iterable[str],
    homes: dict[tuple[str, str], str | None],
    dry_run: bool,
    report: RebuildReport,
) -> None:
    """Remove what no state puts where it is: an entity's items in a view not its owner's (or of an
    entity with no state), an alias marker of a customer no longer absorbed; rewrite one that points to
    a customer other than the survivor."""
    prefix = view_pk(tenant, "")
    every_type = set(types) == set(VIEW_ENTITY_TYPES)
    for item in view.view_items(tenant):
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        customer = pk[len(prefix) :]
        if sk == ALIAS_SK:
            if not every_type:
                continue  # a partial rebuild leaves the markers alone
            survivor = projector.canonical(tenant, customer)
            if survivor == customer:
                report.removed += 1
                if not dry_run:
                    view.delete(pk, sk)
            elif json.loads(item["doc"]["S"]).get("customer_id") != survivor:
                report.aliases += 1
                if not dry_run:
                    view.put_item(alias_item(tenant, customer, survivor))
            continue
        if sk.startswith(ENTITY_PREFIX):
            if TOMBSTONE in item:
                continue  # an entity that moved out: kept until it expires (it stops late projections)
            entity_type, _, entity_id = sk[len(ENTITY_PREFIX) :].partition("#")
        elif (entry := timeline_entity(sk)) is not None:
            entity_type, entity_id, _ = entry
        else:
            continue
        if entity_type not in types:
            continue
        if homes.get((entity_type, entity_id)) != customer:
            report.removed += 1
            if not dry_run:
                view.delete(pk, sk)


def purge_state_table(
    client: DynamoDBClient, state_table: str, view_table: str, tenant: str, dry_run: bool = False
) -> int:
    """Delete ``tenant``'s view items (views, owner pointers, selectors) left in the state table by a
    version from before the view table; how many (that would be, ``dry_run``). No stream consumer
    reads their removal (the consumers filter on states, audit records, profiles and TTL removals), and
    nothing of sync's is touched: every key it deletes is under ``{tenant}#view#``, ``#viewown#`` or
    ``#sel#``, which no entity, identity or ops item is."""
    if state_table == view_table:
        raise ValueError("the view is in the state table here: purging it would delete the view")
    prefixes = (view_pk(tenant, ""), owner_pk(tenant, "", "").removesuffix("#"), selector_pk(tenant, "", ""))
    kwargs: dict[str, Any] = {
        "TableName": state_table,
        "FilterExpression": " OR ".join(f"begins_with(pk, :p{n})" for n in range(len(prefixes))),
        "ExpressionAttributeValues": {f":p{n}": {"S": p.rstrip("#") + "#"} for n, p in enumerate(prefixes)},
        "ProjectionExpression": "pk, sk",
    }
    keys: list[dict[str, Any]] = []
    while True:
        page = client.scan(**kwargs)
        keys.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    if dry_run:
        return len(keys)
    for start in range(0, len(keys), BATCH_WRITE_MAX):
        request: dict[str, Any] = {
            state_table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + BATCH_WRITE_MAX]]
        }
        for attempt in range(BATCH_WRITE_ATTEMPTS):
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(0.05 * 2**attempt)
        if request:
            raise RuntimeError(f"DynamoDB left deletes unprocessed after {BATCH_WRITE_ATTEMPTS} attempts; run it again")
    return len(keys)
