"""Ticket dispatch: a new, unassigned ticket goes to an agent who has the skills it needs, is on shift
and has the least work relative to capacity; an agent's open tickets move to a colleague when the
agent's shift ends.

The roster is config (``cdk.json dispatch``, per tenant): agents with skills, a capacity and weekly
shifts in the team's UTC offset; ticket tags name the skills a ticket needs. Workload is kept behind
the ``Workload`` port (``shared/adapters/workload.py``: the state table, in transactions), so two
tickets dispatched at once cannot both take an agent's last free slot. The rules are here, free of AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.errors import DeliveryFailed
from shared.models import ObservedEntity, Ticket, utcnow
from shared.sources.base import event_id_for
from shared.state.merge import EntityState

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPEN_STATUSES = frozenset({"new", "open", "pending", "on_hold"})  # solved / closed tickets free their slot


class Shift(BaseModel):
    """``start``–``end`` on the given days, in the roster's offset; an end before the start runs past
    midnight (into the next day); ``24:00`` is the end of the day."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    days: Annotated[tuple[Day, ...], Field(min_length=1)]
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")]

    def covers(self, local: datetime) -> bool:
        start, end = _minutes(self.start), _minutes(self.end)
        now = local.hour * 60 + local.minute
        today, yesterday = DAYS[local.weekday()], DAYS[(local.weekday() - 1) % 7]
        if start < end:
            return today in self.days and start <= now < end
        # overnight: the evening part today, or the morning part of a shift that began yesterday
        return (today in self.days and now >= start) or (yesterday in self.days and now < end)


