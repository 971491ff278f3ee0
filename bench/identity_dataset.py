"""A generated, labelled customer data set for identity resolution, and its evaluation.

People are seen through four channels (Shopify, Youzan, Douyin shop, the WeCom-based CRM) with the
noise real shops have: phone numbers in many formats, e-mails in odd case with stray spaces, names
in any case and spacing, keys missing at channel-typical rates, and families sharing one phone
number (each member with their own name and e-mail). Every record knows which person it belongs to,
so resolution can be scored: pairwise precision (no two people merged) and recall (one person, one id).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

from shared.identity.resolver import MemoryIdentityIndex, resolve
from shared.models import Customer

SURNAMES = [
    "wang",
    "li",
    "zhang",
    "liu",
    "chen",
    "yang",
    "huang",
    "zhao",
    "wu",
    "zhou",
    "xu",
    "sun",
    "ma",
    "zhu",
    "hu",
    "guo",
    "he",
    "lin",
    "luo",
    "gao",
    "zheng",
    "liang",
    "xie",
    "song",
    "tang",
    "han",
    "feng",
    "deng",
]
GIVEN = [
    "wei",
    "fang",
    "na",
    "min",
    "jing",
    "li",
    "qiang",
    "lei",
    "jun",
    "yang",
    "yong",
    "yan",
    "jie",
    "tao",
    "ming",
    "chao",
    "xiu",
    "xia",
    "hui",
    "ping",
    "gang",
    "hong",
    "bo",
    "lan",
    "yu",
    "hao",
    "xin",
    "ting",
]
CHANNELS = ("shopify", "youzan", "douyin", "wecom")
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
# requests); the rest are optional and often missing.
KEY_RATES = {
    "shopify": {"email": 0.99, "phone": 0.85, "openid": 0.0},  # checkout requires an e-mail; phone for delivery
    "youzan": {"email": 0.1, "phone": 0.98, "openid": 0.95},  # delivery phone; WeChat UnionID
    "douyin": {"email": 0.02, "phone": 0.99, "openid": 0.0},  # delivery phone
    "wecom": {"email": 0.5, "phone": 0.9, "openid": 0.98},  # WeChat external contact: UnionID; agents note phones
}


@dataclass(frozen=True)
class Record:
    person: int
    source: str
    customer: Customer


def _phone_text(rng: random.Random, digits: str) -> str:
    style = rng.randrange(6)
    return [
        digits,
        f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
        f"{digits[:3]}-{digits[3:7]}-{digits[7:]}",
        f"0086{digits}",
        f"+86{digits}",
        f" {digits[:3]} {digits[3:]} ",
    ][style]


def _noisy(rng: random.Random, text: str) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        return text.upper()
    if choice == 1:
        return text.title()
    if choice == 2:
        return f"  {text} "
    return text


def generate(people: int, seed: int = 20261123) -> list[Record]:
    rng = random.Random(seed)
    persons = []
    used_names: set[str] = set()
    for p in range(people):
        while True:
            name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}{rng.choice(GIVEN)}"
            if name not in used_names or rng.random() < 0.3:  # some people share a name with a stranger
                used_names.add(name)
                break
        persons.append(
            {
                "name": name,
                "email": f"{name.replace(' ', '.')}.{p}@example.com",
                "phone": f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}",
                "openid": f"oU{rng.getrandbits(64):016x}",
                "card": f"M{p:08d}" if rng.random() < 0.4 else None,
            }
        )
    # Families: 8 % of people share the phone of the person before them.
    for p in range(1, people):
        if rng.random() < 0.08:
            persons[p]["phone"] = persons[p - 1]["phone"]

    records = []
    for p, person in enumerate(persons):
        count = rng.choices([1, 2, 3, 4], weights=[10, 20, 30, 40])[0]
        for channel in rng.sample(CHANNELS, count):
            has = KEY_RATES[channel]
            records.append(
                Record(
                    person=p,
                    source=channel,
                    customer=Customer(
                        source_customer_id=f"{channel}-{rng.getrandbits(48):012x}",
                        name=_noisy(rng, person["name"]),
                        email=_noisy(rng, person["email"]) if rng.random() < has["email"] else None,
                        phone=_phone_text(rng, person["phone"]) if rng.random() < has["phone"] else None,
                        openid=person["openid"] if rng.random() < has["openid"] else None,
                        wecom_external_user_id=f"wm{p:09d}" if channel == "wecom" else None,
                        member_card_no=person["card"] if channel == "wecom" else None,
                    ),
                )
            )
    rng.shuffle(records)
    return records


@dataclass(frozen=True)
class Score:
    people: int
    records: int
    channels_per_person: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    merge_candidates: int
    linkable_pairs: int  # true pairs joined by some chain of shared keys: what any resolver could reach

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0


def evaluate(records: list[Record], salt: bytes = b"tenant-salt") -> Score:
    index = MemoryIdentityIndex()
    assigned: list[tuple[int, str]] = []
    for record in records:
        resolution = resolve(record.customer, record.source, index, salt)
        assigned.append((record.person, resolution.customer_id))
    # Customers absorbed later answer to the customer that absorbed them.
    assigned = [(person, index.canonical(customer)) for person, customer in assigned]
    by_person: dict[int, list[int]] = defaultdict(list)
    by_customer: dict[str, list[int]] = defaultdict(list)
    for i, (person, customer) in enumerate(assigned):
        by_person[person].append(i)
        by_customer[customer].append(i)
    true_pairs = {pair for members in by_person.values() for pair in combinations(members, 2)}
    predicted = {pair for members in by_customer.values() for pair in combinations(members, 2)}
    return Score(
        people=len(by_person),
        records=len(records),
        channels_per_person=len(records) / len(by_person),
        true_pairs=len(true_pairs),
        predicted_pairs=len(predicted),
        correct_pairs=len(true_pairs & predicted),
        merge_candidates=len(index.candidates),
        linkable_pairs=_linkable_pairs(records, by_person),
    )


def _linkable_pairs(records: list[Record], by_person: dict[int, list[int]]) -> int:
    """Pairs of one person's records connected through shared strong keys or phone + name."""
    from shared.identity.resolver import identity_keys, normalise_name

    total = 0
    for members in by_person.values():
        parent = {m: m for m in members}

        def find(x: int, parent: dict[int, int] = parent) -> int:
            while parent[x] != x:
                x = parent[x]
            return x

        seen: dict[tuple[str, str], int] = {}
        for m in members:
            record = records[m]
            name = normalise_name(record.customer.name)
            for key in identity_keys(record.customer, record.source, "CN"):
                if key.kind == "source_id":
                    continue
                token = (key.kind, key.value if key.strong else f"{key.value}|{name}")
                if token in seen:
                    parent[find(m)] = find(seen[token])
                else:
                    seen[token] = m
        groups: dict[int, int] = defaultdict(int)
        for m in members:
            groups[find(m)] += 1
        total += sum(n * (n - 1) // 2 for n in groups.values())
    return total
