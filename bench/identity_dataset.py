"""A generated, labelled customer data set for identity resolution, and its evaluation.

Every person has a Chinese name in hanzi: a surname drawn by its frequency (polyphonic surnames
read as surnames, a few compound surnames) and a one- or two-character given name, or one of the
commonest full names (张伟, 王伟, 王芳, …) drawn with a Zipf-like weight, so that namesakes are many.
People are seen through five channels with the noise real shops have:

- Shopify carries the name in pinyin, rendered differently on each record: either order (``Lei Li``,
  ``Li Lei``), any case (``LI Lei``, ``lei li``, ``LEI LI``), run together (``LiLei``), a two-syllable
  given name as ``Xiaoming``, ``Xiao-Ming`` or ``XiaoMing``, ü written ``u``, ``v`` or ``yu``;
- Youzan, Douyin shop, the WeCom CRM and the shop tills (POS) carry it in hanzi, with or without a
  (possibly full-width) space between surname and given name;
- phone numbers in every common format (``+86 138 0013 8000``, ``0086-138-0013-8000``, …), e-mails in
  odd case with stray spaces, keys missing at channel-typical rates;
- families: a person may share the phone of another (a spouse, a parent, a child) under a different
  name that does not sound the same, each with their own e-mail and WeChat id;
- people who changed phones: the old number on some of their records, the new one on others.

The pinyin is rendered from this module's own reading tables (not from a pinyin library, nor from the
resolver's name handling), so the data set checks the resolver independently. Every record knows
which person it belongs to, so resolution can be scored pairwise (see ``score``).
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from shared.models import Customer

# Surname -> its reading as a surname (syllables; ü written "ü"), with a weight: roughly its share of
# the population in percent (2020 census order). The polyphonic and compound surnames are rarer than
# their weights here: raised so that each appears among a few thousand people.
SURNAMES: dict[str, tuple[tuple[str, ...], float]] = {
    "王": (("wang",), 7.1),
    "李": (("li",), 7.0),
    "张": (("zhang",), 6.8),
    "刘": (("liu",), 5.4),
    "陈": (("chen",), 4.5),
    "杨": (("yang",), 3.1),
    "黄": (("huang",), 2.5),
    "赵": (("zhao",), 2.3),
    "吴": (("wu",), 2.1),
    "周": (("zhou",), 2.1),
    "徐": (("xu",), 1.7),
    "孙": (("sun",), 1.5),
    "马": (("ma",), 1.5),
    "朱": (("zhu",), 1.3),
    "胡": (("hu",), 1.3),
    "郭": (("guo",), 1.2),
    "何": (("he",), 1.2),
    "林": (("lin",), 1.1),
    "高": (("gao",), 1.1),
    "罗": (("luo",), 0.9),
    "郑": (("zheng",), 0.9),
    "梁": (("liang",), 0.8),
    "谢": (("xie",), 0.7),
    "宋": (("song",), 0.7),
    "唐": (("tang",), 0.7),
    "许": (("xu",), 0.7),
    "韩": (("han",), 0.6),
    "冯": (("feng",), 0.6),
    "邓": (("deng",), 0.6),
    "曹": (("cao",), 0.6),
    "彭": (("peng",), 0.5),
    "肖": (("xiao",), 0.5),
    "田": (("tian",), 0.4),
    "董": (("dong",), 0.4),
    "潘": (("pan",), 0.4),
    "蒋": (("jiang",), 0.4),
    "蔡": (("cai",), 0.4),
    "余": (("yu",), 0.4),
    "叶": (("ye",), 0.3),
    "苏": (("su",), 0.3),
    "吕": (("lü",), 0.3),
    "卢": (("lu",), 0.3),
    "陆": (("lu",), 0.2),
    # polyphonic: read differently as a surname than as a word
    "曾": (("zeng",), 0.5),  # not ceng
    "单": (("shan",), 0.1),  # not dan
    "解": (("xie",), 0.1),  # not jie
    "区": (("ou",), 0.1),  # not qu
    "仇": (("qiu",), 0.1),  # not chou
    "朴": (("piao",), 0.1),  # not pu
    "查": (("zha",), 0.1),  # not cha
    # compound
    "欧阳": (("ou", "yang"), 0.1),
    "司马": (("si", "ma"), 0.05),
    "诸葛": (("zhu", "ge"), 0.05),
}
POLYPHONIC_SURNAMES = ("曾", "单", "解", "区", "仇", "朴", "查")
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛")

# Common given-name characters with their usual reading in names (homophones included: 雷/蕾/磊).
GIVEN: dict[str, str] = {
    "伟": "wei",
    "芳": "fang",
    "娜": "na",
    "敏": "min",
    "静": "jing",
    "丽": "li",
    "强": "qiang",
    "磊": "lei",
    "雷": "lei",
    "蕾": "lei",
    "军": "jun",
    "洋": "yang",
    "勇": "yong",
    "艳": "yan",
    "杰": "jie",
    "涛": "tao",
    "明": "ming",
    "超": "chao",
    "秀": "xiu",
    "英": "ying",
    "霞": "xia",
    "辉": "hui",
    "平": "ping",
    "刚": "gang",
    "红": "hong",
    "波": "bo",
    "兰": "lan",
    "玉": "yu",
    "浩": "hao",
    "欣": "xin",
    "婷": "ting",
    "晓": "xiao",
    "华": "hua",
    "建": "jian",
    "国": "guo",
    "文": "wen",
    "斌": "bin",
    "宇": "yu",
    "鹏": "peng",
    "飞": "fei",
    "鑫": "xin",
    "琳": "lin",
    "颖": "ying",
    "慧": "hui",
    "佳": "jia",
    "俊": "jun",
    "峰": "feng",
    "梅": "mei",
    "燕": "yan",
    "萍": "ping",
    "玲": "ling",
    "娟": "juan",
    "春": "chun",
    "云": "yun",
    "海": "hai",
    "亮": "liang",
    "志": "zhi",
    "东": "dong",
    "子": "zi",
    "雪": "xue",
    "思": "si",
    "涵": "han",
    "轩": "xuan",
    "睿": "rui",
    "怡": "yi",
    "晨": "chen",
    "雨": "yu",
    "欢": "huan",
    "月": "yue",
    "安": "an",
    "恩": "en",
}
# The commonest full names (surname, given name), most common first; drawn with weight 1/rank.
COMMON_NAMES: list[tuple[str, str]] = [
    ("张", "伟"),
    ("王", "伟"),
    ("王", "芳"),
    ("李", "伟"),
    ("李", "娜"),
    ("张", "敏"),
    ("李", "静"),
    ("王", "静"),
    ("刘", "伟"),
    ("王", "秀英"),
    ("张", "丽"),
    ("李", "秀英"),
    ("王", "丽"),
    ("张", "静"),
    ("张", "秀英"),
    ("李", "强"),
    ("王", "敏"),
    ("李", "敏"),
    ("王", "磊"),
    ("刘", "洋"),
    ("王", "艳"),
    ("王", "勇"),
    ("李", "军"),
    ("张", "勇"),
    ("李", "杰"),
    ("张", "杰"),
    ("张", "磊"),
    ("王", "强"),
    ("李", "娟"),
    ("王", "军"),
]
COMMON_NAME_SHARE = 0.12  # of people not in a family with another: one of COMMON_NAMES
TWO_CHAR_GIVEN = 0.65  # share of composed given names with two characters

SHOP_CHANNELS = ("shopify",)  # names in pinyin
HANZI_CHANNELS = ("youzan", "douyin", "wecom", "pos")  # names in hanzi
CHANNELS = (*SHOP_CHANNELS, *HANZI_CHANNELS)
CHANNEL_COUNT_WEIGHTS = [10, 20, 30, 25, 15]  # a person is seen through 1..5 channels

# Mainland mobile prefixes in use (numbering plan), so every generated number is a valid one.
MOBILE_PREFIXES = [
    *(f"13{d}" for d in range(10)),
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "170",
    "176",
    "177",
    "178",
    *(f"18{d}" for d in range(10)),
    "198",
    "199",
]

# How often each channel's customer record carries a key. Each channel has the key its checkout or
# contact flow requires, nearly always (a few records still lack it: imports, guest flows, privacy
# requests); the rest are optional and often missing. "card" is the rate for a person who has one.
KEY_RATES = {
    "shopify": {"email": 0.99, "phone": 0.85, "openid": 0.0, "card": 0.0},  # checkout e-mail; phone for delivery
    "youzan": {"email": 0.1, "phone": 0.98, "openid": 0.95, "card": 0.0},  # delivery phone; WeChat UnionID
    "douyin": {"email": 0.02, "phone": 0.99, "openid": 0.0, "card": 0.0},  # delivery phone
    "wecom": {"email": 0.5, "phone": 0.9, "openid": 0.98, "card": 1.0},  # external contact: UnionID; agents note phones
    "pos": {"email": 0.02, "phone": 0.97, "openid": 0.0, "card": 0.95},  # the till asks for a phone, scans the card
}
CARD_SHARE = 0.4  # people with a member card
CARD_AT_TILL = 0.6  # of the rest who shop at a till: join there and get one
FAMILY_SHARE = 0.08  # people sharing the phone of the person before them (under another name)
PHONE_CHANGE_SHARE = 0.05  # people with an old phone on some records and a new one on others

# Every format a phone arrives in, as (description, render of the 11 national digits).
PHONE_FORMATS: list[tuple[str, str]] = [
    ("plain", "{d}"),
    ("+86 spaced", "+86 {a} {b} {c}"),
    ("0086 dashed", "0086-{a}-{b}-{c}"),
    ("dashed", "{a}-{b}-{c}"),
    ("+86 run on", "+86{d}"),
    ("(+86) spaced", "(+86) {a} {b} {c}"),
    ("stray spaces", " {a} {b}{c} "),
]


@dataclass(frozen=True)
class Person:
    index: int
    surname: str  # hanzi
    given: str  # hanzi
    email: str
    openid: str
    card: str | None
    phones: tuple[str, ...]  # 11 national digits; (old, new) for someone who changed phones
    family_of: int | None  # the person whose phone this one shares, if any

    @property
    def name(self) -> str:
        return self.surname + self.given

    @property
    def surname_reading(self) -> tuple[str, ...]:
        return SURNAMES[self.surname][0]

    @property
    def given_reading(self) -> tuple[str, ...]:
        return tuple(GIVEN[c] for c in self.given)


@dataclass(frozen=True)
class Record:
    person: int
    source: str
    customer: Customer


def _phone_text(rng: random.Random, digits: str) -> str:
    _, template = rng.choice(PHONE_FORMATS)
    return template.format(d=digits, a=digits[:3], b=digits[3:7], c=digits[7:])


def _noisy(rng: random.Random, text: str) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        return text.upper()
    if choice == 1:
        return text.title()
    if choice == 2:
        return f"  {text} "
    return text


def _syllable(rng: random.Random, reading: str) -> str:
    # ü has no key on most keyboards: written u (passports before 2012), v (input methods), yu (passports now)
    return reading.replace("ü", rng.choice(("u", "v", "yu"))) if "ü" in reading else reading


def _word(rng: random.Random, syllables: Sequence[str], hyphen: bool = True) -> str:
    """A pinyin word: ``Xiaoming``, ``Xiao'an``, ``XiaoMing`` or ``Xiao-Ming`` (not in a run-together name)."""
    parts = [_syllable(rng, s) for s in syllables]
    style = rng.randrange(3 if hyphen else 2) if len(parts) > 1 else 0
    if style == 1:
        return "".join(p.capitalize() for p in parts)
    if style == 2:
        return "-".join(p.capitalize() for p in parts)
    word = parts[0]
    for part in parts[1:]:
        # pinyin marks a syllable starting with a vowel with an apostrophe; forms often drop it
        word += ("'" if part[0] in "aoe" and rng.random() < 0.5 else "") + part
    return word.capitalize()


