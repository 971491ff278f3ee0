"""``aftersync customers relink`` and the DynamoDB identity index under hostile timing (review of issue 18).

The state table is moto in-process (with ``infra.sandbox.moto_fidelity``, as tests/integration does);
``relink`` runs as the operator runs it (the Typer command, ``--aws``, its resources pointed at moto).
Customers "stored before the change" are written as the resolver before issue 18 wrote them: keys as
salted HMACs, names in clear in the profile's ``names``. What happens "meanwhile" (a person's decision,
the sync path resolving a record) is done at a fixed point of the run, by wrapping the step before it,
so every test is deterministic.

Tests marked ``FAILS BEFORE FIX`` prove a defect of main 283e384; the others are checks that held.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

import ops.cli.customers as customers_cli
import ops.relink as relink_ops
from infra.config import load_environment
from infra.sandbox import moto_fidelity
from ops.cli.common import Where
from ops.resources import Resources
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.constants import tenant_salt_secret_name
from shared.identity.resolver import (
    IdentityKey,
    hash_key,
    new_customer_id,
    normalise_email,
    normalise_name,
    normalise_phone,
    resolve,
)
from shared.models import Customer

SALT = b"tenant-salt-for-the-relink-hostile-tests!!"
TABLE = "aftersync-dev-state"
TENANT = "demo"
PHONE = "13800138000"
runner = CliRunner()


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_fidelity.apply()
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("secretsmanager").create_secret(
            Name=tenant_salt_secret_name(load_environment("dev").secrets_prefix, TENANT),
            SecretString=json.dumps({"salt": SALT.decode()}),
        )
        stack = Resources("stack", "dev", "eu-west-1", None, TABLE, "view", "aftersync-dev-idem", "archive", {}, None)
        monkeypatch.setattr(Where, "resources", lambda self: stack)
        yield TABLE


def index() -> DynamoIdentityIndex:
    return DynamoIdentityIndex(TABLE, TENANT)


def legacy_customer(source: str, source_id: str, name: str | None, **keys: str) -> str:
    """A customer as the resolver before issue 18 stored it: hashed keys, the name in clear."""
    found = [IdentityKey("source_id", f"{source}:{source_id}")]
    if email := normalise_email(keys.get("email")):
        found.append(IdentityKey("email", email))
    for kind in ("openid", "wecom", "card"):
        if keys.get(kind):
            found.append(IdentityKey(kind, keys[kind]))
    if phone := normalise_phone(keys.get("phone"), "CN"):
        found.append(IdentityKey("phone", phone))
    hashed = [(hash_key(SALT, k), k) for k in found]
    customer_id = new_customer_id(hashed[0][0])
    ddb = boto3.client("dynamodb")
    profile: dict[str, Any] = {
        "pk": {"S": f"{TENANT}#idprofile#{customer_id}"},
        "sk": {"S": "PROFILE"},
    }
    for h, key in hashed:
        ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": f"{TENANT}#idkey#{h}"}, "sk": {"S": "KEY"}},
            UpdateExpression="ADD customers :c",
            ExpressionAttributeValues={":c": {"SS": [customer_id]}},
        )
        if key.strong:
            profile.setdefault(f"kind_{key.kind}", {"SS": []})["SS"].append(h)
    if clear := normalise_name(name):
        profile["names"] = {"SS": [clear]}
    ddb.put_item(TableName=TABLE, Item=profile)
    return customer_id


def sync(source: str, source_id: str, **fields: str) -> str:
    """The sync path resolving one record (a fresh index: one Lambda invocation)."""
    found = index()
    return found.canonical(resolve(Customer(source_customer_id=source_id, **fields), source, found, SALT).customer_id)


def relink(*args: str) -> dict[str, Any]:
    result = runner.invoke(customers_cli.app, ["relink", "--aws", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def items() -> list[dict[str, Any]]:
    ddb, found = boto3.client("dynamodb"), []
    kwargs: dict[str, Any] = {"TableName": TABLE, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        found += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(found, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def profile_item(customer_id: str) -> dict[str, Any]:
    return boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"pk": {"S": f"{TENANT}#idprofile#{customer_id}"}, "sk": {"S": "PROFILE"}}
    )["Item"]


def after_plan(monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]) -> None:
    """Run ``meanwhile`` once relink has computed its plan and before it acts on it."""
    real = relink_ops.plan_relink

    def planned(*args: Any, **kwargs: Any) -> Any:
        plan = real(*args, **kwargs)
        meanwhile()
        return plan

    monkeypatch.setattr(relink_ops, "plan_relink", planned)


def lei_li_in_two_scripts() -> tuple[str, str]:
    """Scenario A of the fixture: the shop's "Lei Li" (e-mail) and the CRM's 李雷 (OpenID), one phone."""
    shop = legacy_customer("shopify", "7180000001", "Lei Li", email="lei@example.com", phone="+86 138 0013 8000")
    crm = legacy_customer("erp", "CRM-18A", "李雷", openid="oU-lei", phone=PHONE)
    return shop, crm


# --- relink against what happens meanwhile ------------------------------------------------------------


def test_a_keep_apart_decided_while_relink_runs_wins(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAILS BEFORE FIX. Defect: relink plans every join first and then absorbs without checking again;
    ``DynamoIdentityIndex.absorb`` has no condition on ``apart``. A person deciding "these are two
    people" after the plan (a relink of a large tenant runs for minutes) is overridden: the two are
    joined, and the candidate's status is rewritten from ``kept_apart`` to ``merged``. Keep-apart must
    win. Fix: re-check ``joinable`` on fresh profiles just before each join, and make the absorb
    transaction conditional (the survivor's ``apart`` does not contain the alias, and vice versa)."""
    shop, crm = lei_li_in_two_scripts()
    after_plan(monkeypatch, lambda: index().decide([shop, crm], merge=False, by="a person"))
    relink("--by", "ops")
    fresh = index()
    assert fresh.canonical(shop) != fresh.canonical(crm)
    [candidate] = fresh.candidates()
    assert candidate["status"] == "kept_apart"


