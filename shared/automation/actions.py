"""An after-sales action's request to the target playing its rule's role: built from the action, signed as
the target expects, sent, and judged by the answer with the same rule deliveries use (``worth_retrying``)."""

from __future__ import annotations

import json
from typing import Any

from shared.automation.rules import Action
from shared.delivery.deliver import (
    DeliveryRejected,
    HttpPort,
    HttpResponse,
    action_id,
    answered,
    auth_headers,
    worth_retrying,
)
from shared.delivery.targets import TargetConfig
from shared.errors import DeliveryFailed
from shared.state.merge import EntityState


def request_action(
    action: Action, state: EntityState, target: TargetConfig, credentials: dict[str, Any], http: HttpPort
) -> HttpResponse:
    """POST the action to ``target`` (``Idempotency-Key`` = the rule's key, which the receiver dedupes on);
    the answer when it is a 2xx, ``DeliveryFailed`` when a retry may help, ``DeliveryRejected`` otherwise
    (``TargetRefused`` from the SSRF guard passes through: no retry helps either)."""
    payload = {
        "action": action.rule.name,
        "tenant": state.tenant,
        "entity_type": state.entity_type,
        "entity_id": state.entity_id,
        **action.body,
    }
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": action.key,
        **auth_headers(target, credentials, body, action_id(state.tenant, action.ledger_key, target.name), http),
    }
    response = http.post(str(target.url), body, headers, target.timeout_seconds)
    if not 200 <= response.status < 300:
        detail = f"{action.rule.name}: target {target.name} {answered(response)}"
        if worth_retrying(response.status):
            raise DeliveryFailed(detail)
        raise DeliveryRejected(detail)
    return response
