"""An entity's full audit trail — hot records in the state table plus those archived after their TTL
— and its verification: every version present, every link and hash intact, the head matching."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from shared.adapters.state_store import entity_pk
from shared.constants import AUDIT_SK_PREFIX, audit_archive_prefix
from shared.state.audit import AuditRecord, verify_chain
from shared.state.merge import EntityState


class TrailStore(Protocol):
    def load(self, tenant: str, entity_type: str, entity_id: str) -> tuple[EntityState | None, str]: ...

    def audit_trail(self, tenant: str, entity_type: str, entity_id: str) -> list[AuditRecord]: ...


class ArchiveLister(Protocol):
    def keys(self, prefix: str) -> list[str]: ...

    def get(self, key: str) -> bytes: ...


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
    store: TrailStore, archive: ArchiveLister | None, tenant: str, entity_type: str, entity_id: str
) -> Trail:
    state, head = store.load(tenant, entity_type, entity_id)
    by_version = {r.version: r for r in store.audit_trail(tenant, entity_type, entity_id)}
    archived: list[int] = []
    if archive is not None:
        prefix = audit_archive_prefix(entity_pk(tenant, entity_type, entity_id)) + AUDIT_SK_PREFIX
        for key in archive.keys(prefix):
            document: dict[str, Any] = json.loads(archive.get(key))
            record = AuditRecord.model_validate(document["record"])
            if record.version not in by_version:
                by_version[record.version] = record
                archived.append(record.version)
    return Trail(state, head, [by_version[v] for v in sorted(by_version)], sorted(archived))
