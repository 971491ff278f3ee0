"""After-sales automation: on a case's change, run the rules it triggers, each exactly once; on a
ticket's change, dispatch it (and, on the shift-check schedule, move tickets at shift end).

refund approved → a refund request to the payment target (idempotency key: the case id), its result
written back to the case; returned items received → stock increments at the WMS; every after-sales
status change → the order's after-sales status at the OMS. Rules are data
(``shared/automation/rules.json``); which target plays which role is config (``automation``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.adapters.action_ledger import DynamoActionLedger
from shared.adapters.dead_letter import DeadLetteringProcessor, Deferred, PermanentFailure
from shared.adapters.events import EventBus
from shared.adapters.http import SafeHttp, TargetRefused, deadline_from
from shared.adapters.messaging import CustomerMessages
from shared.adapters.secrets import SecretReader
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.workload import DynamoWorkload
from shared.automation.actions import request_action
from shared.automation.dispatch import Dispatcher
from shared.automation.notifications import compose
from shared.automation.rules import Action, actions_for, result_observation
from shared.constants import DETAIL_OBSERVED, EVENT_SOURCE, INVOCATION_RESERVE_SECONDS, target_secret_name
from shared.delivery.deliver import DeliveryRejected, HttpPort, HttpResponse
from shared.delivery.targets import TargetConfig
from shared.errors import ConfigurationError, DeliveryFailed, NotSent
from shared.models import EntityChanged, ObservedEntity, utcnow
from shared.observability import count_by, logger, metrics, tracer
from shared.settings import AutomateSettings
from shared.state.merge import EntityState

SCHEDULED = "Scheduled Event"  # EventBridge's detail-type for the shift check's schedule
MAX_LEASE_SECONDS = 900.0  # Lambda's longest run: the lease when no invocation context says less


@cache
def settings() -> AutomateSettings:
    return AutomateSettings.from_env()


@cache
def processor() -> DeadLetteringProcessor:
    return DeadLetteringProcessor(settings().max_receive_count, logger=logger, metrics=metrics)


@dataclass(frozen=True)
class Ports:
    """What the function touches: the state (cases, orders, tickets), the action ledger, the role targets
    over HTTPS with their credentials, and the bus (write-backs, dispatch decisions)."""

    store: DynamoStateStore
    ledger: DynamoActionLedger
    http: SafeHttp
    secrets: SecretReader
    bus: EventBus


@cache
def ports() -> Ports:
    s = settings()
    return Ports(
        store=DynamoStateStore(s.state_table),
        ledger=DynamoActionLedger(s.state_table),
        http=SafeHttp(allow_loopback=s.loopback_ports),
        secrets=SecretReader(max_age=s.secrets_max_age_seconds),
        bus=EventBus(s.event_bus),
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
    order, _ = ports().store.load(state.tenant, "order", f"{prefix}:{order_id}")
    return order.fields if order is not None else None


@dataclass(frozen=True)
class Budget:
    """What the invocation has left: a claim's lease lasts as long, and calls end before it does
    (``deadline``, leaving time to record a failure)."""

    lease_seconds: float
    deadline: float | None

    @classmethod
    def of(cls, context: LambdaContext | None) -> Budget:
        if context is None:
            return cls(MAX_LEASE_SECONDS, None)
        return cls(context.get_remaining_time_in_millis() / 1000, deadline_from(context, INVOCATION_RESERVE_SECONDS))


def claim(tenant: str, key: str, lease_seconds: float, rerun_after_crash: bool, what: str) -> str | None:
    """The claim's owner token when this worker is to act; None when the action is done (or may be).
    A live claim of another worker defers the record until that claim's lease is over."""
    now = time.time()
    found = ports().ledger.claim(tenant, key, now, lease_seconds, rerun_after_crash)
    if found.outcome == "busy":
        jitter = random.uniform(1, 3)  # noqa: S311 - spreading retries, not a secret
        raise Deferred(f"{what}: another worker is running it", max(0.0, found.until - now) + jitter)
    if found.outcome == "uncertain":
        metrics.add_metric(name="ActionUncertain", unit=MetricUnit.Count, value=1)
        logger.warning("an action's worker stopped after claiming it; not repeated", extra={"action": what})
    return found.owner if found.outcome == "run" else None


def notify_customer(action: Action, state: EntityState, order: dict[str, Any] | None, budget: Budget) -> None:
    """Through every sms / email target: the contact on the case's order, at most once per target and
    case status (nobody dedupes a text message: a send cut off by a crash is not repeated), in the
    language the target sets for the tenant."""
    s = settings()
    ledger = ports().ledger
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
            owner = claim(state.tenant, key, budget.lease_seconds, False, f"{action.rule.name} {key}")
            if owner is None:
                continue
            try:
                message_id = messages().send(notification, target.sender)
            except NotSent as exc:  # the provider refused it: a retry may send it
                ledger.release(state.tenant, key, owner, str(exc))
                raise
            # Any other failure leaves the claim as it is: whether it went out is unknown, and once the
            # lease is over the claim is marked uncertain instead of sending a second time.
            ledger.done(state.tenant, key, owner, f"{notification.channel} {notification.template} {message_id}")
            count_by("CustomerNotified", "channel", notification.channel)
            logger.info(  # the contact itself is personal data: never logged
                "customer notified",
                extra={"target": target.name, "template": notification.template, "case": state.entity_id},
            )


