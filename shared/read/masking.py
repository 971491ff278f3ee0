"""What each reader role sees of a customer: one function, ``mask_for``, for the lookup API and the page.

- ``supervisor`` and ``system``: the document whole.
- ``agent`` (and any role this module does not know: it fails closed), by field, at any depth (the
  customer card, several matching customers' cards, orders and their shipping addresses, the timeline's
  changes, where the field is named by the change's ``field``):

  - phones: country code, the first 3 and the last 4 digits of the national number
    (``+8613812348000`` and ``138 1234 8000`` -> ``+86 138****8000``); what cannot be read as a
    number keeps at most its first 3 and last 4 digits, or is ``***``;
  - e-mails: the first character and the domain (``li.lei@example.com`` -> ``l***@example.com``);
  - a phone or e-mail field holding an object or a list (``{"phone": {"number": ...}}``): every value
    in it masked as that field's kind, whatever the inner keys are called (``number``, ``value``);
  - addresses: down to the city. An address object keeps its city, province / state and country (and
    the recipient's name; its phone is masked as a phone), and loses its street lines, postal code,
    district and everything else; an address written as one string keeps the province and city it
    starts with (``广东省深圳市南山区科技园路1号`` -> ``广东省深圳市``), or is ``***`` when it does not
    start with them (a street address in Latin script is not parsed);
  - names: kept (agents greet the customer);
  - other personal data (id-card and passport numbers, birth dates, bank cards, IP addresses, post
    codes and street lines outside an address object): ``***``;
  - free text (a ticket's subject, a checkpoint's message, a note, a reason): e-mails and phone numbers
    in it masked as in the logs (``***8000``);
  - everything else (ids, statuses, amounts, dates, serials, tracking numbers, SKUs): kept.

Field classification reuses the log masker's (``shared.masking``): a field it would mask
(``is_personal_field``: the names, phones, e-mails, address parts, ``receiver_*`` / ``buyer_*`` and
identity documents it lists) is personal here too, and this module only decides *how* an agent sees
it: phones, e-mails and addresses partly, names and places whole, the rest not at all. Field names
are compared as there, lower-cased without ``_``, ``-`` or spaces (``receiverMobile`` is
``receiver_mobile``). Free text goes through the log masker's ``mask_text``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from shared.masking import MASK, is_personal_field, mask_text
from shared.read.readers import Role

FieldKind = Literal["email", "phone", "address", "place", "name", "personal", "text"]

# Kept whole in an address and wherever they stand (receiver_city): what "down to the city" leaves
PLACE_FIELDS = frozenset({"city", "province", "state", "region", "country", "countrycode", "countryname"})
PLACE_ENDINGS = ("city", "province", "country", "countrycode")
# Names are kept: a field ending in "name" and these
NAME_FIELDS = frozenset({"consignee", "buyernick", "nickname", "fansnickname", "contactperson", "surname"})
PHONE_PARTS = ("phone", "mobile", "telephone", "posttel")
PHONE_FIELDS = frozenset({"tel", "fax", "telno", "telnumber", "faxno", "contactno", "contactnumber", "mobileno"})
# Free text, where a phone number or an e-mail may be written
TEXT_FIELDS = frozenset(
    {"subject", "message", "note", "notes", "staffnote", "reason", "comment", "comments", "description", "body",
     "remark", "remarks", "memo", "text", "content", "contact"}
)  # fmt: skip
# A timeline change: {"field": "<name>", "after": value} (and "before", if a summary carries it)
CHANGE_VALUES = ("after", "before", "value")

MIN_PHONE_DIGITS = 7
PHONE_HEAD, PHONE_TAIL = 3, 4

# A Chinese address starts with its province (or autonomous region, or SAR) and city (or prefecture)
_CJK_PLACE = r"[\u3400-\u4dbf\u4e00-\u9fff]"
_NOT_IN_PLACE = "区县路街巷道号镇乡村弄"  # a district, a road, a number: past the city
_CN_PLACE = re.compile(
    rf"\s*(?P<province>(?:(?![{_NOT_IN_PLACE}]){_CJK_PLACE}){{2,8}}?(?:省|自治区|特别行政区))?\s*"
    rf"(?P<city>(?:(?![{_NOT_IN_PLACE}]){_CJK_PLACE}){{2,12}}?(?:市|自治州|地区|盟))?"
)


def mask_for(role: Role | str, document: Any, *, default_region: str = "CN") -> Any:
    """The lookup answer (or any part of it) as ``role`` may see it. ``default_region`` reads a phone
    written without ``+<country code>`` (the tenant's, as identity does). The document is not changed:
    an agent gets a masked copy, a supervisor or a system the document itself."""
    if role in ("supervisor", "system"):
        return document
    return _agent(document, None, default_region)


def _normal(key: str) -> str:
    return re.sub(r"[\s_-]", "", key).lower()


def field_kind(key: str) -> FieldKind | None:
    """How an agent sees a field's value, by the field's name (its last segment when dotted:
    ``shipping_address.city``); ``None``: kept as it is."""
    name = _normal(key.rsplit(".", 1)[-1])
    if "email" in name:
        return "email"
    if any(part in name for part in PHONE_PARTS) or name in PHONE_FIELDS or name.endswith("tel"):
        return "phone"
    if "address" in name or "addr" in name:
        return "address"
    if name in PLACE_FIELDS or name.endswith(PLACE_ENDINGS):
        return "place"
    if name in TEXT_FIELDS:
        return "text"
    if name.endswith("name") or name in NAME_FIELDS:
        return "name"
    if is_personal_field(name):
        return "personal"
    return None


def _agent(value: Any, key: str | None, region: str, personal: bool = False) -> Any:
    """``personal``: ``value`` is inside a personal field (``receiver: {...}``, ``id_card: {...}``),
    where a field of no kind of its own is masked too."""
    kind = field_kind(key) if key is not None else None
    if value is None or isinstance(value, bool):
        return value
    if kind == "address":
        return _address(value, region)
    inner = personal or kind == "personal"
    if kind in ("email", "phone") and isinstance(value, Mapping):
        return _held(value, kind, region)
    if isinstance(value, Mapping):
        return _object(value, region, inner)
    if isinstance(value, list | tuple):
        return [_agent(v, key, region, personal) for v in value]
    if kind == "email":
        return mask_email(str(value))
    if kind == "phone":
        return mask_phone(str(value), region)
    if kind == "text" and isinstance(value, str):
        return mask_text(value)
    if kind in ("name", "place"):
        return value
    return MASK if inner else value


def _object(value: Mapping[str, Any], region: str, personal: bool) -> dict[str, Any]:
    changed = value.get("field")  # a timeline change names the field its values belong to
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(changed, str) and k in CHANGE_VALUES:
            out[k] = _agent(v, changed, region, personal)
        else:
            out[k] = _agent(v, str(k), region, personal)
    return out


def _held(value: Any, kind: FieldKind, region: str) -> Any:
    """What a phone or e-mail field holds when it is not a string (``{"phone": {"number": ...}}``,
    ``{"emails": [{"value": ..., "primary": true}]}``): the inner keys (``number``, ``value``) name no
    personal field, so the outer field decides. A value whose own key has a kind keeps that kind's
    masking (``{"phone": {"e_mail": ...}}``); any other is masked as the outer field's kind (a ``type``
    of ``mobile`` becomes ``***``: it fails closed). Booleans and nulls stay."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            own = field_kind(str(k))
            out[k] = _agent(v, str(k), region) if own is not None else _held(v, kind, region)
        return out
    if isinstance(value, list | tuple):
        return [_held(v, kind, region) for v in value]
    return mask_email(str(value)) if kind == "email" else mask_phone(str(value), region)


