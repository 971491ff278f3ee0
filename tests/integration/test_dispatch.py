"""Ticket dispatch on the real handlers: a new ticket goes to the skilled agent on shift with the
least work, the group hears of it, Zendesk gets the assignee written back, a solved ticket frees the
slot, and at shift end the open tickets move to a colleague."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from infra.sandbox.samples import body_bytes, load_sample, signed
from shared.adapters.state_store import DynamoStateStore
from shared.adapters.workload import DynamoWorkload
from tests.integration.conftest import Stack

TICKET = "zendesk:7001"


def _ticket_hook(secret: str, status: str, invocation: str, at: datetime) -> Any:
    sample = copy.deepcopy(load_sample("zendesk_ticket_status_changed"))
    detail = sample["body"]["detail"]
    detail.update(id="7001", status=status, updated_at=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    del detail["assignee_id"]  # new and unassigned: ours to dispatch
    sample["body"]["id"] = f"evt-{invocation}"
    sample["body"]["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return signed(
        "zendesk_ticket_status_changed",
        secret,
        body=body_bytes(sample),
        **{"x-zendesk-webhook-invocation-id": invocation},
    )


def _shift_check(stack: Stack, at: datetime) -> None:
    """What the EventBridge schedule puts on the automation queue every few minutes."""
    event = {
        "version": "0",
        "id": f"check-{at.timestamp():.0f}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": stack.cfg.region,
        "resources": [f"arn:aws:events:{stack.cfg.region}:123456789012:rule/{stack.cfg.resource('dispatch-check')}"],
        "detail": {},
    }
    boto3.client("sqs").send_message(QueueUrl=stack.resources.queue_urls["automation"], MessageBody=json.dumps(event))
    stack.run_until_quiet()


def test_a_new_ticket_is_dispatched_by_skill_and_workload_and_moves_at_shift_end(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    secret = sandbox_secrets["sources"]["zendesk"]["demo"][0]
    roster = stack.cfg.dispatch["demo"]
    now = datetime.now(UTC)
    # The repair agents split the day: 00:00-12:00 and 12:00-24:00 in Shanghai; the English-speaking
    # one lacks the repair skill whatever the hour
    [on_shift] = [a for a in roster.agents if "repair" in a.skills and roster.on_shift(a, now)]
    [colleague] = [a for a in roster.agents if "repair" in a.skills and a.id != on_shift.id]

    assert stack.post(_ticket_hook(secret, "NEW", "9001", now))["statusCode"] == 200
    stack.run_until_quiet()
    store = DynamoStateStore(stack.resources.refs.state_table)
    state, _ = store.load("demo", "ticket", TICKET)
    assert state is not None and state.fields["assignee"] == on_shift.id
    assert state.clocks["assignee"].source == "dispatch"
    work = DynamoWorkload(stack.resources.refs.state_table)
    assert work.loads("demo", [a.id for a in roster.agents]) == {on_shift.id: 1}
    assert work.tickets_of("demo", on_shift.id) == [TICKET]
    # The service group's robot heard of the assignment
    key = sandbox_secrets["targets"]["service-group"]["key"]
    assert any(f"> assignee: {on_shift.id}" in c for c in stack.robot.service.contents(key))

    # The shift ends: the next check moves the open ticket to the colleague now on shift, once
    later = now + timedelta(hours=1)
    while roster.on_shift(on_shift, later) or not roster.on_shift(colleague, later):
        later += timedelta(hours=1)
    _shift_check(stack, later)
    _shift_check(stack, later + timedelta(minutes=5))  # nothing more to move
    state, _ = store.load("demo", "ticket", TICKET)
    assert state is not None and state.fields["assignee"] == colleague.id
    assert work.loads("demo", [a.id for a in roster.agents]) == {on_shift.id: 0, colleague.id: 1}
    assert (work.tickets_of("demo", on_shift.id), work.tickets_of("demo", colleague.id)) == ([], [TICKET])

    # Solved: the colleague's slot is free again
    assert stack.post(_ticket_hook(secret, "SOLVED", "9002", later + timedelta(minutes=6)))["statusCode"] == 200
    stack.run_until_quiet()
    assert work.loads("demo", [colleague.id]) == {colleague.id: 0}
    assert work.holder("demo", TICKET) is None
    assert stack.depth("automation-dlq") == 0
    # Zendesk itself was told each assignment (its REST API: PUT the ticket, the id as an integer); the
    # status it sent us is never sent back to it
    puts = [(d["method"], d["path"], d["body"]) for d in stack.target.accepted("zendesk")]
    assert puts == [
        ("PUT", "/zendesk/api/v2/tickets/7001.json", {"ticket": {"assignee_id": int(on_shift.id)}}),
        ("PUT", "/zendesk/api/v2/tickets/7001.json", {"ticket": {"assignee_id": int(colleague.id)}}),
    ]
    zendesk_key = sandbox_secrets["targets"]["zendesk"]["value"]
    assert {d["headers"]["authorization"] for d in stack.target.accepted("zendesk")} == {zendesk_key}
    totals = stack.functions.metric_totals()
    assert (totals["TicketDispatched"], totals["TicketReassigned"], totals["TicketReleased"]) == (1, 1, 1)
