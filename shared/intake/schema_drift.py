"""Schema drift, watched on normalise's hot path: each (source, topic)'s known shape in the state table,
cached by the warm container, written only when a batch's payloads teach it something.

Layout (state table, one item collection per source):

- ``ops#schema#<source>`` / ``shape#<topic>``: the known shape (``shared.intake.shapes.Known`` as JSON),
  its path count, and ``rev``, a random token written anew with every write;
- ``ops#schema#<source>`` / ``drift#<topic>#<kind>#<path>``: one recorded drift (path, kind, types
  before and after, first seen, the delivery and tenant that brought it; never a value).

Why the state table and not a table of its own: a handful of small items per source, read once per
container and written when something changes, next to the other operational items (``ops#…``) that
functions reach under a ``LeadingKeys`` condition; no table to provision, back up and alarm for it.

Cost. A container reads a (source, topic)'s shape once (the first batch that brings one: one
BatchGetItem for every new key of the batch), then compares each payload with its cached copy in
memory. It writes only when the batch changed the shape: during a topic's baseline (counts) and when
a payload brings a drift or a path's first absence; in the steady state, nothing (zero AWS calls per
event). A write is conditional on the ``rev`` the container read: of two containers that saw the same
new field, one writes the shape with the drift records (one transaction) and sends the warning; the
other's write fails, it reads the shape again, folds its payloads into it, finds nothing new and sends
nothing. A failure here never fails a record: the drift watch is observability, the record is data.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from shared.adapters.dynamo import DynamoTable
from shared.constants import SCHEMA_DRIFT_NOTICE
from shared.intake.shapes import Drift, Known, Shape, describe_drifts, fold, shape_of

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient

PREFIX = "ops#schema#"
SHAPE_SK = "shape#"
DRIFT_SK = "drift#"
WATCHED_ORIGINS = frozenset({"webhook", "reconcile"})  # replays and backfills re-send old payloads
WRITE_ATTEMPTS = 3
DRIFT_FIELDS = ("source", "topic", "path", "kind", "was", "now", "first_seen", "delivery", "tenant")
# A topic is watched when it looks like one (a key part and a line of the warning); a delivery id is shown
# with only these characters (it comes from a header: no markup, no address reaches the warning).
_TOPIC = re.compile(r"^[A-Za-z0-9_.:/-]{1,100}$")
_NOT_ID = re.compile(r"[^A-Za-z0-9_.:-]")
_LOST_RACE = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


@dataclass(frozen=True)
class Seen:
    """One accepted payload's shape, with where it came from (the delivery id names it, no value)."""

    source: str
    topic: str
    tenant: str
    delivery: str
    shape: Shape


@dataclass(frozen=True)
class DriftNotice:
    """The warning for one payload's drifts, as normalise puts it on the alarms queue for notify."""

    source: str
    topic: str
    tenant: str
    delivery: str
    detected_at: datetime
    drifts: tuple[Drift, ...]

    def to_message(self) -> str:
        return json.dumps(
            {
                "notice": SCHEMA_DRIFT_NOTICE,
                "source": self.source,
                "topic": self.topic,
                "tenant": self.tenant,
                "delivery": self.delivery,
                "detected_at": self.detected_at.isoformat(),
                "drifts": describe_drifts(self.drifts),
            },
            separators=(",", ":"),
        )


