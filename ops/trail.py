"""An entity's full audit trail — hot records in the state table plus those archived after their TTL
— and its verification: every version present, every link and hash intact, the head matching.

Archived records are in batch objects (``audit/batches/<entity shard>/<tenant>/<type>/…``, one per
stream batch and shard) and, from before those, in one object per record (``audit/<tenant>/<type>/
<id>/<sk>.json``). An entity's lookup lists and reads every batch object of its shard, tenant and type
(about 1/16 of that tenant and type's archive) plus one listing of its old per-record prefix;
``ArchivedAudit`` keeps one shard's records while consecutive lookups share it, so verifying every
entity (sorted by ``archive_order``) reads each batch object once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from shared.adapters.state_store import entity_pk
from shared.constants import AUDIT_SK_PREFIX, BATCH_SUFFIX, audit_archive_prefix, audit_batch_prefix, entity_shard
from shared.state.audit import AuditRecord, verify_chain
from shared.state.merge import EntityState


class TrailStore(Protocol):
    def load(self, tenant: str, entity_type: str, entity_id: str) -> tuple[EntityState | None, str]: ...

    def audit_trail(self, tenant: str, entity_type: str, entity_id: str) -> list[AuditRecord]: ...


class ArchiveLister(Protocol):
    def keys(self, prefix: str) -> list[str]: ...

    def get(self, key: str) -> bytes: ...

    def lines(self, key: str) -> list[str]: ...


class ArchivedAudit:
    """The archived audit records of entities, read from the archive bucket."""

    def __init__(self, archive: ArchiveLister) -> None:
        self.archive = archive
        self._prefix: str | None = None
        self._by_pk: dict[str, list[dict[str, Any]]] = {}

    def records(self, pk: str) -> list[AuditRecord]:
        prefix = audit_batch_prefix(pk)
        if prefix != self._prefix:  # another shard, tenant or type: read its batch objects
            self._by_pk = {}
            for key in self.archive.keys(prefix):
                if not key.endswith(BATCH_SUFFIX):
                    continue
                for line in self.archive.lines(key):
                    document: dict[str, Any] = json.loads(line)
                    if str(document["sk"]).startswith(AUDIT_SK_PREFIX):
                        self._by_pk.setdefault(document["pk"], []).append(document["record"])
            self._prefix = prefix
        found = [AuditRecord.model_validate(r) for r in self._by_pk.get(pk, [])]
        for key in self.archive.keys(audit_archive_prefix(pk) + AUDIT_SK_PREFIX):  # one object per record
            found.append(AuditRecord.model_validate(json.loads(self.archive.get(key))["record"]))
        return found


def archive_order(entity: tuple[str, str, str]) -> tuple[str, str, str, str]:
    """Sort key for (tenant, entity type, entity id): entities whose archived records share batch
    objects come together."""
    tenant, entity_type, entity_id = entity
    return (entity_shard(entity_pk(tenant, entity_type, entity_id)), tenant, entity_type, entity_id)


@dataclass(frozen=True)
class Trail:
    state: EntityState | None
    head: str
    records: list[AuditRecord]
    archived_versions: list[int]

    def problems(self) -> list[str]:
        if self.state is None:
            return ["no state for this entity"]
        return verify_chain(self.records, self.head)


def full_trail(
    store: TrailStore,
    archive: ArchiveLister | ArchivedAudit | None,
    tenant: str,
    entity_type: str,
    entity_id: str,
) -> Trail:
    """``archive``: the bucket, or an ``ArchivedAudit`` reused across entities; ``None``: hot records only."""
    state, head = store.load(tenant, entity_type, entity_id)
    by_version = {r.version: r for r in store.audit_trail(tenant, entity_type, entity_id)}
    archived: list[int] = []
    if archive is not None:
        reader = archive if isinstance(archive, ArchivedAudit) else ArchivedAudit(archive)
        for record in reader.records(entity_pk(tenant, entity_type, entity_id)):
            if record.version not in by_version:
                by_version[record.version] = record
                archived.append(record.version)
    return Trail(state, head, [by_version[v] for v in sorted(by_version)], sorted(archived))
