"""Unified customer identity: normalise identity keys, hash them with a tenant salt, and resolve every
incoming customer to one customer id without ever merging two people on weak evidence.

Key strength:
- strong: the source's own customer id, e-mail, WeCom external user id, WeChat OpenID/UnionID,
  member card number — each identifies one person;
- weak: phone (families share one). A phone alone links a record to an existing customer only when
  exactly one customer with that phone also has the same name and no conflicting strong key.

Names compare across scripts and orders (``shared.identity.names``): ``Lei Li``, ``LI Lei`` and ``李雷``
are the same name. A name alone never links anything. Homophones written in other characters (``李蕾``
and ``李雷``) are not the same name for a join: where nothing else tells two such customers apart, a
merge candidate is recorded for a person, never a merge.

When one record carries strong keys of two existing customers (a shop account known by e-mail, a
WeChat follower known by OpenID, and the CRM record that has both), they are absorbed into one only
when every one of them goes by the record's name and no strong key kind tells them apart (two
different e-mails) and no person has decided they are two people. Anything less records a merge
candidate for a person to decide (``aftersync customers``), and the record stays with the customer
its own source id points to. Absorbed customers keep answering to their old id through an alias
that records the evidence.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from shared.errors import ConfigurationError
from shared.identity.names import NameHashes, name_hashes
from shared.models import Customer

NameMatch = Literal["same", "homophone", "different"]

KeyKind = Literal["source_id", "email", "wecom", "openid", "card", "phone"]
STRONG: frozenset[str] = frozenset({"source_id", "email", "wecom", "openid", "card"})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class IdentityKey:
    kind: KeyKind
    value: str

    @property
    def strong(self) -> bool:
        return self.kind in STRONG


def normalise_phone(raw: str | None, default_region: str) -> str | None:
    if not raw or not raw.strip():
        return None
    # imported on first use: the largest import of a cold start, needed only once a record carries a phone
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str | None) -> str | None:
    value = (raw or "").strip().lower()
    return value if EMAIL.match(value) else None


def normalise_name(raw: str | None) -> str | None:
    """A name as the index kept it in clear before names were keyed across scripts (read only to
    understand such profiles; see ``CustomerProfile.legacy_names``)."""
    if not raw:
        return None
    value = unicodedata.normalize("NFKC", raw).casefold()
    value = re.sub(r"\s+", " ", value).strip()
    return value or None


def identity_keys(customer: Customer, source: str, default_region: str) -> list[IdentityKey]:
    keys = [IdentityKey("source_id", f"{source}:{customer.source_customer_id}")]
    if email := normalise_email(customer.email):
        keys.append(IdentityKey("email", email))
    for kind, value in (
        ("wecom", customer.wecom_external_user_id),
        ("openid", customer.openid),
        ("card", customer.member_card_no),
    ):
        if value and value.strip():
            keys.append(IdentityKey(kind, value.strip()))  # type: ignore[arg-type]
    if phone := normalise_phone(customer.phone, default_region):
        keys.append(IdentityKey("phone", phone))
    return keys


MIN_SALT_LENGTH = 32
# A customer known by more names, or more strong keys of one kind, than a person has is a shared
# account (a guest-checkout placeholder, a B2B account ordered for by many buyers): past this many its
# profile takes no more, so it is not written on every order and does not grow without bound.
SHARED_ACCOUNT_LIMIT = 8
# A name is one to a few keys (a one-word romanisation splits more than one way; ü two ways): a person's
# few spellings stay well under this, a shared account stops taking names at it.
NAME_KEY_LIMIT = SHARED_ACCOUNT_LIMIT * 2


def salt_from_secret(secret: dict[str, object] | None, name: str) -> bytes:
    """The tenant's identity salt from its secret ``{"salt": "..."}``; too short a salt is refused,
    since every stored identity key is only as private as the salt."""
    salt = (secret or {}).get("salt")
    if not isinstance(salt, str) or len(salt) < MIN_SALT_LENGTH:
        raise ConfigurationError(f'secret {name!r} must be {{"salt": "<at least {MIN_SALT_LENGTH} characters>"}}')
    return salt.encode()


def hash_key(salt: bytes, key: IdentityKey) -> str:
    """Keys are stored only as tenant-salted HMACs: the index never holds a phone or an address."""
    return hmac.new(salt, f"{key.kind}:{key.value}".encode(), hashlib.sha256).hexdigest()


def new_customer_id(source_id_hash: str) -> str:
    """The id of a customer created from a record: from its own source id's hash."""
    return "cus_" + source_id_hash[:24]


def likely_customer_id(source: str, source_customer_id: str, salt: bytes) -> str:
    """The customer a source customer id most likely resolves to: the one it created when first seen
    (a guess to read ahead with, never an answer)."""
    return new_customer_id(hash_key(salt, IdentityKey("source_id", f"{source}:{source_customer_id}")))