def test_a_disagreeing_email_arriving_while_relink_runs_keeps_them_apart(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAILS BEFORE FIX. Defect (same root as above): between the plan and the join the sync path learns
    that the CRM's 李雷 has another e-mail than the shop's "Lei Li" (two people sharing a phone); the
    live rule would now keep them apart, relink joins them on its stale plan: a wrong merge
    (precision). Fix: as above (re-check on fresh profiles; condition the absorb)."""
    shop, crm = lei_li_in_two_scripts()
    after_plan(monkeypatch, lambda: sync("erp", "CRM-18A", name="李雷", email="another.lei@example.com"))
    relink("--by", "ops")
    fresh = index()
    assert fresh.canonical(shop) != fresh.canonical(crm)


def test_undo_does_not_split_a_join_its_run_did_not_make(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAILS BEFORE FIX. Defect: a crash between journaling a join and making it leaves the join in the
    journal, unmade. A person then merges the two (``aftersync customers merge``). ``relink --undo RUN``
    checks only that the absorbed customer is absorbed *somewhere*, not into this run's survivor by this
    run, and splits the person's merge (and marks it kept apart). Fix: undo a join only when the
    profile's ``alias_of`` is the journaled survivor and ``absorbed_by`` names the run (condition the
    split on both); else report it skipped."""
    shop, crm = lei_li_in_two_scripts()
    real_absorb = DynamoIdentityIndex.absorb

    def crash(self: DynamoIdentityIndex, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Lambda timed out")

    monkeypatch.setattr(DynamoIdentityIndex, "absorb", crash)
    crashed = runner.invoke(customers_cli.app, ["relink", "--aws", "--json", "--by", "ops"])
    assert crashed.exit_code != 0
    monkeypatch.setattr(DynamoIdentityIndex, "absorb", real_absorb)
    [run_pk] = [i["pk"]["S"] for i in items() if i["sk"]["S"] == "RUN"]
    run = run_pk.split("#relink#", 1)[1]
    survivor = json.loads(
        next(i for i in items() if i["pk"]["S"] == run_pk and i["sk"]["S"].startswith("JOIN#"))["record"]["S"]
    )["survivor"]
    absorbed = crm if survivor == shop else shop
    assert index().canonical(absorbed) == absorbed  # the crash left the join unmade
    index().decide([survivor, absorbed], merge=True, by="a person")  # a person merges them
    undone = relink("--undo", run, "--by", "ops")
    assert undone["undone"] == []
    assert index().canonical(absorbed) == survivor  # the person's merge stands


def test_a_second_undo_of_one_run_does_not_split_a_later_merge(table: str) -> None:
    """FAILS BEFORE FIX. Defect (same root): a run undone twice. Between the two undos a person merged
    the two customers; the second undo (the run's header already says ``undone``) splits that merge.
    Fix: refuse to undo a run whose header is ``undone``, and condition each split as above."""
    lei_li_in_two_scripts()
    run = relink("--by", "ops")["run"]
    [join] = index().run_journal(run)[1]
    relink("--undo", run, "--by", "ops")
    index().decide([join["survivor"], join["absorbed"]], merge=True, by="a person")
    again = runner.invoke(customers_cli.app, ["relink", "--aws", "--json", "--undo", run, "--by", "ops"])
    assert index().canonical(join["absorbed"]) == join["survivor"], again.output


def test_clear_names_copied_by_a_live_absorb_during_relink_survive_the_run(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAILS BEFORE FIX. Defect (privacy): ``absorb`` lends an old profile's clear ``names`` to the survivor
    (a profile written after the change). Relink lists the profiles holding clear names once, before
    it rewrites them; a live absorb of a legacy customer into a new one meanwhile copies the clear name
    to a profile that list does not hold. The run ends ``done`` and a clear name stays in the index.
    Fix: never lend ``names`` (lend their hashes: ``with_legacy_names`` of the alias), so no new
    profile ever holds a name in clear."""
    legacy = legacy_customer("douyin", "d-18", "李雷", phone=PHONE)
    new = sync("shopify", "s-18", name="Lei Li", email="lei@example.com")
    real = DynamoIdentityIndex.legacy_profiles

    def listed_then_sync(self: DynamoIdentityIndex) -> dict[str, set[str]]:
        found = real(self)
        # the shop's next order: its own e-mail and the phone the legacy 李雷 holds: absorbed live
        assert sync("shopify", "s-18", name="Lei Li", email="lei@example.com", phone=PHONE) == new
        return found

    monkeypatch.setattr(DynamoIdentityIndex, "legacy_profiles", listed_then_sync)
    result = relink("--by", "ops")
    assert index().canonical(legacy) == new
    assert result["profiles_rewritten"] == 1
    holding = [i["pk"]["S"] for i in items() if "names" in i]
    dumped = json.dumps(items(), ensure_ascii=False)
    assert holding == [] and "李雷" not in dumped


def test_relink_does_not_join_two_people_through_a_customer_known_by_a_one_word_name(table: str) -> None:
    """FAILS BEFORE FIX. Defect: relink joins a *cluster* when every pair of it is joinable, but a pair is
    only required to share a name key where it was found by a shared phone: 张晓明 and 肖明章 share no
    key; each shares one with the shop's one-word "xiaomingzhang" (whose keys are both ``xiaoming|zhang``
    and ``mingzhang|xiao``). All three share the family phone, so the cluster is joined and 张晓明 and
    肖明章 become one customer. Fix: join a cluster only if every pair of it shares a name key (else a
    merge candidate), and do not let one profile's several name keys stand for several people."""
    husband = legacy_customer("erp", "CRM-1", "张晓明", openid="oU-zhang", phone=PHONE)
    wife = legacy_customer("douyin", "d-1", "肖明章", phone=PHONE)
    shop = legacy_customer("woocommerce", "w-1", "xiaomingzhang", email="family@example.com", phone=PHONE)
    relink("--by", "ops")
    fresh = index()
    assert fresh.canonical(husband) != fresh.canonical(wife)
    assert shop  # (the shop's customer may join either one, but not both)


def test_undo_takes_back_what_the_join_lent_when_the_survivor_was_absorbed_since(table: str) -> None:
    """FAILS BEFORE FIX. Defect: relink joined the CRM's 李雷 and the shop's "Lei Li"; the sync path then
    absorbed that survivor into a third customer Z (a WeCom record carrying the shop's e-mail under the
    same name). ``relink --undo`` splits the absorbed customer from the survivor it was journaled with,
    which is itself an alias now: the keys and names the join lent stay in Z's profile (they travelled on
    with the survivor's own when Z absorbed it). The split customer's identity keys and name keep
    answering from Z. Fix: give back what was lent from the canonical survivor (and what travelled with
    it), or refuse/skip the undo of a join whose survivor was absorbed since, saying so."""
    lei_li_in_two_scripts()
    run = relink("--by", "ops")["run"]
    [join] = index().run_journal(run)[1]
    survivor, absorbed = join["survivor"], join["absorbed"]
    lent = json.loads(profile_item(absorbed)["lent"]["S"])
    wecom = sync("wecom", "w-1", name="Lei Li", wecom_external_user_id="wm-lei")
    assert sync("wecom", "w-1", name="Lei Li", wecom_external_user_id="wm-lei", email="lei@example.com") == wecom
    assert index().canonical(survivor) == wecom != survivor
    relink("--undo", run, "--by", "ops")
    assert index().canonical(absorbed) == absorbed
    still = profile_item(wecom)
    kept = {a: sorted(set(v) & set(still.get(a, {}).get("SS", []))) for a, v in lent.items() if a != "apart"}
    assert {a: v for a, v in kept.items() if v} == {}


def test_relink_does_not_join_namesakes_a_nameless_record_named_together(table: str) -> None:
    """FAILS BEFORE FIX. Defect: relink joins the customers of every open merge candidate that share a name
    key. The old resolver raised a candidate when a record *without a name* carried the e-mail of one
    customer and the OpenID of another; two namesakes "Li Lei" (no phone in common) named together that
    way are joined by relink, though the live rule (a name alone never links; a nameless record carrying
    two customers' keys is a candidate) would not join them today. Fix: take from an open candidate
    only what a live record would join: join its customers only when they also share a phone (or the
    candidate's evidence includes ``name``); else leave the candidate to a person. (The join's evidence
    also reads ``phone``: ``plan_relink`` adds ``JOIN_EVIDENCE`` to every join, shared phone or not, so
    the audit record of the join states evidence that does not exist.)"""
    first = legacy_customer("shopify", "s-1", "Li Lei", email="li.lei@example.com", phone="13800138000")
    second = legacy_customer("erp", "CRM-2", "Li Lei", openid="oU-2", phone="13900139000")
    ids = sorted((first, second))
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": f"{TENANT}#merge#{'|'.join(ids)}"},
            "sk": {"S": "CANDIDATE"},
            "customers": {"SS": ids},
            "evidence": {"SS": ["email", "openid"]},
        },
    )
    assert relink("--dry-run")["joins"] == []