def pinyin_name(rng: random.Random, person: Person) -> str:
    """How a shop's checkout shows the person: pinyin, in either order, case and spacing."""
    order = rng.choices(("given first", "surname first", "run together"), weights=(45, 45, 10))[0]
    surname = "".join(_syllable(rng, s) for s in person.surname_reading).capitalize()  # Ouyang: one word
    given = _word(rng, person.given_reading, hyphen=order != "run together")
    cases = ("title", "passport", "lower", "upper") if order != "run together" else ("title", "lower", "upper")
    case = rng.choices(cases, weights=(50, 20, 20, 10)[: len(cases)])[0]
    if case == "passport":  # the surname in capitals, as a passport prints it
        surname = surname.upper()
    if order == "given first":
        text = f"{given} {surname}"
    elif order == "surname first":
        text = f"{surname} {given}"
    else:
        text = f"{surname}{given}"
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    return text


def hanzi_name(rng: random.Random, person: Person) -> str:
    """How a Chinese channel shows the person: hanzi, sometimes spaced (full-width or not) or padded."""
    style = rng.choices(("plain", "space", "full-width space", "padded"), weights=(70, 15, 7, 8))[0]
    if style == "space":
        return f"{person.surname} {person.given}"
    if style == "full-width space":
        return f"{person.surname}\u3000{person.given}"
    if style == "padded":
        return f" {person.name} "
    return person.name


