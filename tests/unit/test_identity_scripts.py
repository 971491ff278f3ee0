"""One customer across scripts and name orders: pinyin and hanzi, either order, never on a name alone."""

from __future__ import annotations

import pytest

from shared.identity.names import name_hashes, name_keys
from shared.identity.resolver import MemoryIdentityIndex, resolve
from shared.models import Customer

SALT = b"tenant-salt-for-the-identity-tests!"


def _resolve(index: MemoryIdentityIndex, source: str, source_id: str, **fields: str) -> str:
    return index.canonical(
        resolve(Customer(source_customer_id=source_id, **fields), source, index, SALT).customer_id  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "written",
    ["Lei Li", "LI Lei", "Li Lei", "LiLei", "lei li", "LEI LI", "Li-Lei", "李雷", "李 雷", "李\u3000雷", "Lǐ Léi"],
)
def test_every_common_way_of_writing_one_name_shares_its_key(written: str) -> None:
    keys = name_keys(written)
    assert keys is not None and "lei|li" in keys.keys


@pytest.mark.parametrize(
    ("hanzi", "romanised", "misread"),
    [
        ("单雷", "Shan Lei", "Dan Lei"),
        ("曾小明", "Zeng Xiaoming", "Ceng Xiaoming"),
        ("解放", "Xie Fang", "Jie Fang"),
        ("区伟", "Ou Wei", "Qu Wei"),
        ("仇敏", "Qiu Min", "Chou Min"),
        ("朴娜", "PIAO Na", "Pu Na"),
        ("查静", "Zha Jing", "Cha Jing"),
        ("欧阳娜娜", "Nana Ouyang", "Nana Ou"),
    ],
)
def test_polyphonic_surnames_are_read_as_surnames(hanzi: str, romanised: str, misread: str) -> None:
    read, written, wrong = name_keys(hanzi), name_keys(romanised), name_keys(misread)
    assert read is not None and written is not None and wrong is not None
    assert read.keys & written.keys
    assert not read.keys & wrong.keys


@pytest.mark.parametrize(
    "written", ["Xiaoming Zhang", "ZHANG Xiaoming", "Xiao-Ming Zhang", "Zhang Xiao Ming", "张晓明"]
)
def test_two_syllable_given_names_in_any_spelling(written: str) -> None:
    keys = name_keys(written)
    assert keys is not None and "xiaoming|zhang" in keys.keys


def test_u_umlaut_spellings_meet() -> None:
    hanzi = name_keys("吕雷")
    assert hanzi is not None
    for written in ("Lü Lei", "Lv Lei", "LYU Lei", "Lu Lei"):
        keys = name_keys(written)
        assert keys is not None and keys.keys & hanzi.keys, written


@pytest.mark.parametrize(
    ("hanzi", "romanised"),
    [("陈文宇", "CHEN Wen-Yu"), ("赵欣月", "Xinyue Zhao"), ("李鑫云", "li xinyun"), ("何娟宇", "HeJuanYu")],
)
def test_a_syllable_ending_in_n_or_l_before_a_y_syllable_is_not_read_as_u_umlaut(hanzi: str, romanised: str) -> None:
    """`wenyu` is wen + yu, not we + nü: only a word starting `lyu` / `nyu` spells ü (吕 Lyu)."""
    read, written = name_keys(hanzi), name_keys(romanised)
    assert read is not None and written is not None and read.keys & written.keys


def test_names_in_no_chinese_form_ignore_order_and_accents_only() -> None:
    assert name_keys("John Smith") == name_keys("Smith, John") == name_keys("JOHN  smith")
    assert name_keys("José García") == name_keys("Jose Garcia")
    assert name_keys("John Smith") != name_keys("John Smyth")


def test_a_name_is_stored_only_as_salted_hashes() -> None:
    hashed = name_hashes("李雷", SALT)
    every = hashed.keys | hashed.forms | hashed.written
    assert len(every) == 3 and all(len(h) == 64 and int(h, 16) >= 0 for h in every)
    assert not (every & (name_hashes("李雷", b"another-tenant's-salt-of-32-chars!").keys))
    index = MemoryIdentityIndex()
    _resolve(index, "youzan", "y1", name="李雷", phone="13800138000")
    [profile] = index.profiles.values()
    stored = profile.names | profile.forms | profile.written
    assert stored == every and not any("lei" in h or "李" in h for h in stored)


def test_lei_li_li_lei_and_the_hanzi_with_one_phone_are_one_customer() -> None:
    index = MemoryIdentityIndex()
    shop = _resolve(index, "shopify", "s1", name="Lei Li", email="lei@example.com", phone="+86 138 0013 8000")
    other_shop = _resolve(index, "woocommerce", "w1", name="LI Lei", phone="0086-138-0013-8000")
    youzan = _resolve(index, "youzan", "y1", name="李雷", phone="138-0013-8000", openid="oU-lei")
    assert shop == other_shop == youzan
    assert index.candidates == {}


def test_the_hanzi_first_then_pinyin_is_one_customer_too() -> None:
    index = MemoryIdentityIndex()
    youzan = _resolve(index, "youzan", "y1", name="李雷", phone="13800138000", openid="oU-lei")
    shop = _resolve(index, "shopify", "s1", name="LiLei", email="lei@example.com", phone="+8613800138000")
    assert shop == youzan


