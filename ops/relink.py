"""``aftersync customers relink``: apply a relink plan (``shared.identity.relink``) to the identity index,
journaled and undoable, and undo a run."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from shared.adapters.identity_index import DynamoIdentityIndex, JoinRaced
from shared.identity.names import name_hashes
from shared.identity.relink import RelinkPlan, plan_relink, still_joinable


def run_relink(index: DynamoIdentityIndex, salt: bytes, by: str | None, dry_run: bool) -> dict[str, Any]:
    """The plan, and unless ``dry_run`` its application: clear names rewritten as hashes first (a join
    then lends only hashes), each join journaled before it is made, candidates raised once."""
    plan = plan_relink(index, salt)
    legacy = index.legacy_profiles()
    run = None
    skipped: list[dict[str, str]] = []
    if not dry_run:
        run = datetime.now(UTC).strftime("rl-%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
        header = {"by": by, "at": datetime.now(UTC).isoformat(timespec="seconds"), "status": "running"}
        index.record_run(run, header)
        try:
            skipped = _apply(index, salt, by, run, plan, legacy, header)
        except Exception as exc:
            index.record_run(run, {**header, "status": "stopped", "error": type(exc).__name__})
            raise RelinkStopped(
                f"relink run {run} stopped ({type(exc).__name__}: {exc}); what it joined is journaled: "
                f"run relink again to finish, or undo it with --undo {run}"
            ) from exc
    return {
        "run": run,
        "dry_run": dry_run,
        "joins": [j.as_dict() for j in plan.joins if not any(s["absorbed"] == j.absorbed for s in skipped)],
        "candidates": [c.as_dict() for c in plan.candidates],
        "profiles_rewritten": len(legacy),
        **({"skipped": skipped} if skipped else {}),
        "plan": plan,
    }


class RelinkStopped(Exception):
    """A run stopped part way (its header says so); the message is the one line an operator reads."""


def _apply(
    index: DynamoIdentityIndex,
    salt: bytes,
    by: str | None,
    run: str,
    plan: RelinkPlan,
    legacy: dict[str, set[str]],
    header: dict[str, Any],
) -> list[dict[str, Any]]:
    skipped: list[dict[str, Any]] = []
    rewrite = lambda name: name_hashes(name, salt)  # noqa: E731
    for customer_id, clear in sorted(legacy.items()):
        index.rewrite_legacy_names(customer_id, clear, rewrite)
    decided_by = f"{by} (relink {run})"
    for n, join in enumerate(plan.joins):
        index.forget()  # read now, not as the plan saw them: a person, the sync path or another run acts too
        why = still_joinable(index, salt, join.survivor, join.absorbed)
        if why is None:
            index.record_join(run, n, join.as_dict())
            try:
                index.absorb(join.absorbed, join.survivor, (*join.evidence, f"relink {run}"), by=decided_by)
            except JoinRaced:  # absorbed or kept apart between the check and the join
                why = "one of them was joined or kept apart meanwhile; run relink again"
        if why is not None:
            skipped.append({**join.as_dict(), "why": why})
            continue
        index.record_decision([join.survivor, join.absorbed], True, decided_by, join.evidence)
    for proposal in plan.candidates:
        index.merge_candidate(proposal.customers, proposal.evidence)
    for customer_id, clear in sorted(index.legacy_profiles().items()):  # lent meanwhile by a live join
        index.rewrite_legacy_names(customer_id, clear, rewrite)
    counts = {"joins": len(plan.joins) - len(skipped), "candidates": len(plan.candidates)}
    index.record_run(run, {**header, **counts, "profiles_rewritten": len(legacy), "status": "done"})
    return skipped


def undo_relink(index: DynamoIdentityIndex, run: str, by: str) -> dict[str, Any]:
    """Split every join of a run, newest first, and keep each pair apart (a person's word that they are
    two people). A join a crash left unmade, or one split since, is listed as skipped."""
    header, joins = index.run_journal(run)
    if header is None:
        raise LookupError(f"no relink run {run!r} for tenant {index.tenant!r}")
    if header.get("status") == "undone":
        raise LookupError(
            f"relink run {run!r} was undone already ({header.get('undone_at')}, by {header.get('undone_by')})"
        )
    undone: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for join in reversed(joins):
        survivor, absorbed = join["survivor"], join["absorbed"]
        try:  # only a join this run made, still as it made it
            index.split(absorbed, survivor_was=survivor, absorbed_by=f"{header.get('by')} (relink {run})")
        except ValueError as exc:
            skipped.append({"survivor": survivor, "absorbed": absorbed, "why": str(exc)})
            continue
        index.keep_apart([survivor, absorbed])
        index.record_decision([survivor, absorbed], False, f"{by} (undo relink {run})", ("undo of a relink",))
        undone.append({"survivor": survivor, "absorbed": absorbed})
    index.record_run(
        run,
        {**header, "status": "undone", "undone_by": by, "undone_at": datetime.now(UTC).isoformat(timespec="seconds")},
    )
    return {"run": run, "undone": undone, "skipped": skipped}