class IdentityIndex(Protocol):
    def owners(self, hashes: Sequence[str]) -> dict[str, set[str]]:
        """hash -> customer ids that hold it (strong keys: one at most; phones: a family)."""

    def profile(self, customer_id: str) -> CustomerProfile: ...

    def claim(self, customer_id: str, keys: Sequence[tuple[str, KeyKind]], names: NameHashes | None) -> None:
        """Attach ``(hash, kind)`` keys and the name's hashes to a customer; a strong key goes to one
        customer only (a claim that lost a race to another customer is dropped, never moved)."""

    def merge_candidate(self, customer_ids: Iterable[str], evidence: Sequence[str]) -> None:
        """Record a possible merge for a person, once: a candidate already decided is not raised again."""

    def absorb(self, alias: str, customer_id: str, evidence: Sequence[str]) -> None:
        """``alias`` was the same person all along: its keys and name now answer to ``customer_id``;
        the evidence is kept with the alias."""


@dataclass
class CustomerProfile:
    names: set[str] = field(default_factory=set)  # name key hashes (``NameHashes.keys``)
    strong_kinds: dict[str, set[str]] = field(default_factory=dict)  # kind -> hashes
    apart: set[str] = field(default_factory=set)  # customers a person decided are someone else
    forms: set[str] = field(default_factory=set)  # hashes of a name key with its hanzi form
    written: set[str] = field(default_factory=set)  # hashes of the name keys a hanzi form was seen under
    # Names a profile written before names were keyed across scripts holds in clear (normalised); read
    # as their hashes, and rewritten as hashes by ``aftersync customers relink``.
    legacy_names: set[str] = field(default_factory=set)

    def name_hashes(self) -> NameHashes:
        return NameHashes(frozenset(self.names), frozenset(self.forms), frozenset(self.written))


def with_legacy_names(profile: CustomerProfile, salt: bytes) -> CustomerProfile:
    """The profile with the clear names of an older profile read as their hashes."""
    if not profile.legacy_names:
        return profile
    hashed = profile.name_hashes()
    for name in profile.legacy_names:
        hashed |= name_hashes(name, salt)
    return CustomerProfile(
        set(hashed.keys),
        profile.strong_kinds,
        profile.apart,
        set(hashed.forms),
        set(hashed.written),
        profile.legacy_names,
    )


def name_match(record: NameHashes, profile: CustomerProfile) -> NameMatch:
    """``same``: a key in common, and the same characters wherever both were written in hanzi;
    ``homophone``: a key in common but other characters (李蕾 and 李雷); ``different``: no key in common."""
    if not record.keys & profile.names:
        return "different"
    if not record.forms or record.forms & profile.forms or not record.written & profile.written:
        return "same"  # no hanzi on one side, the same hanzi, or hanzi known only under other keys
    return "homophone"


def names_agree(a: CustomerProfile, b: CustomerProfile) -> bool:
    """Two customers may be one person by their names: a name key in common, or a name unknown on one
    side. (A record's name can fit two customers whose own names differ — ``xiaomingzhang`` reads as
    张晓明 and as 肖明章 — and must not join them.)"""
    return not a.names or not b.names or bool(a.names & b.names)


def names_conflict(a: CustomerProfile, b: CustomerProfile) -> bool:
    """Two customers both written in hanzi under one name key, in characters they never share."""
    return bool(a.written & b.written) and not (a.forms & b.forms)


@dataclass(frozen=True)
class Resolution:
    customer_id: str
    created: bool
    merge_candidates: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()
    absorbed: tuple[str, ...] = ()  # customers found to be this one (their ids now answer to it)


