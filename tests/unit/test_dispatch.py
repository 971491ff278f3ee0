"""Ticket dispatch: skills, shifts (overnight ones too), workload relative to capacity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.automation.dispatch import Dispatcher, Roster, wants_dispatch
from shared.state.merge import EntityState

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ROSTER = Roster.model_validate(
    {
        "utc_offset": "+08:00",
        "skills_by_tag": {"repair": "repair", "english": "english"},
        "agents": [
            {
                "id": "ann",
                "skills": ["general", "repair"],
                "capacity": 2,
                "shifts": [{"days": EVERY_DAY, "start": "09:00", "end": "18:00"}],
            },
            {
                "id": "bo",
                "skills": ["general", "repair"],
                "capacity": 4,
                "shifts": [{"days": EVERY_DAY, "start": "09:00", "end": "18:00"}],
            },
            {
                "id": "cy",
                "skills": ["general", "english"],
                "capacity": 4,
                "shifts": [{"days": ["fri"], "start": "22:00", "end": "06:00"}],
            },
        ],
    }
)
# Friday 2026-11-20, 10:00 in Shanghai
FRIDAY_MORNING = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def test_the_least_loaded_skilled_agent_on_shift_gets_the_ticket() -> None:
    repair = {"status": "new", "tags": ["repair", "warranty"]}
    assert ROSTER.choose(repair, {}, FRIDAY_MORNING).id == "ann"  # type: ignore[union-attr]  # equal: by id
    # ann holds 1 of 2 (50 %), bo 1 of 4 (25 %): bo has more room
    assert ROSTER.choose(repair, {"ann": 1, "bo": 1}, FRIDAY_MORNING).id == "bo"  # type: ignore[union-attr]
    assert ROSTER.choose(repair, {"ann": 2, "bo": 4}, FRIDAY_MORNING) is None  # everyone full
    assert ROSTER.choose(repair, {}, FRIDAY_MORNING, exclude="ann").id == "bo"  # type: ignore[union-attr]
    # English is cy's alone, and cy is not on shift on Friday morning
    assert ROSTER.choose({"status": "new", "tags": ["english"]}, {}, FRIDAY_MORNING) is None


@pytest.mark.parametrize(
    ("utc", "on_shift"),
    [
        (datetime(2026, 11, 20, 13, 59, tzinfo=UTC), False),  # Fri 21:59 local
        (datetime(2026, 11, 20, 14, 0, tzinfo=UTC), True),  # Fri 22:00: the shift starts
        (datetime(2026, 11, 20, 21, 59, tzinfo=UTC), True),  # Sat 05:59: the same shift, past midnight
        (datetime(2026, 11, 20, 22, 0, tzinfo=UTC), False),  # Sat 06:00: over
        (datetime(2026, 11, 21, 14, 0, tzinfo=UTC), False),  # Sat 22:00: not a shift day
    ],
)
def test_an_overnight_shift_runs_into_the_next_morning(utc: datetime, on_shift: bool) -> None:
    cy = ROSTER.agent("cy")
    assert cy is not None and ROSTER.on_shift(cy, utc) is on_shift


def test_only_open_tickets_nobody_in_the_team_holds_are_dispatched() -> None:
    assert wants_dispatch({"status": "new"}, ROSTER)
    assert wants_dispatch({"status": "open", "assignee": "someone-who-left"}, ROSTER)
    assert not wants_dispatch({"status": "open", "assignee": "bo"}, ROSTER)
    assert not wants_dispatch({"status": "solved"}, ROSTER)
    assert ROSTER.needs({"tags": ["vip"]}) == {"general"}  # no skill tag: the default skill


def test_a_roster_naming_a_skill_nobody_has_is_refused_with_the_skill() -> None:
    with pytest.raises(ValidationError, match=r"no agent has the skills \['refund'\]"):
        Roster.model_validate({**ROSTER.model_dump(), "skills_by_tag": {"refund": "refund"}})
    with pytest.raises(ValidationError, match="end"):
        Roster.model_validate(
            {
                "agents": [
                    {"id": "x", "skills": ["general"], "shifts": [{"days": ["mon"], "start": "09:00", "end": "25:00"}]}
                ]
            }
        )


class MemoryWorkload:
    """The Workload port in memory, with the adapter's conditions."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.waits: set[str] = set()

    def holder(self, tenant: str, ticket: str) -> str | None:
        return self.held.get(ticket)

    def loads(self, tenant: str, agents: list[str]) -> dict[str, int]:
        return {a: n for a in agents if (n := sum(1 for h in self.held.values() if h == a))}

    def tickets_of(self, tenant: str, agent: str) -> list[str]:
        return sorted(t for t, h in self.held.items() if h == agent)

    def waiting(self, tenant: str) -> list[str]:
        return sorted(self.waits)

    def assign(self, tenant: str, ticket: str, agent: str, capacity: int | None, previous: str | None) -> bool:
        if self.held.get(ticket) != previous or (
            capacity is not None and self.loads(tenant, [agent]).get(agent, 0) >= capacity
        ):
            return False
        self.held[ticket] = agent
        self.waits.discard(ticket)
        return True

    def release(self, tenant: str, ticket: str, agent: str) -> bool:
        return self.held.pop(ticket) == agent if self.held.get(ticket) == agent else False

    def wait(self, tenant: str, ticket: str) -> None:
        self.waits.add(ticket)

    def stop_waiting(self, tenant: str, ticket: str) -> None:
        self.waits.discard(ticket)


def _ticket(fields: dict[str, object]) -> EntityState:
    return EntityState(tenant="t", entity_type="ticket", entity_id="zendesk:1", fields={"ticket_id": "1", **fields})


def test_dispatch_assigns_counts_and_steps_back_when_a_person_gives_the_ticket_outside_the_team() -> None:
    work, published, counted = MemoryWorkload(), [], []
    dispatcher = Dispatcher({"t": ROSTER}, work, lambda t, i: None, published.append, counted.append)
    dispatcher.on_change(_ticket({"status": "new", "tags": ["repair"]}), FRIDAY_MORNING)
    assert work.held == {"zendesk:1": "ann"} and counted == ["TicketDispatched"]
    [observed] = published
    assert (observed.source, observed.entity.assignee, observed.occurred_at) == ("dispatch", "ann", FRIDAY_MORNING)  # type: ignore[union-attr]
    # The same change again (at-least-once): the assignment is only written again, not made twice
    dispatcher.on_change(_ticket({"status": "new", "tags": ["repair"]}), FRIDAY_MORNING)
    assert work.held == {"zendesk:1": "ann"} and counted == ["TicketDispatched"] and len(published) == 2
    # A person moves it to bo (in the team): counted with bo; then to an outsider: nobody's count
    dispatcher.on_change(_ticket({"status": "open", "assignee": "bo"}), FRIDAY_MORNING)
    assert work.held == {"zendesk:1": "bo"}
    dispatcher.on_change(_ticket({"status": "open", "assignee": "partner-desk"}), FRIDAY_MORNING)
    assert work.held == {} and len(published) == 2  # and not taken back from the person's choice
