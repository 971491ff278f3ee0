"""Hostile names against the issue-18 name keys and the resolver (review of issue 18).

Tests marked ``FAILS BEFORE FIX`` prove a defect of the change as merged in main 283e384; the others
are checks that held. Every test asserts an exact outcome; none asserts a timing.
"""

from __future__ import annotations

import pytest

from shared.identity.names import name_hashes, name_keys
from shared.identity.resolver import MemoryIdentityIndex, resolve
from shared.models import Customer

SALT = b"tenant-salt-for-the-hostile-name-tests!"
PHONE = "13800138000"


def _resolve(index: MemoryIdentityIndex, source: str, source_id: str, **fields: str) -> str:
    customer = Customer(source_customer_id=source_id, **fields)
    return index.canonical(resolve(customer, source, index, SALT).customer_id)


# --- crashes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["李 小 龙", "阿依古丽·买买提·艾力", "欧阳 娜 娜", "司马 相 如"])
def test_a_hanzi_name_in_three_parts_resolves(written: str) -> None:
    """FAILS BEFORE FIX. Defect: ``names._hanzi_keys`` passes every part of a hanzi name written in three
    or more parts (spaces, interpuncts of a transliterated name) to ``_pair(first, second)``, which takes
    two: ``TypeError`` on the sync path, so the record is retried until it lands in the DLQ. A fuzz of
    200,000 random short names over hanzi, separators and Latin raised it in 17,182 of them, and only
    there."""
    keys = name_keys(written)
    assert keys is not None and keys.form is not None
    index = MemoryIdentityIndex()
    first = _resolve(index, "youzan", "y1", name=written, phone=PHONE, openid="oU-1")
    assert _resolve(index, "youzan", "y1", name=written, phone=PHONE, openid="oU-1") == first


@pytest.mark.parametrize(
    "written",
    [
        "",
        "   ",
        "...",
        "·・.",
        "😀",
        "😀😀 🙂",
        "Li\x00Lei",
        "\ud800李雷",
        "\u200b\u200d\ufeff",
        "ＬＩ\u3000Ｌｅｉ",
        "𝐋𝐢 𝐋𝐞𝐢",
        "Ли Лэй",
        "李雷" * 100,
        "a" * 10_000,
        "Lei" + "\u0301" * 500,
        "〇",
        "𠀀𠀁",
        "李雷 Lei Li",
        "Mr. Li Lei (VIP)",
        "李-雷_1",
    ],
)
def test_odd_names_resolve_and_repeat_to_the_same_customer(written: str) -> None:
    """Held: punctuation only, emoji, control and zero-width characters, a lone surrogate, full-width and
    mathematical Latin, Cyrillic, very long names and mixed scripts all resolve, twice to one customer."""
    index = MemoryIdentityIndex()
    first = _resolve(index, "youzan", "y1", name=written, phone=PHONE, openid="oU-1")
    assert _resolve(index, "youzan", "y1", name=written, phone=PHONE, openid="oU-1") == first


def test_full_width_and_mathematical_latin_are_the_same_name() -> None:
    """Held: NFKC folds ``ＬＩ　Ｌｅｉ`` and ``𝐋𝐢 𝐋𝐞𝐢`` to ``Li Lei``."""
    plain = name_keys("Li Lei")
    assert plain is not None
    for written in ("ＬＩ\u3000Ｌｅｉ", "𝐋𝐢 𝐋𝐞𝐢", "ｌｉｌｅｉ"):
        keys = name_keys(written)
        assert keys is not None and "lei|li" in keys.keys, written


def test_names_without_a_letter_are_no_name_and_never_link() -> None:
    """Held: a name of emoji or punctuation only is no name, so a shared phone does not link."""
    assert name_keys("😀") is None and name_keys("...") is None and not name_hashes("🙂", SALT)
    index = MemoryIdentityIndex()
    first = _resolve(index, "douyin", "d1", name="😀", phone=PHONE)
    second = _resolve(index, "douyin", "d2", name="🙂", phone=PHONE)
    assert first != second and index.candidates == {}


# --- wrong merges (precision) ------------------------------------------------------------------------


def test_a_one_word_romanisation_does_not_join_two_people_whose_names_differ() -> None:
    """FAILS BEFORE FIX. Defect: ``xiaomingzhang`` splits into several name keys (``xiaoming|zhang`` and
    ``mingzhang|xiao``, ...). A record under it with a family's phone is "the same name" as 张晓明 *and* as
    肖明章, and ``resolve`` absorbs every compatible customer into one (``joinable`` checks keys and
    hanzi conflicts, never that the customers' own names meet): 张晓明 and 肖明章, two people with two
    surnames, become one customer. Fix: absorb several customers only when their own names share a key
    pairwise (as ``plan_relink`` requires of a pair), or treat an ambiguous one-word name as matching
    one customer at most."""
    index = MemoryIdentityIndex()
    husband = _resolve(index, "youzan", "y1", name="张晓明", phone=PHONE, openid="oU-zhang")
    wife = _resolve(index, "douyin", "d1", name="肖明章", phone=PHONE)
    assert husband != wife
    _resolve(index, "woocommerce", "w1", name="xiaomingzhang", phone=PHONE, email="family@example.com")
    assert index.canonical(husband) != index.canonical(wife)