def test_homophones_in_other_characters_sharing_a_phone_are_a_merge_candidate_not_a_merge() -> None:
    index = MemoryIdentityIndex()
    lei_bud = _resolve(index, "youzan", "y1", name="李蕾", phone="13800138000", openid="oU-1")
    lei_thunder = _resolve(index, "douyin", "d1", name="李雷", phone="+86 138 0013 8000")
    assert lei_bud != lei_thunder
    assert index.candidates == {tuple(sorted((lei_bud, lei_thunder))): ("phone", "homophone name")}
    # seen again, still two, and the candidate is not raised twice
    assert _resolve(index, "douyin", "d1", name="李雷", phone="13800138000") == lei_thunder
    assert len(index.candidates) == 1


def test_a_pinyin_name_matching_two_homophone_customers_joins_neither() -> None:
    index = MemoryIdentityIndex()
    lei_bud = _resolve(index, "youzan", "y1", name="李蕾", phone="13800138000", openid="oU-1")
    lei_thunder = _resolve(index, "douyin", "d1", name="李雷", phone="13800138000")
    shop = _resolve(index, "shopify", "s1", name="Lei Li", email="lei@example.com", phone="13800138000")
    assert len({lei_bud, lei_thunder, shop}) == 3
    assert tuple(sorted((lei_bud, lei_thunder))) in index.candidates
    assert index.candidates[tuple(sorted((lei_bud, lei_thunder)))] == ("phone", "homophone name")


def test_a_namesake_with_another_phone_is_another_customer() -> None:
    index = MemoryIdentityIndex()
    first = _resolve(index, "youzan", "y1", name="李雷", phone="13800138000", openid="oU-1")
    shop = _resolve(index, "shopify", "s1", name="Lei Li", email="lei@example.com", phone="13800138000")
    namesake = _resolve(index, "youzan", "y2", name="李雷", phone="13900139000", openid="oU-2")
    namesake_shop = _resolve(index, "shopify", "s2", name="Li Lei", email="other@example.com", phone="13900139000")
    assert first == shop and namesake == namesake_shop and first != namesake
    assert index.candidates == {}


def test_a_name_alone_never_links() -> None:
    index = MemoryIdentityIndex()
    youzan = _resolve(index, "youzan", "y1", name="李雷", phone="13800138000")
    shop = _resolve(index, "shopify", "s1", name="Lei Li", email="lei@example.com")
    assert youzan != shop


def test_a_disagreeing_strong_key_keeps_one_phone_two_people() -> None:
    index = MemoryIdentityIndex()
    shop = _resolve(index, "shopify", "s1", name="Lei Li", email="lei@example.com", phone="13800138000")
    crm = _resolve(index, "wecom", "c1", name="李雷", email="another@example.com", phone="13800138000")
    assert shop != crm


def test_a_family_sharing_a_phone_under_other_names_stays_apart() -> None:
    index = MemoryIdentityIndex()
    father = _resolve(index, "youzan", "y1", name="李雷", phone="13800138000", openid="oU-1")
    mother = _resolve(index, "youzan", "y2", name="韩梅梅", phone="13800138000", openid="oU-2")
    son_shop = _resolve(index, "shopify", "s1", name="Xiaoming Li", email="xm@example.com", phone="13800138000")
    assert len({father, mother, son_shop}) == 3
    assert index.candidates == {}


def test_a_customer_written_before_in_clear_is_read_by_its_hashes() -> None:
    """A profile from before names were hashed holds them in clear: the new rules still read it."""
    index = MemoryIdentityIndex()
    youzan = _resolve(index, "youzan", "y1", name="李雷", phone="13800138000", openid="oU-1")
    profile = index.profiles[youzan]
    profile.names, profile.forms, profile.written, profile.legacy_names = set(), set(), set(), {"李雷"}
    assert _resolve(index, "shopify", "s1", name="Lei Li", email="lei@example.com", phone="13800138000") == youzan


def test_a_record_joining_two_customers_also_takes_in_the_phone_only_one_of_the_same_name() -> None:
    """The CRM record with an e-mail, a card and a phone joins the shop account (e-mail) and the till's
    member (card); the Douyin buyer known only by that phone under that name is the same person too."""
    index = MemoryIdentityIndex()
    douyin = _resolve(index, "douyin", "d1", name="王芳", phone="15006160376")
    shop = _resolve(index, "shopify", "s1", name="Fang Wang", email="wang.fang@example.com")
    pos = _resolve(index, "pos", "p1", name="王\u3000芳", member_card_no="M00006514")
    crm = _resolve(
        index,
        "wecom",
        "w1",
        name="王芳",
        phone="15006160376",
        email="wang.fang@example.com",
        member_card_no="M00006514",
    )
    assert index.canonical(douyin) == index.canonical(shop) == index.canonical(pos) == crm


def test_digits_are_tone_numbers_only_on_pinyin() -> None:
    assert name_keys("Li3 Lei2") == name_keys("Li Lei")
    assert name_keys("Buyer 1") != name_keys("Buyer 2")
    assert name_keys("Store7") != name_keys("Store8")
