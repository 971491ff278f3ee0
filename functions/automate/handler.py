"""After-sales automation: on a case's change, run the rules it triggers, each exactly once; on a
ticket's change, dispatch it (and, on the shift-check schedule, move tickets at shift end).

refund approved → a refund request to the payment target (idempotency key: the case id), its result
written back to the case; returned items received → stock increments at the WMS; every after-sales
status change → the order's after-sales status at the OMS. Rules are data
(``shared/automation_rules.json``); which target plays which role is config (``automation``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.aws import CustomerMessages, EventBus, SecretReader
from shared.adapters.dead_letter import DeadLetteringProcessor, PermanentFailure
from shared.adapters.dispatch import DynamoWorkload
from shared.adapters.guards import DynamoActionLedger
from shared.adapters.http import SafeHttp, TargetRefused
from shared.adapters.state_store import DynamoStateStore
from shared.automation import Action, actions_for, result_observation
from shared.constants import DETAIL_OBSERVED, EVENT_SOURCE, target_secret_name
from shared.delivery import RETRIABLE_STATUSES, auth_headers
from shared.dispatch import OPEN_STATUSES, at, wants_dispatch
from shared.errors import ConfigurationError, DeliveryFailed
from shared.models import EntityChanged, ObservedEntity, Ticket, utcnow
from shared.notifications import compose
from shared.observability import count_by, logger, metrics, tracer
from shared.settings import AutomateSettings
from shared.sources.base import event_id_for
from shared.state.merge import EntityState
from shared.targets import value_hash

SCHEDULED = "Scheduled Event"  # EventBridge's detail-type for the shift check's schedule


@cache
def settings() -> AutomateSettings:
    return AutomateSettings.from_env()


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@cache
def adapters() -> tuple[DynamoStateStore, DynamoActionLedger, SafeHttp, SecretReader, EventBus]:
    s = settings()
    return (
        DynamoStateStore(s.state_table),
        DynamoActionLedger(s.state_table),
        SafeHttp(allow_private=s.allow_http_targets),
        SecretReader(max_age=s.secrets_max_age_seconds),
        EventBus(s.event_bus),
    )


@cache
def messages() -> CustomerMessages:
    return CustomerMessages()


def order_of(state: EntityState) -> dict[str, Any] | None:
    """The fields of the case's order (same source prefix), or None while it is not synced."""
    order_id = state.fields.get("order_id")
    if not order_id:
        return None
    prefix = state.entity_id.split(":", 1)[0]
    order, _ = adapters()[0].load(state.tenant, "order", f"{prefix}:{order_id}")
    return order.fields if order is not None else None


def notify_customer(action: Action, state: EntityState, order: dict[str, Any] | None) -> None:
    """Through every sms / email target: the contact on the case's order, once per target and case
    status, in the language the target sets for the tenant."""
    s = settings()
    ledger = adapters()[1]
    contact = order or {}
    values = {**action.body, "order_number": contact.get("order_number") or action.body["order_id"]}
    for target in (s.target(name) for name in s.customer_targets):
        for notification in compose(
            state.tenant,
            target.language(state.tenant),
            str(action.body.get("status")),
            values,
            contact.get("customer_phone") if target.kind == "sms" else None,
            contact.get("customer_email") if target.kind == "email" else None,
            s.default_phone_region,
        ):
            key = f"{action.ledger_key}:{target.name}"
            if not ledger.claim(state.tenant, key):
                continue
            message_id = messages().send(notification, target.sender)
            ledger.done(state.tenant, key, f"{notification.channel} {notification.template} {message_id}")
            count_by("CustomerNotified", "channel", notification.channel)
            logger.info(  # the contact itself is personal data: never logged
                "customer notified",
                extra={"target": target.name, "template": notification.template, "case": state.entity_id},
            )