def _minutes(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


class Agent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Annotated[str, Field(min_length=1, max_length=64)]  # the help desk's own user id: the ticket's assignee
    skills: Annotated[frozenset[str], Field(min_length=1)]
    capacity: Annotated[int, Field(ge=1, le=500)] = 20  # open tickets at most
    shifts: Annotated[tuple[Shift, ...], Field(min_length=1)]


class Roster(BaseModel):
    """One tenant's service team."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    utc_offset: Annotated[str, Field(pattern=r"^[+-](0\d|1[0-4]):[0-5]\d$")] = "+00:00"
    agents: Annotated[tuple[Agent, ...], Field(min_length=1)]
    skills_by_tag: dict[str, str] = {}  # ticket tag -> skill it needs
    default_skill: str = "general"  # a ticket with none of those tags needs this one

    @field_validator("agents")
    @classmethod
    def _unique(cls, agents: tuple[Agent, ...]) -> tuple[Agent, ...]:
        ids = [a.id for a in agents]
        if len(ids) != len(set(ids)):
            raise ValueError(f"agent ids must be unique, got {ids}")
        return agents

    @model_validator(mode="after")
    def _skills_exist(self) -> Roster:
        known = set().union(*(a.skills for a in self.agents))
        needed = {*self.skills_by_tag.values(), self.default_skill}
        if needed - known:
            raise ValueError(f"no agent has the skills {sorted(needed - known)}")
        return self

    @property
    def tz(self) -> timezone:
        sign = -1 if self.utc_offset.startswith("-") else 1
        return timezone(sign * timedelta(minutes=_minutes(self.utc_offset[1:])))

    def agent(self, agent_id: str) -> Agent | None:
        return next((a for a in self.agents if a.id == agent_id), None)

    def needs(self, ticket: Mapping[str, Any]) -> frozenset[str]:
        skills = {self.skills_by_tag[t] for t in ticket.get("tags") or () if t in self.skills_by_tag}
        return frozenset(skills or {self.default_skill})

    def on_shift(self, agent: Agent, now: datetime) -> bool:
        local = now.astimezone(self.tz)
        return any(shift.covers(local) for shift in agent.shifts)

    def choose(
        self, ticket: Mapping[str, Any], loads: Mapping[str, int], now: datetime, exclude: str | None = None
    ) -> Agent | None:
        """The on-shift agent with every skill the ticket needs and room left, least loaded relative
        to capacity (then fewest tickets, then id: the same inputs give the same agent)."""
        needs = self.needs(ticket)
        candidates = [
            a
            for a in self.agents
            if a.id != exclude and needs <= a.skills and loads.get(a.id, 0) < a.capacity and self.on_shift(a, now)
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda a: (loads.get(a.id, 0) / a.capacity, loads.get(a.id, 0), a.id))


def wants_dispatch(fields: Mapping[str, Any], roster: Roster) -> bool:
    """An open ticket nobody in the roster holds (unassigned, or held by someone not in the team)."""
    return fields.get("status") in OPEN_STATUSES and (
        not fields.get("assignee") or roster.agent(str(fields["assignee"])) is None
    )


def at(value: str) -> datetime:
    """An EventBridge ``time`` (``2026-11-23T09:00:00Z``) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def assignment_observation(state: EntityState, agent: str, now: datetime) -> ObservedEntity:
    """The assignment as an observation of the ticket's ``assignee`` from ``dispatch`` (ranked like the
    help desk: the newer of a dispatch and a person's reassignment there wins). The decision comes
    after what it was based on: its clock is at least a millisecond past every clock of the state."""
    after = [at(clock.at) + timedelta(milliseconds=1) for clock in state.clocks.values()]
    decided = max([now, *after])
    key = f"{state.entity_id}:{agent}:{decided.isoformat()}"
    return ObservedEntity(
        event_id=event_id_for(f"dispatch:{key}", "ticket", state.entity_id),
        tenant=state.tenant,
        source="dispatch",
        source_event_id=key,
        topic="automation:dispatch",
        entity_type="ticket",
        entity_id=state.entity_id,
        occurred_at=decided,
        received_at=utcnow(),
        origin="automation",
        entity=Ticket(ticket_id=state.fields["ticket_id"], assignee=agent),
    )


class Workload(Protocol):
    def holder(self, tenant: str, ticket: str) -> str | None: ...
    def loads(self, tenant: str, agents: list[str]) -> dict[str, int]: ...
    def tickets_of(self, tenant: str, agent: str) -> list[str]: ...
    def waiting(self, tenant: str) -> list[str]: ...
    def assign(self, tenant: str, ticket: str, agent: str, capacity: int | None, previous: str | None) -> bool: ...
    def release(self, tenant: str, ticket: str, agent: str) -> bool: ...
    def wait(self, tenant: str, ticket: str) -> None: ...
    def stop_waiting(self, tenant: str, ticket: str) -> None: ...


@dataclass(frozen=True)
class Dispatcher:
    rosters: Mapping[str, Roster]  # tenant -> team
    work: Workload
    load_ticket: Callable[[str, str], EntityState | None]  # (tenant, entity id) -> the ticket's state
    publish: Callable[[ObservedEntity], None]  # an assignment, onto the bus
    count: Callable[[str], None]  # a metric, by name

    def on_change(self, state: EntityState, now: datetime) -> None:
        """A ticket changed: an open one nobody in the team holds goes to the best agent on shift; a
        solved or closed one frees its slot; one a person moved to a team member is counted there, one
        a person gave to someone outside the team leaves the team's count."""
        roster = self.rosters.get(state.tenant)
        if roster is None:
            return
        tenant, ticket, fields = state.tenant, state.entity_id, state.fields
        held = self.work.holder(tenant, ticket)
        if fields.get("status") not in OPEN_STATUSES:
            if held is not None and self.work.release(tenant, ticket, held):
                self.count("TicketReleased")
            self.work.stop_waiting(tenant, ticket)
            return
        if not wants_dispatch(fields, roster):  # a team member holds it (we, or a person, chose them)
            assignee = str(fields["assignee"])
            if held != assignee and not self.work.assign(tenant, ticket, assignee, None, held):
                raise DeliveryFailed(f"ticket {ticket} moved while recording its assignee: retried")
            return
        if held is not None:
            if fields.get("assignee"):  # a person gave it to someone outside the team: not ours to count
                self.work.release(tenant, ticket, held)
            else:  # ours, and the assignment not yet in the ticket's state: write it again
                self.publish(assignment_observation(state, held, now))
            return
        agent = roster.choose(fields, self.work.loads(tenant, [a.id for a in roster.agents]), now)
        if agent is None:  # nobody on shift with the skills and room: the shift check tries again
            self.work.wait(tenant, ticket)
            self.count("TicketWaiting")
            return
        if not self.work.assign(tenant, ticket, agent.id, agent.capacity, None):
            raise DeliveryFailed(f"ticket {ticket}: {agent.id} filled up or the ticket moved: retried")
        self.count("TicketDispatched")
        self.publish(assignment_observation(state, agent.id, now))

    def shift_check(self, now: datetime) -> None:
        """Every few minutes: the open tickets of agents whose shift is over move to colleagues on
        shift, and tickets that waited for an agent are dispatched."""
        for tenant, roster in self.rosters.items():
            ids = [a.id for a in roster.agents]
            for agent in (a for a in roster.agents if not roster.on_shift(a, now)):
                for ticket in self.work.tickets_of(tenant, agent.id):
                    state = self.load_ticket(tenant, ticket)
                    if state is None or state.fields.get("status") not in OPEN_STATUSES:
                        self.work.release(tenant, ticket, agent.id)
                        continue
                    colleague = roster.choose(state.fields, self.work.loads(tenant, ids), now, exclude=agent.id)
                    if colleague is None:  # nobody can take it: it stays, and the next check tries again
                        self.count("TicketNotReassigned")
                    elif self.work.assign(tenant, ticket, colleague.id, colleague.capacity, agent.id):
                        self.count("TicketReassigned")
                        self.publish(assignment_observation(state, colleague.id, now))
            for ticket in self.work.waiting(tenant):
                state = self.load_ticket(tenant, ticket)
                if state is None:
                    self.work.stop_waiting(tenant, ticket)
                else:
                    self.on_change(state, now)