def _squashed_readings(surname: str, given: str) -> set[str]:
    """Every way the name can be typed in Latin letters with spacing and case removed, in either order."""
    surnames = {"".join(SURNAMES[surname][0]).replace("ü", u) for u in ("u", "v", "yu")}
    givens = {"".join(GIVEN[c] for c in given)}
    return {s + g for s in surnames for g in givens} | {g + s for s in surnames for g in givens}


def sounds_alike(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Two (surname, given) names that some pinyin rendering cannot tell apart (李雷/李蕾, 王丽/李旺)."""
    return bool(_squashed_readings(*a) & _squashed_readings(*b))


def _surname(rng: random.Random) -> str:
    return rng.choices(_SURNAME_LIST, weights=_SURNAME_WEIGHTS)[0]


def _given(rng: random.Random) -> str:
    count = 2 if rng.random() < TWO_CHAR_GIVEN else 1
    return "".join(rng.choice(_GIVEN_LIST) for _ in range(count))


_SURNAME_LIST = list(SURNAMES)
_SURNAME_WEIGHTS = [weight for _, weight in SURNAMES.values()]
_GIVEN_LIST = list(GIVEN)
_COMMON_WEIGHTS = [1 / rank for rank in range(1, len(COMMON_NAMES) + 1)]


def _new_phone(rng: random.Random) -> str:
    return f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"


def make_people(people: int, rng: random.Random) -> list[Person]:
    persons: list[Person] = []
    family_names: dict[str, list[tuple[str, str]]] = defaultdict(list)  # phone -> names on it
    for p in range(people):
        family_of = p - 1 if p and rng.random() < FAMILY_SHARE else None
        if family_of is not None:
            # A spouse (usually another surname), a child (the father's surname) or a parent; never a
            # name that sounds like one already on the phone.
            phone = persons[family_of].phones[0]
            head = persons[family_of].surname
            while True:
                relation = rng.choices(("spouse", "child", "father", "mother"), weights=(50, 30, 10, 10))[0]
                surname = head if relation in ("child", "father") else _surname(rng)
                name = (surname, _given(rng))
                if not any(sounds_alike(name, other) for other in family_names[phone]):
                    break
        else:
            phone = _new_phone(rng)
            if rng.random() < COMMON_NAME_SHARE:
                name = rng.choices(COMMON_NAMES, weights=_COMMON_WEIGHTS)[0]
            else:
                name = (_surname(rng), _given(rng))
        family_names[phone].append(name)
        surname, given = name
        phones = (phone, _new_phone(rng)) if rng.random() < PHONE_CHANGE_SHARE else (phone,)
        romanised = ".".join(("".join(SURNAMES[surname][0]), "".join(GIVEN[c] for c in given))).replace("ü", "v")
        persons.append(
            Person(
                index=p,
                surname=surname,
                given=given,
                email=f"{romanised}.{p}@example.com",
                openid=f"oU{rng.getrandbits(64):016x}",
                card=f"M{p:08d}" if rng.random() < CARD_SHARE else None,
                phones=phones,
                family_of=family_of,
            )
        )
    return persons


def dataset(people: int, seed: int = 20261123) -> tuple[list[Person], list[Record]]:
    rng = random.Random(seed)
    persons = make_people(people, rng)
    records = []
    for person in persons:
        count = rng.choices(range(1, len(CHANNELS) + 1), weights=CHANNEL_COUNT_WEIGHTS)[0]
        channels = rng.sample(CHANNELS, count)
        card = person.card
        if card is None and "pos" in channels and rng.random() < CARD_AT_TILL:
            card = f"M{person.index:08d}"
        with_phone = [c for c in channels if rng.random() < KEY_RATES[c]["phone"]]
        phone_of = {c: person.phones[-1] for c in with_phone}
        if len(person.phones) > 1:
            # the old number on some records, the new on others (both seen when two records carry one)
            for i, c in enumerate(with_phone):
                phone_of[c] = person.phones[i] if i < 2 else rng.choice(person.phones)
        for channel in channels:
            has = KEY_RATES[channel]
            records.append(
                Record(
                    person=person.index,
                    source=channel,
                    customer=Customer(
                        source_customer_id=f"{channel}-{rng.getrandbits(48):012x}",
                        name=pinyin_name(rng, person) if channel in SHOP_CHANNELS else hanzi_name(rng, person),
                        email=_noisy(rng, person.email) if rng.random() < has["email"] else None,
                        phone=_phone_text(rng, phone_of[channel]) if channel in phone_of else None,
                        openid=person.openid if rng.random() < has["openid"] else None,
                        wecom_external_user_id=f"wm{person.index:09d}" if channel == "wecom" else None,
                        member_card_no=card if card and rng.random() < has["card"] else None,
                    ),
                )
            )
    rng.shuffle(records)
    return persons, records


def generate(people: int, seed: int = 20261123) -> list[Record]:
    return dataset(people, seed)[1]


# --- scoring -------------------------------------------------------------------------------------

HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")


def script(name: str | None) -> str | None:
    """``hanzi`` or ``latin`` (pinyin) for a name, None for no name."""
    if name and HANZI.search(name):
        return "hanzi"
    if name and LATIN.search(name):
        return "latin"
    return None


def national_phone(raw: str | None) -> str | None:
    """A mainland mobile as its 11 digits, whatever the format (the ground truth's own reading)."""
    digits = re.sub(r"\D", "", raw or "")
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits or None


def _link_tokens(record: Record) -> list[tuple[str, str]]:
    c = record.customer
    tokens = [("source_id", f"{record.source}:{c.source_customer_id}")]
    if c.email and c.email.strip():
        tokens.append(("email", c.email.strip().lower()))
    for kind, value in (("wecom", c.wecom_external_user_id), ("openid", c.openid), ("card", c.member_card_no)):
        if value and value.strip():
            tokens.append((kind, value.strip()))
    if phone := national_phone(c.phone):
        tokens.append(("phone", phone))
    return tokens


def person_linkable_groups(records: Sequence[Record], members: Sequence[int], phone: bool = True) -> list[list[int]]:
    """One person's records, grouped by chains of a shared strong key or (``phone``) a shared phone.
    A person's records all carry that person's one name (in one script or the other), so a shared
    phone is the same phone under the same name: what a person would link."""
    parent = {m: m for m in members}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    seen: dict[tuple[str, str], int] = {}
    for m in members:
        for token in _link_tokens(records[m]):
            if token[0] == "phone" and not phone:
                continue
            if token in seen:
                parent[find(m)] = find(seen[token])
            else:
                seen[token] = m
    groups: dict[int, list[int]] = defaultdict(list)
    for m in members:
        groups[find(m)].append(m)
    return list(groups.values())


@dataclass(frozen=True)
class Score:
    people: int
    records: int
    channels_per_person: float
    true_pairs: int  # pairs of records of one person
    predicted_pairs: int  # pairs of records resolved to one customer
    correct_pairs: int  # both
    merge_candidates: int
    linkable_pairs: int  # true pairs a person would link: a chain of shared strong keys or phone + name
    linked_pairs: int  # linkable pairs resolved to one customer
    cross_script_pairs: int  # linkable pairs of a pinyin-named and a hanzi-named record
    cross_script_linked: int  # of those, resolved to one customer
    phone_pairs: int  # linkable pairs that no chain of strong keys alone joins: they need phone + name
    phone_linked: int  # of those, resolved to one customer

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def linkable_share(self) -> float:
        """The ceiling of recall over all pairs: what the evidence on the records can reach."""
        return self.linkable_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def linkable_recall(self) -> float:
        return self.linked_pairs / self.linkable_pairs if self.linkable_pairs else 1.0

    @property
    def cross_script_recall(self) -> float:
        return self.cross_script_linked / self.cross_script_pairs if self.cross_script_pairs else 1.0

    @property
    def phone_recall(self) -> float:
        return self.phone_linked / self.phone_pairs if self.phone_pairs else 1.0

    def figures(self) -> dict[str, float | int]:
        return {
            "records": self.records,
            "precision": self.precision,
            "recall": self.recall,
            "linkable_share": self.linkable_share,
            "linkable_recall": self.linkable_recall,
            "cross_script_recall": self.cross_script_recall,
            "phone_recall": self.phone_recall,
            "merge_candidates": self.merge_candidates,
            "true_pairs": self.true_pairs,
            "predicted_pairs": self.predicted_pairs,
            "correct_pairs": self.correct_pairs,
            "linkable_pairs": self.linkable_pairs,
            "linked_pairs": self.linked_pairs,
            "cross_script_pairs": self.cross_script_pairs,
            "cross_script_linked": self.cross_script_linked,
            "phone_pairs": self.phone_pairs,
            "phone_linked": self.phone_linked,
        }


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def score(records: Sequence[Record], customer_ids: Sequence[str], merge_candidates: int = 0) -> Score:
    """Pairwise scores of a resolution: ``customer_ids[i]`` is the customer record ``i`` resolved to."""
    by_person: dict[int, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_person[record.person].append(i)
    both = Counter(zip((r.person for r in records), customer_ids, strict=True))
    linkable = linked = cross = cross_linked = by_phone = phone_linked = 0
    for members in by_person.values():
        strong_group = {m: i for i, g in enumerate(person_linkable_groups(records, members, phone=False)) for m in g}
        for group in person_linkable_groups(records, members):
            for a, b in combinations(group, 2):
                same = customer_ids[a] == customer_ids[b]
                linkable += 1
                linked += same
                if {script(records[a].customer.name), script(records[b].customer.name)} == {"latin", "hanzi"}:
                    cross += 1
                    cross_linked += same
                if strong_group[a] != strong_group[b]:
                    by_phone += 1
                    phone_linked += same
    return Score(
        people=len(by_person),
        records=len(records),
        channels_per_person=len(records) / len(by_person) if by_person else 0.0,
        true_pairs=sum(_pairs(len(m)) for m in by_person.values()),
        predicted_pairs=sum(_pairs(n) for n in Counter(customer_ids).values()),
        correct_pairs=sum(_pairs(n) for n in both.values()),
        merge_candidates=merge_candidates,
        linkable_pairs=linkable,
        linked_pairs=linked,
        cross_script_pairs=cross,
        cross_script_linked=cross_linked,
        phone_pairs=by_phone,
        phone_linked=phone_linked,
    )


def evaluate(records: list[Record], salt: bytes = b"tenant-salt") -> Score:
    """Resolve every record in turn (the order given) and score the result."""
    from shared.identity.resolver import MemoryIdentityIndex, resolve

    index = MemoryIdentityIndex()
    assigned = [resolve(record.customer, record.source, index, salt).customer_id for record in records]
    # Customers absorbed later answer to the customer that absorbed them.
    return score(records, [index.canonical(c) for c in assigned], len(index.candidates))