def run(action: Action, state: EntityState, order: dict[str, Any] | None, budget: Budget) -> None:
    s = settings()
    if action.blocked:
        count_by("ActionBlocked", "rule", action.rule.name)
        detail = f"{action.rule.name}: {action.blocked}"
        if action.order_missing:
            raise DeliveryFailed(detail)  # the order may still come: retried, then the DLQ with this reason
        raise PermanentFailure(detail)
    if action.rule.role == "customer":
        notify_customer(action, state, order, budget)
        return
    ledger, http, secrets = ports().ledger, ports().http, ports().secrets
    role_target = s.roles.get(action.rule.role)
    if role_target is None:
        logger.info("no target for the rule's role", extra={"rule": action.rule.name, "role": action.rule.role})
        return
    # The receiver dedupes on the Idempotency-Key: a call cut off by a crash may be made again.
    owner = claim(state.tenant, action.ledger_key, budget.lease_seconds, True, action.rule.name)
    if owner is None:
        return  # done before: a replay, a duplicate, or a later change of the same case
    try:
        response, target = call(action, state, http.within(budget.deadline), secrets)
    except Exception as exc:
        ledger.release(state.tenant, action.ledger_key, owner, type(exc).__name__)
        raise
    if action.rule.write_back:
        # Before the mark: if the bus refuses it, the claim stays, and once its lease is over the call is
        # made again (the receiver dedupes it) and its result written back then; after the mark it would be lost.
        write_back(action, state, target.name)
    ledger.done(state.tenant, action.ledger_key, owner, f"HTTP {response.status}")
    count_by("ActionSucceeded", "rule", action.rule.name)
    logger.info("action done", extra={"rule": action.rule.name, "entity_id": state.entity_id, "target": target.name})


def call(
    action: Action, state: EntityState, http: HttpPort, secrets: SecretReader
) -> tuple[HttpResponse, TargetConfig]:
    """The action's request to its role's target; raises unless the target took it (2xx)."""
    s = settings()
    target = s.target(s.roles[action.rule.role])
    credentials = secrets.get_json(target_secret_name(s.secrets_prefix, target.name))
    if credentials is None:
        raise ConfigurationError(f"secret for target {target.name!r} does not exist")
    try:
        return request_action(action, state, target, credentials, http), target
    except (DeliveryRejected, TargetRefused) as exc:  # no retry helps: the DLQ at once, with the reason
        count_by("ActionFailed", "rule", action.rule.name)
        raise PermanentFailure(f"{action.rule.name}: {exc}" if isinstance(exc, TargetRefused) else str(exc)) from exc
    except DeliveryFailed:
        count_by("ActionFailed", "rule", action.rule.name)
        raise


def write_back(action: Action, state: EntityState, source: str) -> None:
    """Put the action's result on the bus as an observation of the case from the target."""
    publish(result_observation(action, state, source, utcnow()))


def publish(observed: ObservedEntity) -> None:
    ports().bus.put(
        EVENT_SOURCE,
        [(DETAIL_OBSERVED.format(entity_type=observed.entity_type), observed.model_dump_json(exclude_unset=True))],
    )


@cache
def dispatcher() -> Dispatcher:
    store = ports().store
    return Dispatcher(
        rosters=settings().dispatch,
        work=DynamoWorkload(settings().state_table),
        load_ticket=lambda tenant, ticket: store.load(tenant, "ticket", ticket)[0],
        publish=publish,
        count=lambda name: metrics.add_metric(name=name, unit=MetricUnit.Count, value=1),
    )


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    """``lambda_context`` (passed by the batch processor) bounds a claim's lease by the time this
    invocation has left (past it, the worker is gone and the claim may be taken over) and every call
    by a deadline that leaves time to record a failure."""
    budget = Budget.of(lambda_context)
    longest = max((settings().target(name).timeout_seconds for name in settings().roles.values()), default=0.0)
    if budget.lease_seconds < longest + INVOCATION_RESERVE_SECONDS:
        # no call could finish and leave time to record its result: waiting is not failing
        raise Deferred(f"{budget.lease_seconds:.1f} s left in this invocation: too little for an action's call", 0)
    event = EventBridgeModel.model_validate(record.json_body)
    if event.detail_type == SCHEDULED:
        dispatcher().shift_check(event.time)
        return
    changed = EntityChanged.model_validate(event.detail)
    state, _ = ports().store.load(changed.tenant, changed.entity_type, changed.entity_id)
    if state is None:
        raise DeliveryFailed(f"{changed.entity_type} {changed.entity_id} has no state yet")
    if state.entity_type == "ticket":
        dispatcher().on_change(state, event.time)
        return
    order: list[dict[str, Any] | None] = []  # loaded at most once, and only when a rule reads it

    def load_order() -> dict[str, Any] | None:
        if not order:
            order.append(order_of(state))
        return order[0]

    for action in actions_for(state.entity_type, set(changed.changed), state.fields, load_order):
        run(action, state, load_order() if action.rule.role == "customer" else None, budget)
    metrics.add_metric(name="AutomationEvaluated", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings()
    return process_partial_response(event=event, record_handler=record_handler, processor=processor(), context=context)
