"""``aftersync customers relink`` against the running sandbox, on what the resolver before issue 18 left.

The state table starts as ``tests/fixtures/identity_before_18.json`` (made by the old code, see
``tests/fixtures/make_identity_before_18.py``): a person a shop knows by a pinyin name and a Chinese
channel by the hanzi name, under one phone, are two customers there. Relink re-resolves them by the
rule of issue 18: A and B join, C does not (a person kept them apart), D (homophones) is a merge
candidate, E (a namesake with another phone) stays alone; it rewrites the profiles' clear-text names
as salted hashes; a dry run changes nothing; a run is undone as a person's decision.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CLI, ROOT, RunningSandbox

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "identity_before_18.json"
DOCUMENT = json.loads(FIXTURE.read_text(encoding="utf-8"))
SCENARIOS: dict[str, Any] = DOCUMENT["header"]["scenarios"]
IDS = {name: sorted(c["customer_id"] for c in s["customers"].values()) for name, s in SCENARIOS.items()}
A, B, C, D, E = (IDS[name] for name in "ABCDE")
[E_ID] = E
NAMES = ["Lei Li", "李雷", "ZHANG Xiaoming", "张晓明", "Wei Wang", "王伟", "李蕾"]
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _from_json(value: dict[str, Any]) -> dict[str, Any]:
    """An attribute value of the fixture back into boto3's form (binary values are base64 there)."""
    [(kind, content)] = value.items()
    if kind == "B":
        return {"B": base64.b64decode(content)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in content]}
    if kind == "M":
        return {"M": {k: _from_json(v) for k, v in content.items()}}
    if kind == "L":
        return {"L": [_from_json(v) for v in content]}
    return value


def _load_fixture(sandbox: RunningSandbox) -> None:
    ddb, table = sandbox.client("dynamodb"), sandbox.info["state_table"]
    items = [{k: _from_json(v) for k, v in item.items()} for item in DOCUMENT["items"]]
    for start in range(0, len(items), 25):
        requests: dict[str, Any] = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while requests:
            requests = ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}


