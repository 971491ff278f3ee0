"""A lookup answered the same way by every function that reads for people (the lookup API, the sidebar):
the read recorded in the read audit whatever its outcome, the outcome counted, the answer masked for the
reader's role. The functions differ only in how they authenticate and what they ask."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from shared.observability import metrics
from shared.read.access_log import ReadAudit, ReadRecord
from shared.read.lookup import InvalidLookup, LookupResult
from shared.read.masking import mask_for


class Read:
    """One request's read, as the audit keeps it: who (reader, role), for which tenant, which request."""

    def __init__(self, audit: ReadAudit, tenant: str, reader: str, role: str, request_id: str) -> None:
        self.audit, self.tenant, self.reader, self.role, self.request_id = audit, tenant, reader, role, request_id

    def record(
        self, kind: str | None, digest: str | None, entity_ids: list[str], outcome: int, reason: str | None
    ) -> None:
        self.audit.write(
            ReadRecord(
                tenant=self.tenant,
                at=datetime.now(UTC),
                request_id=self.request_id,
                reader=self.reader,
                role=self.role,
                selector_kind=kind,
                selector_hmac=digest,
                entity_ids=entity_ids,
                outcome=outcome,
                reason=reason,
            )
        )

    def answer(
        self,
        run: Callable[[], LookupResult],
        kind: str,
        digest: str | None,
        *,
        default_region: str,
        not_found: str,
    ) -> tuple[int, dict[str, Any]]:
        """Run the lookup; (status, body): 400 for an invalid one (a cursor not ours), 404 with
        ``not_found``, or 200 with the answer masked for the role. Each is recorded and counted."""
        try:
            result = run()
        except InvalidLookup as exc:
            self.record(kind, digest, [], 400, "invalid")
            return 400, {"error": "bad_request", "message": str(exc)}
        if not result.found:
            self.record(kind, digest, [], 404, None)
            metrics.add_metric(name="LookupNotFound", unit=MetricUnit.Count, value=1)
            return 404, {"error": "not_found", "message": not_found}
        self.record(kind, digest, result.entity_ids(), 200, None)
        metrics.add_metric(name="LookupServed", unit=MetricUnit.Count, value=1)
        return 200, mask_for(self.role, result.model_dump(mode="json"), default_region=default_region)