def _address(value: Any, region: str) -> Any:
    """An address down to its city: an object keeps its places and the recipient's name (its phone and
    e-mail masked as such); a string keeps the province and city it starts with, else is ``***``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, list | tuple):
        return [_address(v, region) for v in value]
    if isinstance(value, Mapping):
        kept: dict[str, Any] = {}
        for k, v in value.items():
            kind = field_kind(str(k))
            if kind in ("place", "name"):
                kept[k] = v
            elif kind in ("phone", "email"):
                kept[k] = _agent(v, str(k), region)
        return kept
    return city_of(str(value)) or MASK


def city_of(address: str) -> str | None:
    """The province and city a Chinese address starts with (``广东省深圳市南山区…`` -> ``广东省深圳市``,
    ``北京市朝阳区…`` -> ``北京市``, ``香港特别行政区九龙…`` -> ``香港特别行政区``); ``None`` when it
    starts with neither."""
    match = _CN_PLACE.match(address)
    if match is None or not (match["province"] or match["city"]):
        return None
    return (match["province"] or "") + (match["city"] or "")


def mask_email(email: str) -> str:
    """``li.lei@example.com`` -> ``l***@example.com``; what is not an e-mail -> ``***``."""
    local, at, domain = email.strip().rpartition("@")
    if not (at and local and domain and "." in domain):
        return MASK
    return f"{local[0]}***@{domain}"


def mask_phone(phone: str, default_region: str = "CN") -> str:
    """``+86 138****8000`` from ``+8613812348000``, ``138 1234 8000`` or ``(+86) 138-1234-8000``: the
    country code, the first 3 and last 4 digits of the national number, one ``*`` a digit between.
    A number phonenumbers cannot read keeps the first 3 and last 4 of its digits (no country code);
    fewer than 7 digits: ``***``; 7 digits: the last 4 only (``***4567``)."""
    import phonenumbers  # its metadata is large: loaded by the first phone masked, not at import

    try:
        number = phonenumbers.parse(phone, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None and phonenumbers.is_possible_number(number):
        national = phonenumbers.national_significant_number(number)
        return f"+{number.country_code} {_middle(national)}" if len(national) >= MIN_PHONE_DIGITS else MASK
    digits = re.sub(r"\D", "", phone)
    return _middle(digits) if len(digits) >= MIN_PHONE_DIGITS else MASK


def _middle(digits: str) -> str:
    if len(digits) < PHONE_HEAD + PHONE_TAIL + 1:  # too short to show both ends: the tail only
        return "*" * (len(digits) - PHONE_TAIL) + digits[-PHONE_TAIL:]
    return digits[:PHONE_HEAD] + "*" * (len(digits) - PHONE_HEAD - PHONE_TAIL) + digits[-PHONE_TAIL:]