class ShapeStore(DynamoTable):
    """Known shapes and recorded drifts in the state table (see the module's layout)."""

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        super().__init__(table, client)

    @staticmethod
    def key(source: str, topic: str) -> dict[str, Any]:
        return {"pk": {"S": f"{PREFIX}{source}"}, "sk": {"S": f"{SHAPE_SK}{topic}"}}

    @staticmethod
    def _known(item: dict[str, Any] | None) -> Known:
        if not item:
            return Known()
        return Known.from_document(json.loads(item["shape"]["S"]), item["rev"]["S"])

    def load_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Known]:
        """The shapes of these (source, topic) keys, an empty one for a key never stored."""
        found = {
            (item["source"]["S"], item["topic"]["S"]): self._known(item)
            for item in self.batch_get_items([self.key(s, t) for s, t in keys], consistent=True)
        }
        return {k: found.get(k, Known()) for k in keys}

    def load(self, source: str, topic: str) -> Known:
        item = self.client.get_item(TableName=self.table, Key=self.key(source, topic), ConsistentRead=True)
        return self._known(item.get("Item"))

    def save(
        self, source: str, topic: str, known: Known, rev: str, drifts: list[tuple[Seen, Drift]], at: datetime
    ) -> bool:
        """Write ``known`` (as ``rev``) and the drift records, if the stored shape is still ``known.rev``;
        False when another writer came first (nothing written)."""
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": {
                **self.key(source, topic),
                "source": {"S": source},
                "topic": {"S": topic},
                "shape": {"S": json.dumps(known.to_document(), separators=(",", ":"))},
                "paths": {"N": str(len(known.types))},
                "payloads": {"N": str(known.payloads)},
                "rev": {"S": rev},
                "updated_at": {"S": at.isoformat()},
            },
        }
        if known.rev is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "rev = :rev"
            put["ExpressionAttributeValues"] = {":rev": {"S": known.rev}}
        try:
            if not drifts:
                self.client.put_item(**put)
            else:
                # a transaction takes 100 items: the shape and 99 drift records (a batch of 10 payloads
                # reports at most 200; what is left out is still in the shape and in the warning)
                records = [{"Put": {"TableName": self.table, "Item": self._drift_item(s, d, at)}} for s, d in drifts]
                self.client.transact_write_items(TransactItems=[{"Put": put}, *records[:99]])  # type: ignore[typeddict-item,list-item]
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in _LOST_RACE:
                raise
            return False
        return True

    def _drift_item(self, seen: Seen, drift: Drift, at: datetime) -> dict[str, Any]:
        kind = drift.kind if drift.kind != "type" else f"type:{'|'.join(drift.now)}"
        return {
            "pk": {"S": f"{PREFIX}{seen.source}"},
            "sk": {"S": f"{DRIFT_SK}{seen.topic}#{kind}#{drift.path}"},
            "source": {"S": seen.source},
            "topic": {"S": seen.topic},
            "path": {"S": drift.path},
            "kind": {"S": drift.kind},
            "was": {"S": "|".join(drift.was)},
            "now": {"S": "|".join(drift.now)},
            "first_seen": {"S": at.isoformat()},
            "delivery": {"S": seen.delivery},
            "tenant": {"S": seen.tenant},
        }

    def of_source(self, source: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A source's known shapes (topic, paths, payloads, updated) and recorded drifts, oldest first:
        what ``aftersync sources drift`` shows."""
        shapes: list[dict[str, Any]] = []
        drifts: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{PREFIX}{source}"}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                sk = item["sk"]["S"]
                if sk.startswith(SHAPE_SK):
                    shapes.append(
                        {
                            "source": source,
                            "topic": item["topic"]["S"],
                            "paths": int(item["paths"]["N"]),
                            "payloads": int(item["payloads"]["N"]),
                            "updated_at": item["updated_at"]["S"],
                        }
                    )
                elif sk.startswith(DRIFT_SK):
                    drifts.append({k: item[k]["S"] for k in DRIFT_FIELDS})
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        drifts.sort(key=lambda d: (d["first_seen"], d["topic"], d["path"]))
        return shapes, drifts


class SchemaWatch:
    """A container's drift watch: ``observe`` each accepted payload (memory only), then ``commit`` once
    per batch (a write only where the batch changed a shape); the notices to send come back."""

    def __init__(self, store: ShapeStore, baseline: int, log: Callable[[str, dict[str, Any]], None]) -> None:
        self.store = store
        self.baseline = baseline
        self.log = log
        self.cache: dict[tuple[str, str], Known] = {}
        self.pending: list[Seen] = []

    def observe(self, source: str, topic: str, tenant: str, delivery: str, payload: Any) -> None:
        if _TOPIC.match(topic):
            self.pending.append(Seen(source, topic, tenant, _NOT_ID.sub("_", delivery)[:100], shape_of(payload)))

    def commit(self, at: datetime) -> list[DriftNotice]:
        seen, self.pending = self.pending, []
        by_key: dict[tuple[str, str], list[Seen]] = {}
        for s in seen:
            by_key.setdefault((s.source, s.topic), []).append(s)
        unknown = [k for k in by_key if k not in self.cache]
        if unknown:
            self.cache.update(self.store.load_many(unknown))
        notices: list[DriftNotice] = []
        for key, payloads in by_key.items():
            notices.extend(self._commit_one(key, payloads, at))
        return notices

    def _commit_one(self, key: tuple[str, str], payloads: list[Seen], at: datetime) -> list[DriftNotice]:
        for attempt in range(WRITE_ATTEMPTS):
            current = self.cache[key]
            work = current.copy()
            found = [(s, fold(work, s.shape, self.baseline)) for s in payloads]
            if work.same_as(current):
                return []  # the steady state: nothing new, nothing written
            rev = uuid.uuid4().hex
            records = [(s, d) for s, drifts in found for d in drifts]
            if self.store.save(*key, work, rev, records, at):
                work.rev = rev
                self.cache[key] = work
                return [
                    DriftNotice(s.source, s.topic, s.tenant, s.delivery, at, tuple(drifts))
                    for s, drifts in found
                    if drifts
                ]
            self.cache[key] = self.store.load(*key)  # another container wrote first: fold into its shape
            self.log("schema shape written concurrently; folding again", {"key": "/".join(key), "attempt": attempt})
        self.log("schema shape not saved: lost every race", {"key": "/".join(key)})
        return []