def test_a_record_naming_two_people_in_two_scripts_does_not_join_them() -> None:
    """FAILS BEFORE FIX. Defect: a name in hanzi and Latin gets the keys of both halves ("李雷 Lei Li: both
    halves name the same person"), even when the halves are two different names. A delivery record
    "李雷 Wang Wei" (recipient and buyer in one field) with the family's phone matches the shop's
    "Wang Wei" and Youzan's 李雷, and the two are absorbed into one. Fix: use the Latin half only when it
    shares a key with the hanzi half (else the hanzi alone)."""
    index = MemoryIdentityIndex()
    father = _resolve(index, "youzan", "y1", name="李雷", phone=PHONE, openid="oU-li")
    mother = _resolve(index, "shopify", "s1", name="Wang Wei", phone=PHONE, email="wang.wei@example.com")
    assert father != mother
    _resolve(index, "douyin", "d1", name="李雷 Wang Wei", phone=PHONE)
    assert index.canonical(father) != index.canonical(mother)


def test_names_equal_only_in_their_first_64_characters_are_not_one_name() -> None:
    """FAILS BEFORE FIX. Defect: ``name_keys`` cuts a name to 64 characters before keying it, so two B2B
    buyers "<company, department> Zhang San" and "<company, department> Li Si" are one name; sharing the
    company's switchboard phone, the second buyer's record joins the first buyer's customer. Fix: key a
    name past the limit as one opaque key of its whole normalised text (or as no name), never a prefix."""
    company = "Shenzhen Huaqiang Electronics Trading Company Limited, Purchasing "
    assert len(company) >= 64
    assert name_keys(company + "Zhang San") != name_keys(company + "Li Si")
    index = MemoryIdentityIndex()
    zhang = _resolve(index, "shopify", "s1", name=company + "Zhang San", phone="075588888888", email="z@hq.cn")
    li = _resolve(index, "douyin", "d1", name=company + "Li Si", phone="075588888888")
    assert zhang != li


def test_a_pinyin_customer_seen_again_does_not_pick_one_of_two_homophones() -> None:
    """FAILS BEFORE FIX. Defect: the first order of the shop's "Lei Li" under a phone 李雷 and 李蕾 share is
    kept apart from both (the unit test ``test_a_pinyin_name_matching_two_homophone_customers_joins_neither``).
    Its second order carries its own source id, and ``resolve``'s one-strong-owner branch absorbs every
    phone owner whose name is "the same" one by one: the first in id order (李雷 or 李蕾, by the hash of
    its source id) is absorbed, the second then conflicts with it. Which person the shop's customer is
    merged with is decided by a hash. Fix: in that branch, when more than one other phone owner has the
    same name and they are not joinable together with the record's customer, absorb none and raise
    a merge candidate."""
    index = MemoryIdentityIndex()
    lei_thunder = _resolve(index, "douyin", "d1", name="李雷", phone=PHONE)
    lei_bud = _resolve(index, "douyin", "d2", name="李蕾", phone=PHONE)
    shop = _resolve(index, "shopify", "s1", name="Lei Li", phone=PHONE, email="lei@example.com")
    assert len({lei_thunder, lei_bud, shop}) == 3
    again = _resolve(index, "shopify", "s1", name="Lei Li", phone=PHONE, email="lei@example.com")
    assert len({index.canonical(lei_thunder), index.canonical(lei_bud), again}) == 3


# --- checks that held ----------------------------------------------------------------------------------


def test_a_homophone_is_not_joined_through_a_pinyin_customer_already_joined_to_the_other() -> None:
    """Held: the shop's "Lei Li" joined 李雷 (by phone and name); 李蕾 with the same phone then is a merge
    candidate with it, never a merge (the survivor carries 李雷's hanzi)."""
    index = MemoryIdentityIndex()
    lei_thunder = _resolve(index, "youzan", "y1", name="李雷", phone=PHONE, openid="oU-1")
    shop = _resolve(index, "shopify", "s1", name="Lei Li", phone=PHONE, email="lei@example.com")
    assert shop == lei_thunder
    lei_bud = _resolve(index, "douyin", "d1", name="李蕾", phone=PHONE)
    assert lei_bud != lei_thunder
    assert index.candidates == {tuple(sorted((lei_bud, lei_thunder))): ("phone", "homophone name")}
    # a CRM record carrying the shop's e-mail under 李蕾: still no merge
    crm = _resolve(index, "douyin", "d1", name="李蕾", phone=PHONE, email="lei@example.com")
    assert crm == lei_bud != index.canonical(lei_thunder)
    assert index.candidates[tuple(sorted((lei_bud, lei_thunder)))] == ("phone", "homophone name")


@pytest.mark.parametrize(
    ("first", "second"),
    [("张伟", "张巍"), ("吕雷", "卢雷"), ("李雷", "黎蕾"), ("乐雷", "岳蕾")],
)
def test_homophones_sharing_a_phone_are_a_candidate_never_a_merge(first: str, second: str) -> None:
    """Held: other characters under one key (ü spelt u included) are a candidate, never a merge."""
    index = MemoryIdentityIndex()
    a = _resolve(index, "douyin", "d1", name=first, phone=PHONE)
    b = _resolve(index, "douyin", "d2", name=second, phone=PHONE)
    assert a != b
    assert index.candidates == {tuple(sorted((a, b))): ("phone", "homophone name")}


def test_name_keys_are_stored_only_as_hashes_for_hostile_names() -> None:
    """Held: whatever the name, the profile holds 64-hex HMACs only."""
    index = MemoryIdentityIndex()
    for n, written in enumerate(["李雷 Lei Li", "xiaomingzhang", "ＬＩ\u3000Ｌｅｉ", "Lǚ Lei", "O'Neil"]):
        _resolve(index, "douyin", f"d{n}", name=written, phone=f"1380013800{n}")
    for profile in index.profiles.values():
        for value in profile.names | profile.forms | profile.written:
            assert len(value) == 64 and int(value, 16) >= 0
        assert profile.legacy_names == set()
