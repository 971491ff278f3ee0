"""Ticket dispatch: skills, shifts (overnight ones too), workload relative to capacity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.dispatch import Roster, wants_dispatch

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