def resolve(
    customer: Customer, source: str, index: IdentityIndex, salt: bytes, default_region: str = "CN"
) -> Resolution:
    keys = identity_keys(customer, source, default_region)
    hashed = {hash_key(salt, k): k for k in keys}
    owners = index.owners(list(hashed))
    names = name_hashes(customer.name, salt)
    own_id_hash = next(h for h, k in hashed.items() if k.kind == "source_id")

    def profile(customer_id: str) -> CustomerProfile:
        return with_legacy_names(index.profile(customer_id), salt)

    strong_owners: dict[str, list[str]] = {}
    for h, ids in owners.items():
        if hashed[h].strong:
            for cid in ids:
                strong_owners.setdefault(cid, []).append(hashed[h].kind)

    if len(strong_owners) > 1:
        # One record carries strong keys of several customers. Keep it with the customer its own source
        # id points to (or the one with most evidence).
        chosen = next(iter(owners.get(own_id_hash, ())), None) or max(
            sorted(strong_owners), key=lambda c: len(strong_owners[c])
        )
        evidence = tuple(sorted({kind for kinds in strong_owners.values() for kind in kinds}))
        if (
            names
            and all(name_match(names, profile(cid)) == "same" for cid in strong_owners)
            and joinable(profile, strong_owners)
        ):
            # Two identifiers that each name one person, seen together by one source, under the name
            # every one of these customers goes by, and no key on which they differ: they are one
            # person seen in parts (e.g. a shop account by e-mail and a WeChat follower by OpenID,
            # joined by the CRM record that has both). Absorbed, with the evidence recorded.
            for other in sorted(set(strong_owners) - {chosen}):
                index.absorb(other, chosen, evidence)
            owners = index.owners(list(hashed))
            _absorb_phone_only(index, chosen, hashed, owners, names, profile)
            _claim_unowned(index, chosen, hashed, owners, names, profile)
            return Resolution(chosen, False, (), evidence, absorbed=tuple(sorted(set(strong_owners) - {chosen})))
        # Anything less (another name, two different e-mails, no name at all) is not ours to decide:
        # a merge candidate for a person, and no merge.
        index.merge_candidate(sorted(strong_owners), evidence)
        _claim_unowned(index, chosen, hashed, owners, names, profile)
        return Resolution(chosen, False, tuple(sorted(set(strong_owners) - {chosen})), evidence)

    if len(strong_owners) == 1:
        [chosen] = strong_owners
        _absorb_phone_only(index, chosen, hashed, owners, names, profile)
        _claim_unowned(index, chosen, hashed, owners, names, profile)
        return Resolution(chosen, False, (), tuple(sorted(set(strong_owners[chosen]))))

    # No strong key known: a phone may link to an existing customer, on strict conditions.
    phone_hashes = [h for h, k in hashed.items() if k.kind == "phone"]
    candidates = sorted({cid for h in phone_hashes for cid in owners.get(h, set())})
    matches = {cid: name_match(names, profile(cid)) if names else "different" for cid in candidates}
    compatible = [cid for cid in candidates if matches[cid] == "same" and _no_strong_conflict(profile(cid), hashed)]
    if len(compatible) > 1 and joinable(profile, compatible):
        # Several customers created from partial records of one person (same phone, same name, no key
        # that tells them apart): they become one, by the same test a single record must pass.
        for other in compatible[1:]:
            index.absorb(other, compatible[0], ("phone", "name"))
        compatible = compatible[:1]
    if len(compatible) == 1:
        _claim_unowned(index, compatible[0], hashed, owners, names, profile)
        return Resolution(compatible[0], False, (), ("phone", "name"))
    if len(compatible) > 1:
        index.merge_candidate(compatible, ("phone", "name"))

    customer_id = new_customer_id(own_id_hash)  # deterministic: a retry resolves to the same id
    _claim_unowned(index, customer_id, hashed, owners, names, profile)
    # The same phone under a homophone in other characters (李蕾 and 李雷), nothing else to tell them
    # apart: a person decides.
    homophones = [
        cid for cid in candidates if matches[cid] == "homophone" and _no_strong_conflict(profile(cid), hashed)
    ]
    if homophones:
        index.merge_candidate([customer_id, *homophones], ("phone", "homophone name"))
    return Resolution(
        customer_id,
        True,
        tuple(compatible or homophones),
        ("phone", "name") if compatible else ("phone", "homophone name") if homophones else (),
    )


def _absorb_phone_only(
    index: IdentityIndex,
    chosen: str,
    hashed: dict[str, IdentityKey],
    owners: dict[str, set[str]],
    names: NameHashes,
    profile: Callable[[str], CustomerProfile],
) -> None:
    """A customer created earlier from a phone-only record may be this same person: absorb it when it
    passes the same test a record must pass to link by phone (same name, no conflicting key)."""
    phone_owners = {cid for h, key in hashed.items() if key.kind == "phone" for cid in owners.get(h, set())}
    others = sorted(
        other
        for other in phone_owners - {chosen}
        if names and name_match(names, profile(other)) == "same" and joinable(profile, (chosen, other))
    )
    if len(others) > 1 and not joinable(profile, (chosen, *others)):
        # Each could be this person, not all together (李雷 and 李蕾 for a pinyin "Lei Li"): a person decides.
        index.merge_candidate([chosen, *others], ("phone", "name"))
        return
    for other in others:
        index.absorb(other, chosen, ("phone", "name"))


def _no_strong_conflict(profile: CustomerProfile, hashed: dict[str, IdentityKey]) -> bool:
    for h, key in hashed.items():
        known = profile.strong_kinds.get(key.kind)
        if key.strong and key.kind != "source_id" and known and h not in known:
            return False  # e.g. a different e-mail: another person sharing the phone
    return True