def run(action: Action, state: EntityState, order: dict[str, Any] | None) -> None:
    s = settings()
    if action.blocked:
        count_by("ActionBlocked", "rule", action.rule.name)
        detail = f"{action.rule.name}: {action.blocked}"
        if action.order_missing:
            raise DeliveryFailed(detail)  # the order may still come: retried, then the DLQ with this reason
        raise PermanentFailure(detail)
    if action.rule.role == "customer":
        notify_customer(action, state, order)
        return
    _, ledger, http, secrets, _ = adapters()
    role_target = s.roles.get(action.rule.role)
    if role_target is None:
        logger.info("no target for the rule's role", extra={"rule": action.rule.name, "role": action.rule.role})
        return
    if not ledger.claim(state.tenant, action.ledger_key):
        return  # done before: a replay, a duplicate, or a later change of the same case
    target = s.target(role_target)
    credentials = secrets.get_json(target_secret_name(s.secrets_prefix, target.name))
    if credentials is None:
        raise ConfigurationError(f"secret for target {target.name!r} does not exist")
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
        **auth_headers(target, credentials, body, value_hash(payload), http),
    }
    try:
        response = http.post(str(target.url), body, headers, target.timeout_seconds)
    except TargetRefused as exc:
        raise PermanentFailure(f"{action.rule.name}: {exc}") from exc
    if not 200 <= response.status < 300:
        detail = f"{action.rule.name}: target {target.name} answered HTTP {response.status}: {response.text[:200]}"
        count_by("ActionFailed", "rule", action.rule.name)
        if response.status in RETRIABLE_STATUSES or response.status >= 500:
            raise DeliveryFailed(detail)
        raise PermanentFailure(detail)
    ledger.done(state.tenant, action.ledger_key, f"HTTP {response.status}")
    count_by("ActionSucceeded", "rule", action.rule.name)
    logger.info("action done", extra={"rule": action.rule.name, "entity_id": state.entity_id, "target": target.name})
    if action.rule.write_back:
        write_back(action, state, target.name)


def write_back(action: Action, state: EntityState, source: str) -> None:
    """Put the action's result on the bus as an observation of the case from the target."""
    observed = result_observation(action, state, source, utcnow())
    adapters()[4].put(
        EVENT_SOURCE,
        [(DETAIL_OBSERVED.format(entity_type=observed.entity_type), observed.model_dump_json(exclude_unset=True))],
    )


@cache
def workload() -> DynamoWorkload:
    return DynamoWorkload(settings().state_table)


def write_back_assignee(state: EntityState, agent: str, now: datetime) -> None:
    """The assignment as an observation of the ticket from ``dispatch`` (ranked like the help desk:
    the newer of a dispatch and a person's reassignment there wins). The decision comes after what it
    was based on: its clock is at least a millisecond past every clock of the state it read."""
    seen = max((at(clock.at) for clock in state.clocks.values()), default=now)
    now = max(now, seen + timedelta(milliseconds=1))
    key = f"{state.entity_id}:{agent}:{now.isoformat()}"
    observed = ObservedEntity(
        event_id=event_id_for(f"dispatch:{key}", "ticket", state.entity_id),
        tenant=state.tenant,
        source="dispatch",
        source_event_id=key,
        topic="automation:dispatch",
        entity_type="ticket",
        entity_id=state.entity_id,
        occurred_at=now,
        received_at=utcnow(),
        origin="automation",
        entity=Ticket(ticket_id=state.fields["ticket_id"], assignee=agent),
    )
    adapters()[4].put(
        EVENT_SOURCE, [(DETAIL_OBSERVED.format(entity_type="ticket"), observed.model_dump_json(exclude_unset=True))]
    )