def test_two_relink_runs_at_once_make_one_join_and_both_undo_cleanly(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held: two operators run relink at the same moment (both plan before either acts, in threads): one
    run makes the join, the other skips it (checked again on fresh profiles) and both end without an
    error (the rewrite of clear names reads again what the other run rewrote); undoing both leaves each
    customer answering for itself."""
    shop, crm = lei_li_in_two_scripts()
    barrier = threading.Barrier(2, timeout=30)
    real = relink_ops.plan_relink

    def planned(*args: Any, **kwargs: Any) -> Any:
        plan = real(*args, **kwargs)
        barrier.wait()
        return plan

    monkeypatch.setattr(relink_ops, "plan_relink", planned)
    errors: list[BaseException] = []

    def run(by: str) -> None:
        try:
            customers_cli.relink(by=by, dry_run=False, undo=None, tenant=TENANT, json=True, env="dev", aws=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(by,)) for by in ("ops-1", "ops-2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = index()
    assert fresh.canonical(shop) == fresh.canonical(crm)
    runs = sorted(i["pk"]["S"].split("#relink#", 1)[1] for i in items() if i["sk"]["S"] == "RUN")
    assert len(runs) == 2 and errors == []
    for run_id in runs:
        relink("--undo", run_id, "--by", "ops")
    fresh = index()
    assert (fresh.canonical(shop), fresh.canonical(crm)) == (shop, crm)


# --- checks that held ------------------------------------------------------------------------------------


def test_relink_joins_the_scenario_leaves_no_clear_name_and_a_second_run_changes_nothing(table: str) -> None:
    """Held: a dry run changes nothing; a run joins the two, rewrites both clear names as hashes (no clear
    name or phone in any item, journal and ``lent`` included); a second run joins nothing and writes
    only its own run header."""
    shop, crm = lei_li_in_two_scripts()
    before = items()
    dry = relink("--dry-run")
    assert (len(dry["joins"]), dry["profiles_rewritten"], items()) == (1, 2, before)
    first = relink("--by", "ops")
    assert first["joins"] == dry["joins"] and first["profiles_rewritten"] == 2
    fresh = index()
    assert fresh.canonical(shop) == fresh.canonical(crm)
    dumped = json.dumps(items(), ensure_ascii=False).casefold()
    for clear in ("lei li", "李雷", "13800138000", "lei@example.com", "ou-lei"):
        assert clear not in dumped
    settled = [i for i in items() if not i["pk"]["S"].startswith(f"{TENANT}#relink#")]
    second = relink("--by", "ops")
    assert (second["joins"], second["candidates"], second["profiles_rewritten"]) == ([], [], 0)
    assert [i for i in items() if not i["pk"]["S"].startswith(f"{TENANT}#relink#")] == settled


def test_undo_gives_back_both_profiles_as_they_were_but_for_keep_apart(
    table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held: the profiles as they were just before the join (clear names already rewritten: that is not
    undone) are what the undo leaves, item for item, but for the ``apart`` each now holds (the undo is
    a person's keep-apart decision)."""
    shop, crm = lei_li_in_two_scripts()
    before: dict[str, dict[str, Any]] = {}
    real = DynamoIdentityIndex.record_join

    def snapshot(self: DynamoIdentityIndex, run: str, n: int, join: dict[str, Any]) -> None:
        before.update({c: profile_item(c) for c in (shop, crm)})
        real(self, run, n, join)

    monkeypatch.setattr(DynamoIdentityIndex, "record_join", snapshot)
    run = relink("--by", "ops")["run"]
    [join] = index().run_journal(run)[1]
    survivor, absorbed = join["survivor"], join["absorbed"]
    assert profile_item(absorbed)["alias_of"]["S"] == survivor
    relink("--undo", run, "--by", "ops")
    after = {c: profile_item(c) for c in (shop, crm)}
    assert after[survivor].pop("apart") == {"SS": [absorbed]}
    assert after[absorbed].pop("apart") == {"SS": [survivor]}
    assert {c: _sets_sorted(i) for c, i in after.items()} == {c: _sets_sorted(i) for c, i in before.items()}
    assert index().canonical(absorbed) == absorbed


def _sets_sorted(item: dict[str, Any]) -> dict[str, Any]:
    return {k: {"SS": sorted(v["SS"])} if "SS" in v else v for k, v in item.items()}