def _items(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    """Every item of the state table, in key order."""
    ddb, found = sandbox.client("dynamodb"), []
    kwargs: dict[str, Any] = {"TableName": sandbox.info["state_table"], "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        found += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(found, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _settled_items(sandbox: RunningSandbox) -> list[dict[str, Any]]:
    """The table once the pipeline stopped writing to it: what the loaded audit records set off on the
    table stream (publish, deliveries) has run its course and two scans a second apart agree."""
    previous: list[dict[str, Any]] | None = None
    for _ in range(30):
        sandbox.wait_drained()
        items = _items(sandbox)
        if items == previous:
            return items
        previous = items
        time.sleep(1)
    raise AssertionError("the state table kept changing")


def _cli(*args: str) -> dict[str, Any]:
    result = subprocess.run([CLI, *args], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, f"aftersync {' '.join(args)}: exit {result.returncode}\n{result.stderr}"
    return json.loads(result.stdout)


def _pairs(joins: list[dict[str, Any]]) -> set[frozenset[str]]:
    return {frozenset((j["survivor"], j["absorbed"])) for j in joins}


def _absorbed_into(customer_id: str) -> str | None:
    return _cli("entity", "show", "customer", customer_id, "--tenant", "demo", "--json").get("absorbed_into")


def _strings(value: Any) -> list[str]:
    """Every string in a DynamoDB item, attribute names too."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_relink_joins_across_scripts_keeps_a_persons_decision_rewrites_names_and_undoes(
    sandbox: RunningSandbox,
) -> None:
    _load_fixture(sandbox)
    assert _settled_items(sandbox)  # the old state, in place and quiet

    kept = subprocess.run(
        [CLI, "customers", "keep-apart", *C, "--by", "e2e", "--tenant", "demo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert kept.returncode == 0, kept.stderr

    # A dry run: what a run would do, and not one byte changed
    before = _settled_items(sandbox)
    dry = _cli("customers", "relink", "--tenant", "demo", "--dry-run", "--json")
    assert set(dry) == {"run", "dry_run", "joins", "candidates", "profiles_rewritten"}
    assert (dry["run"], dry["dry_run"]) == (None, True)
    assert len(dry["joins"]) == 2 and _pairs(dry["joins"]) == {frozenset(A), frozenset(B)}
    for join in dry["joins"]:
        assert set(join) == {"survivor", "absorbed", "evidence"} and "phone" in join["evidence"]
        assert all(isinstance(e, str) for e in join["evidence"])
    assert [c["customers"] for c in dry["candidates"]] == [D]  # C kept apart, E alone: neither named
    [candidate] = dry["candidates"]
    assert candidate["evidence"] and all(isinstance(e, str) for e in candidate["evidence"])
    profiles_with_names = [i for i in before if "#idprofile#" in i["pk"]["S"] and "names" in i]
    assert len(profiles_with_names) == 9
    assert dry["profiles_rewritten"] == 9  # every profile holds a clear-text name: all are rewritten
    assert _items(sandbox) == before

    # The run: the same joins, under a run id
    ran = _cli("customers", "relink", "--tenant", "demo", "--by", "e2e", "--json")
    assert (ran["dry_run"], isinstance(ran["run"], str) and ran["run"] != "") == (False, True)
    assert len(ran["joins"]) == 2 and _pairs(ran["joins"]) == {frozenset(A), frozenset(B)}
    assert all("phone" in j["evidence"] for j in ran["joins"])
    assert [c["customers"] for c in ran["candidates"]] == [D]
    assert ran["profiles_rewritten"] == 9
    run = ran["run"]
    for join in ran["joins"]:
        assert _absorbed_into(join["absorbed"]) == join["survivor"]
        assert _absorbed_into(join["survivor"]) is None
    for customer_id in [*C, *D, E_ID]:
        assert _absorbed_into(customer_id) is None
    statuses = {
        tuple(c["customers"]): c["status"] for c in _cli("customers", "candidates", "--all", "--json")["candidates"]
    }
    assert statuses == {tuple(A): "merged", tuple(B): "merged", tuple(C): "kept_apart", tuple(D): "open"}

    # No clear-text name is left in the identity index: salted hashes in name_keys instead
    after = _items(sandbox)
    assert [i["pk"]["S"] for i in after if "names" in i] == []
    profiles = [i for i in after if "#idprofile#" in i["pk"]["S"]]
    assert len(profiles) == 9
    for profile in profiles:
        if "alias_of" not in profile:
            assert profile["name_keys"]["SS"], profile["pk"]["S"]
        for value in profile.get("name_keys", {}).get("SS", []):
            assert HEX64.match(value), (profile["pk"]["S"], value)
    forms = {form for name in NAMES for form in (name, name.lower(), name.casefold())}
    leaks = sorted({(p["pk"]["S"], form) for p in profiles for s in _strings(p) for form in forms if form in s})
    assert leaks == []

    # Idempotent: nothing left to join
    assert _cli("customers", "relink", "--tenant", "demo", "--dry-run", "--json")["joins"] == []

    # Undone: the two joins come apart, and a person's undoing keeps them apart
    undone = _cli("customers", "relink", "--undo", run, "--by", "e2e", "--json")
    assert set(undone) == {"run", "undone", "skipped"} and undone["run"] == run and undone["skipped"] == []
    assert sorted((u["survivor"], u["absorbed"]) for u in undone["undone"]) == sorted(
        (j["survivor"], j["absorbed"]) for j in ran["joins"]
    )
    for customer_id in [*A, *B]:
        assert _absorbed_into(customer_id) is None
    assert _cli("customers", "relink", "--tenant", "demo", "--dry-run", "--json")["joins"] == []

    # The customer view, rebuilt from the stored states with the projector's code through the CLI: once
    # the pipeline is quiet, a rebuild puts what the stream did not, and a second one changes nothing
    _settled_items(sandbox)
    rebuilt = _cli("lookup", "rebuild", "--tenant", "demo", "--json")
    assert rebuilt["dry_run"] is False and rebuilt["states"] >= 9
    again = _cli("lookup", "rebuild", "--tenant", "demo", "--json")
    assert (again["states"], again["changes"]) == (rebuilt["states"], 0)
    # the view is in its own table: a sandbox's state table holds none of it to purge
    purged = _cli("lookup", "rebuild", "--tenant", "demo", "--purge-state-table", "--json")
    assert (purged["purged"], purged["changes"]) == (0, 0)