def dispatch_ticket(state: EntityState, now: datetime) -> None:
    """A ticket changed: an open one nobody in the team holds goes to the best agent on shift; a
    solved or closed one frees its agent's slot; one a person moved to a colleague is counted so."""
    roster = settings().dispatch.get(state.tenant)
    if roster is None:
        return
    work, fields = workload(), state.fields
    held = work.holder(state.tenant, state.entity_id)
    if fields.get("status") not in OPEN_STATUSES:
        if held is not None and work.release(state.tenant, state.entity_id, held):
            metrics.add_metric(name="TicketReleased", unit=MetricUnit.Count, value=1)
        work.stop_waiting(state.tenant, state.entity_id)
        return
    if not wants_dispatch(fields, roster):  # a team member holds it (we, or a person, chose them)
        assignee = str(fields["assignee"])
        if held != assignee and not work.assign(state.tenant, state.entity_id, assignee, None, held):
            raise DeliveryFailed(f"ticket {state.entity_id} moved while recording its assignee: retried")
        return
    if held is not None:  # assigned, and the assignment not yet in the ticket's state: write it again
        write_back_assignee(state, held, now)
        return
    ids = [a.id for a in roster.agents]
    agent = roster.choose(fields, work.loads(state.tenant, ids), now)
    if agent is None:  # nobody on shift with the skills and room: the shift check tries again
        work.wait(state.tenant, state.entity_id)
        metrics.add_metric(name="TicketWaiting", unit=MetricUnit.Count, value=1)
        logger.warning("no agent can take the ticket now", extra={"ticket": state.entity_id})
        return
    if not work.assign(state.tenant, state.entity_id, agent.id, agent.capacity, None):
        raise DeliveryFailed(f"ticket {state.entity_id}: {agent.id} filled up or the ticket moved: retried")
    metrics.add_metric(name="TicketDispatched", unit=MetricUnit.Count, value=1)
    logger.info("ticket dispatched", extra={"ticket": state.entity_id, "agent": agent.id})
    write_back_assignee(state, agent.id, now)


def shift_check(now: datetime) -> None:
    """Every few minutes: the tickets of agents whose shift is over move to colleagues on shift, and
    tickets that waited for an agent are dispatched."""
    store, work = adapters()[0], workload()
    for tenant, roster in settings().dispatch.items():
        ids = [a.id for a in roster.agents]
        for agent in (a for a in roster.agents if not roster.on_shift(a, now)):
            for ticket in work.tickets_of(tenant, agent.id):
                state, _ = store.load(tenant, "ticket", ticket)
                if state is None or state.fields.get("status") not in OPEN_STATUSES:
                    work.release(tenant, ticket, agent.id)
                    continue
                colleague = roster.choose(state.fields, work.loads(tenant, ids), now, exclude=agent.id)
                if colleague is None:
                    metrics.add_metric(name="TicketNotReassigned", unit=MetricUnit.Count, value=1)
                    continue  # nobody can take it: it stays, and the next check tries again
                if work.assign(tenant, ticket, colleague.id, colleague.capacity, agent.id):
                    metrics.add_metric(name="TicketReassigned", unit=MetricUnit.Count, value=1)
                    logger.info(
                        "ticket reassigned at shift end", extra={"ticket": ticket, "from": agent.id, "to": colleague.id}
                    )
                    write_back_assignee(state, colleague.id, now)
        for ticket in work.waiting(tenant):
            state, _ = store.load(tenant, "ticket", ticket)
            if state is None:
                work.stop_waiting(tenant, ticket)
            else:
                dispatch_ticket(state, now)


def record_handler(record: SQSRecord) -> None:
    event = EventBridgeModel.model_validate(record.json_body)
    if event.detail_type == SCHEDULED:
        shift_check(event.time)
        return
    changed = EntityChanged.model_validate(event.detail)
    state, _ = adapters()[0].load(changed.tenant, changed.entity_type, changed.entity_id)
    if state is None:
        raise DeliveryFailed(f"{changed.entity_type} {changed.entity_id} has no state yet")
    if state.entity_type == "ticket":
        dispatch_ticket(state, event.time)
        return
    order: list[dict[str, Any] | None] = []  # loaded at most once, and only when a rule reads it

    def load_order() -> dict[str, Any] | None:
        if not order:
            order.append(order_of(state))
        return order[0]

    for action in actions_for(state.entity_type, set(changed.changed), state.fields, load_order):
        run(action, state, load_order() if action.rule.role == "customer" else None)
    metrics.add_metric(name="AutomationEvaluated", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
