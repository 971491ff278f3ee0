"""Re-resolution of the customers already stored, under today's rules (``aftersync customers relink``).

Customers created before names were compared across scripts and orders stay apart though the live
resolver would now join them: ``Lei Li`` from the shop and ``李雷`` from Youzan with one phone. A
relink finds them and applies the very tests a live record must pass (``shared.identity.resolver``):

- two customers sharing a phone, with a name key in common (the same name in either script or order),
  no strong key kind on which they differ, no name both wrote in hanzi in other characters, and no
  person's decision that they are two: **joined** (the one with more strong keys survives; the other
  answers to it through an alias that keeps the evidence and what the join lent it, so it can be
  undone);
- the same phone under homophones in other characters (李蕾 and 李雷) with nothing else to tell them
  apart: a **merge candidate** for a person;
- anything else: left as it is. Open merge candidates are left to a person: they are proposals
  already, and what raised them (the name of the record that named both) is not kept.

Joins of more than two customers happen only when every pair passes; otherwise they are proposed as
one merge candidate. The plan is computed first and shown (``--dry-run`` stops there); a run checks
each join again on profiles read just before it (``still_joinable``), and the absorption itself is
conditional on neither side being absorbed or kept apart from the other since.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.identity.resolver import (
    CustomerProfile,
    joinable,
    names_conflict,
    strong_keys_agree,
    with_legacy_names,
)

JOIN_EVIDENCE = ("name", "phone")


class StoredIdentities(Protocol):
    def canonical(self, customer_id: str) -> str: ...

    def profile(self, customer_id: str) -> CustomerProfile: ...

    def shared_keys(self) -> list[set[str]]: ...

    def candidates(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Join:
    survivor: str
    absorbed: str
    evidence: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"survivor": self.survivor, "absorbed": self.absorbed, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class Proposal:
    customers: tuple[str, ...]
    evidence: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"customers": list(self.customers), "evidence": list(self.evidence)}


@dataclass
class RelinkPlan:
    joins: list[Join] = field(default_factory=list)
    candidates: list[Proposal] = field(default_factory=list)


def plan_relink(index: StoredIdentities, salt: bytes) -> RelinkPlan:
    profiles: dict[str, CustomerProfile] = {}

    def profile(customer_id: str) -> CustomerProfile:
        if customer_id not in profiles:
            profiles[customer_id] = with_legacy_names(index.profile(customer_id), salt)
        return profiles[customer_id]

    decided_or_raised = {tuple(c["customers"]) for c in index.candidates()}
    # Customers sharing a phone: what the live rule joins on (phone + the same name). An open merge
    # candidate is already a proposal for a person, and what raised it (a record's name) is not kept.
    groups = index.shared_keys()

    # Which pairs may be joined, which are homophones for a person; over canonical customers.
    to_join: dict[tuple[str, str], tuple[str, ...]] = {}
    homophone: dict[tuple[str, str], tuple[str, ...]] = {}
    for ids in groups:
        canonical = sorted({index.canonical(c) for c in ids})
        for a, b in itertools.combinations(canonical, 2):
            pa, pb = profile(a), profile(b)
            if not (pa.names & pb.names):
                continue  # another name: another person sharing the phone, or not ours to decide
            if joinable(profile, (a, b)):
                to_join[(a, b)] = JOIN_EVIDENCE
            elif names_conflict(pa, pb) and strong_keys_agree(pa, pb) and a not in pb.apart and b not in pa.apart:
                homophone[(a, b)] = ("homophone name", "phone")

    plan = RelinkPlan()
    for cluster in _clusters(to_join):
        if not joinable(profile, cluster):  # A~B and B~C but A and C differ: a person decides
            if tuple(cluster) not in decided_or_raised:
                shared = {e for pair, ev in to_join.items() if set(pair) <= set(cluster) for e in ev}
                plan.candidates.append(Proposal(tuple(cluster), tuple(sorted(shared))))
            continue
        survivor = max(cluster, key=lambda c: (sum(len(v) for v in profile(c).strong_kinds.values()), c))
        for other in cluster:
            if other != survivor:
                seen = {e for pair, ev in to_join.items() if other in pair for e in ev}
                plan.joins.append(Join(survivor, other, tuple(sorted(seen))))
    for pair, evidence in sorted(homophone.items()):
        if pair not in decided_or_raised:
            plan.candidates.append(Proposal(pair, evidence))
    return plan


def _clusters(pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    clusters: dict[str, list[str]] = {}
    for x in sorted(parent):
        clusters.setdefault(find(x), []).append(x)
    return sorted(clusters.values())


def still_joinable(index: StoredIdentities, salt: bytes, survivor: str, absorbed: str) -> str | None:
    """None if the join may still be made as planned (on profiles read now); else why not."""
    if index.canonical(absorbed) != absorbed or index.canonical(survivor) != survivor:
        return "one of them was joined meanwhile; run relink again"

    def profile(customer_id: str) -> CustomerProfile:
        return with_legacy_names(index.profile(customer_id), salt)

    a, b = profile(survivor), profile(absorbed)
    if not (a.names & b.names) or not joinable(profile, (survivor, absorbed)):
        return "no longer passes the rule (a keep-apart, another key or name learned meanwhile)"
    return None
