"""One customer across scripts through the real handlers on moto, and relink on the stored index: live
links of `Lei Li` and `李雷`, no name in clear, a join split back exactly, two relink runs at once and a
relink racing the sync path."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import boto3

from ops.relink import run_relink, undo_relink
from shared.adapters.identity_index import DynamoIdentityIndex
from shared.adapters.state_store import DynamoStateStore
from shared.identity.names import name_hashes
from tests.e2e.test_relink_sandbox import DOCUMENT, _from_json
from tests.fakes import erp_webhook
from tests.integration.conftest import Stack
from tests.integration.test_customer_identity import order_webhook

A, B, C, D = (
    sorted(c["customer_id"] for c in DOCUMENT["header"]["scenarios"][s]["customers"].values()) for s in "ABCD"
)
[E] = [c["customer_id"] for c in DOCUMENT["header"]["scenarios"]["E"]["customers"].values()]
CLEAR = ["lei li", "李雷", "李蕾", "zhang xiaoming", "张晓明", "wei wang", "王伟"]


def _salt(sandbox_secrets: dict[str, Any]) -> bytes:
    return str(sandbox_secrets["tenants"]["demo"]["identity_salt"]).encode()


def _crm_customer(webhook_id: str, source_id: str, **entity: str) -> Any:
    observation = {
        "entity_type": "customer",
        "entity_id": source_id,
        "occurred_at": "2026-12-01T08:00:00Z",
        "entity": {"source_customer_id": source_id, **entity},
    }
    return erp_webhook(webhook_id, observation)


def _index_items(stack: Stack) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=stack.resources.refs.state_table)["Items"]
    return [
        i for i in items if "#idprofile#" in i["pk"]["S"] or "#idkey#" in i["pk"]["S"] or "#relink#" in i["pk"]["S"]
    ]


def _load_fixture(stack: Stack) -> None:
    ddb, table = boto3.client("dynamodb"), stack.resources.refs.state_table
    for item in DOCUMENT["items"]:
        ddb.put_item(TableName=table, Item={k: _from_json(v) for k, v in item.items()})


def _index(stack: Stack) -> DynamoIdentityIndex:
    return DynamoIdentityIndex(stack.resources.refs.state_table, "demo")


def test_a_shop_buyer_in_pinyin_and_the_crm_in_hanzi_with_one_phone_are_one_customer(
    stack: Stack, shopify_secret: str
) -> None:
    lei = {"id": 2001, "first_name": "Lei", "last_name": "Li", "email": "lei@example.com", "phone": "+86 138 0013 8000"}
    # In this order: a shop customer known only in pinyin takes the first hanzi form seen with its phone
    # (until then 李雷 and 李蕾 fit it alike); the homophone after it is a merge candidate.
    stack.post(order_webhook(shopify_secret, 21, lei, "lei@example.com"))
    stack.run_until_quiet()
    stack.post(_crm_customer("msg_crm_1", "CRM-1", name="李雷", phone="138-0013-8000", openid="oU-lei"))
    stack.run_until_quiet()
    stack.post(_crm_customer("msg_crm_2", "CRM-2", name="李蕾", phone="13800138000"))  # nothing else to tell
    stack.run_until_quiet()
    order, _ = DynamoStateStore(stack.resources.refs.state_table).load("demo", "order", "shopify:21")
    assert order is not None
    index = _index(stack)
    shop_customer = index.canonical(order.fields["customer_id"])
    crm = [index.canonical(c) for c in _customers_of(stack, "CRM-1", "CRM-2")]
    assert crm[0] == shop_customer != crm[1]
    assert index.candidates() == [
        {"customers": sorted((shop_customer, crm[1])), "evidence": ["homophone name", "phone"], "status": "open"}
    ]
    # No name in clear anywhere in the index: only 64-hex HMACs under name_keys / name_forms / name_written.
    text = json.dumps(_index_items(stack), ensure_ascii=False).casefold()
    assert not any(name in text for name in ("lei", "李", "蕾", "138"))
    profiles = [i for i in _index_items(stack) if i["sk"]["S"] == "PROFILE"]
    assert profiles and all("names" not in p for p in profiles)
    assert all(len(h) == 64 for p in profiles for h in p.get("name_keys", {}).get("SS", []))


def _customers_of(stack: Stack, *crm_ids: str) -> list[str]:
    store = DynamoStateStore(stack.resources.refs.state_table)
    found = {}
    for _, entity_type, entity_id in store.entities("demo"):
        if entity_type == "customer":
            state, _ = store.load("demo", "customer", entity_id)
            assert state is not None
            for crm_id in crm_ids:
                if state.fields.get("source_customer_id.erp") == crm_id:
                    found[crm_id] = entity_id
    return [found[c] for c in crm_ids]


def test_a_join_split_again_leaves_both_profiles_exactly_as_they_were(stack: Stack) -> None:
    _load_fixture(stack)
    index = _index(stack)
    salt = b"any-tenant-salt-of-thirty-two-chars!"
    for customer_id, clear in index.legacy_profiles().items():
        index.rewrite_legacy_names(customer_id, clear, lambda name: name_hashes(name, salt))
    before = {i["pk"]["S"]: i for i in _index_items(stack)}
    index.absorb(A[0], A[1], ("phone", "name"), by="test")
    assert _index(stack).canonical(A[0]) == A[1]
    assert index.split(A[0]) == A[1]
    after = {i["pk"]["S"]: i for i in _index_items(stack)}
    assert after == before


def test_two_relink_runs_at_once_join_each_pair_once_and_never_make_a_cycle(
    stack: Stack, sandbox_secrets: dict[str, Any]
) -> None:
    _load_fixture(stack)
    salt = _salt(sandbox_secrets)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def relink(by: str) -> Callable[[], object]:
        return lambda: results.append(run_relink(_index(stack), salt, by, False))

    _run_together([relink("run-1"), relink("run-2")], errors)
    assert errors == []
    index = _index(stack)
    for pair in (A, B, C):
        assert index.canonical(pair[0]) == index.canonical(pair[1])
        assert index.canonical(index.canonical(pair[0])) == index.canonical(pair[0])
    assert len({index.canonical(c) for c in (*A, *B, *C, *D, E)}) == 6  # A, B, C one each; D two; E one
    assert [c["customers"] for c in index.candidates() if c["status"] == "open"] == [sorted(D)]
    assert not any("names" in i for i in _index_items(stack) if i["sk"]["S"] == "PROFILE")
    again = run_relink(_index(stack), salt, "later", True)
    assert (again["joins"], again["candidates"], again["profiles_rewritten"]) == ([], [], 0)
    # each run can be undone; what one run joined is split once
    undone = [undo_relink(_index(stack), r["run"], "test") for r in results]
    assert sorted(len(u["undone"]) for u in undone) in ([0, 3], [1, 2])
    index = _index(stack)
    assert all(index.canonical(c) == c for c in (*A, *B, *C))


def test_relink_racing_the_sync_path_keeps_every_person_apart(
    stack: Stack, sandbox_secrets: dict[str, Any], shopify_secret: str
) -> None:
    _load_fixture(stack)
    salt = _salt(sandbox_secrets)
    more = [
        {
            "id": 7180000001,
            "first_name": "Lei",
            "last_name": "Li",
            "email": "lei.a@example.com",
            "phone": "13800138000",
        },
        {"id": 7180000004, "first_name": "Xiaoming", "last_name": "Zhang", "phone": "13900139000"},
        {
            "id": 7180000005,
            "first_name": "Lei",
            "last_name": "Li",
            "email": "lei.e@example.com",
            "phone": "13500135000",
        },
    ]

    def sync() -> None:
        for n, buyer in enumerate(more):
            stack.post(order_webhook(shopify_secret, 300 + n, buyer, buyer.get("email")))  # type: ignore[arg-type]
        stack.run_until_quiet()

    errors: list[BaseException] = []
    _run_together([lambda: run_relink(_index(stack), salt, "racer", False), sync], errors)
    assert errors == []
    run_relink(_index(stack), salt, "after", False)  # what a raced join skipped, the next run joins
    index = _index(stack)
    store = DynamoStateStore(stack.resources.refs.state_table)
    owner = {}
    for n in range(3):
        order, _ = store.load("demo", "order", f"shopify:{300 + n}")
        assert order is not None
        owner[n] = index.canonical(order.fields["customer_id"])
    assert owner[0] == index.canonical(A[0]) == index.canonical(A[1])
    assert owner[1] == index.canonical(B[0]) == index.canonical(B[1])
    assert owner[2] == index.canonical(E)  # the namesake on the other phone
    assert len({index.canonical(c) for c in (*A, *B, E, *D)}) == 5


def _run_together(calls: list[Callable[[], object]], errors: list[BaseException]) -> None:
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            call()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