def joinable(profile: Callable[[str], CustomerProfile], customer_ids: Iterable[str]) -> bool:
    """Every pair may be one person: no strong key kind on which they differ, names that share a key
    (where both are known) and that neither wrote in hanzi in other characters, and no person's decision
    that they are two (a rejected merge candidate)."""
    profiles = {cid: profile(cid) for cid in customer_ids}
    return all(
        strong_keys_agree(profiles[a], profiles[b])
        and names_agree(profiles[a], profiles[b])
        and not names_conflict(profiles[a], profiles[b])
        and a not in profiles[b].apart
        and b not in profiles[a].apart
        for a, b in itertools.combinations(sorted(profiles), 2)
    )


def strong_keys_agree(a: CustomerProfile, b: CustomerProfile) -> bool:
    """No strong key kind on which the two customers hold different values."""
    return all(
        not (a.strong_kinds.get(kind) and hashes and not (a.strong_kinds[kind] & hashes))
        for kind, hashes in b.strong_kinds.items()
        if kind != "source_id"
    )


def _claim_unowned(
    index: IdentityIndex,
    customer_id: str,
    hashed: dict[str, IdentityKey],
    owners: dict[str, set[str]],
    names: NameHashes,
    profile: Callable[[str], CustomerProfile],
) -> None:
    known = profile(customer_id)
    claims = [
        (h, k.kind)
        for h, k in hashed.items()
        if customer_id not in owners.get(h, set())
        and not (k.strong and owners.get(h))
        and not (k.strong and len(known.strong_kinds.get(k.kind, ())) >= SHARED_ACCOUNT_LIMIT)
    ]
    new_name = bool(names) and (
        not names.keys <= known.names or not names.forms <= known.forms or not names.written <= known.written
    )
    new_name = new_name and len(known.names) < NAME_KEY_LIMIT
    if claims or new_name:  # a customer seen again with nothing new costs no write
        index.claim(customer_id, claims, names if new_name else None)


class MemoryIdentityIndex:
    """The index in memory: for the logic tests and the identity benchmark."""

    def __init__(self) -> None:
        self.keys: dict[str, set[str]] = {}
        self.profiles: dict[str, CustomerProfile] = {}
        self.candidates: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.aliases: dict[str, str] = {}
        self.absorbed: dict[str, tuple[str, ...]] = {}  # alias -> the evidence it was absorbed on

    def absorb(self, alias: str, customer_id: str, evidence: Sequence[str]) -> None:
        alias, customer_id = self.canonical(alias), self.canonical(customer_id)
        if alias == customer_id:
            return
        self.aliases[alias] = customer_id
        self.absorbed[alias] = tuple(evidence)
        merged = self.profiles.setdefault(customer_id, CustomerProfile())
        gone = self.profiles.pop(alias, CustomerProfile())
        merged.names |= gone.names
        merged.forms |= gone.forms
        merged.written |= gone.written
        merged.legacy_names |= gone.legacy_names
        merged.apart |= gone.apart
        for kind, hashes in gone.strong_kinds.items():
            merged.strong_kinds.setdefault(kind, set()).update(hashes)

    def canonical(self, customer_id: str) -> str:
        while customer_id in self.aliases:
            customer_id = self.aliases[customer_id]
        return customer_id

    def owners(self, hashes: Sequence[str]) -> dict[str, set[str]]:
        return {h: {self.canonical(c) for c in self.keys[h]} for h in hashes if h in self.keys}

    def profile(self, customer_id: str) -> CustomerProfile:
        return self.profiles.get(self.canonical(customer_id), CustomerProfile())

    def claim(self, customer_id: str, keys: Sequence[tuple[str, KeyKind]], names: NameHashes | None) -> None:
        customer_id = self.canonical(customer_id)
        profile = self.profiles.setdefault(customer_id, CustomerProfile())
        for h, kind in keys:
            holders = self.keys.setdefault(h, set())
            if kind in STRONG and {self.canonical(c) for c in holders} - {customer_id}:
                continue
            holders.add(customer_id)
            if kind in STRONG:
                profile.strong_kinds.setdefault(kind, set()).add(h)
        if names:
            profile.names |= names.keys
            profile.forms |= names.forms
            profile.written |= names.written

    def merge_candidate(self, customer_ids: Iterable[str], evidence: Sequence[str]) -> None:
        self.candidates.setdefault(tuple(sorted(customer_ids)), tuple(evidence))

    def keep_apart(self, customer_ids: Sequence[str]) -> None:
        """A person decided these are different people: no resolution will join them."""
        ids = [self.canonical(c) for c in customer_ids]
        for cid in ids:
            self.profiles.setdefault(cid, CustomerProfile()).apart.update(set(ids) - {cid})
