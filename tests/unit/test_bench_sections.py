"""The bench's plumbing: one section of bench/RESULTS.md rewritten alone, and the project function's stream
filter as the bench applies it (the event source mapping's, infra/constructs/compute.py)."""

from __future__ import annotations

from typing import Any

from bench.lookup import project_reads
from bench.run import IDENTITY_HEADING, replace_section

RESULTS = "\n".join(
    [
        "# Benchmark results",
        "",
        "## Capacity-model inputs",
        "",
        "old capacity",
        "",
        "## Lookup: DynamoDB calls per lookup",
        "",
        "old lookup",
        "### a subsection of it",
        "old detail",
        "",
        IDENTITY_HEADING,
        "",
        "identity",
        "",
    ]
)


def test_a_section_is_replaced_up_to_the_next_section_and_nothing_else_changes() -> None:
    new = replace_section(RESULTS, ["## Lookup: DynamoDB calls per lookup", "", "new lookup", ""])
    assert new == RESULTS.replace("old lookup\n### a subsection of it\nold detail\n", "new lookup\n")


def test_a_section_not_there_yet_goes_before_identity() -> None:
    without = RESULTS.replace(
        "## Lookup: DynamoDB calls per lookup\n\nold lookup\n### a subsection of it\nold detail\n\n", ""
    )
    new = replace_section(without, ["## Lookup: DynamoDB calls per lookup", "", "new lookup"])
    assert new == without.replace(
        IDENTITY_HEADING, "## Lookup: DynamoDB calls per lookup\n\nnew lookup\n\n" + IDENTITY_HEADING
    )


def test_the_last_section_is_replaced_to_the_end() -> None:
    new = replace_section(RESULTS, [IDENTITY_HEADING, "", "identity again"])
    assert new == RESULTS.replace("identity\n", "identity again\n")


def _record(event: str, sk: str, **images: dict[str, Any]) -> dict[str, Any]:
    return {"eventName": event, "dynamodb": {"Keys": {"pk": {"S": "demo#x"}, "sk": {"S": sk}}, **images}}


def test_the_project_filter_passes_states_audit_inserts_and_profiles_gaining_or_losing_an_alias() -> None:
    alias = {"alias_of": {"S": "cus_a"}}
    passed = [
        _record("INSERT", "STATE"),
        _record("MODIFY", "STATE"),
        _record("INSERT", "AUDIT#000000000001"),
        _record("MODIFY", "PROFILE", NewImage=alias),
        _record("MODIFY", "PROFILE", OldImage=alias, NewImage={}),
    ]
    dropped = [
        _record("REMOVE", "STATE"),
        _record("REMOVE", "AUDIT#000000000001"),
        _record("MODIFY", "PROFILE", NewImage={"name": {"S": "x"}}),
        _record("INSERT", "E#order#shopify:1"),
        _record("INSERT", "T#2026-11-21T02:40:00.000000Z#order#shopify:1#000000000001"),
        _record("MODIFY", "SEL"),
        _record("INSERT", "KEY"),
    ]
    assert [project_reads(r) for r in passed] == [True] * len(passed)
    assert [project_reads(r) for r in dropped] == [False] * len(dropped)
