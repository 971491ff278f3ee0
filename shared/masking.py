"""Personal data out of what operators see and what is logged.

- JSON documents (a dead letter's body, an envelope) are masked **by field**: the value of every field
  named like personal data (names, phones, e-mails, addresses, id-card numbers, a Chinese shop's
  ``receiver_*`` / ``buyer_*`` fields, whole address objects) becomes ``***``; every other string is free
  text, except one token under a field named like an id or an amount (``"assignee_id": "1512863381481"``),
  which is kept; numbers, flags and nulls are kept, and the result is still valid JSON. JSON inside a
  string (the webhook body in an envelope, Youzan's URL-encoded ``msg``) is masked the same way.
- Free text (a reason, a note, a courier's checkpoint, a body that is not JSON) has e-mails and phone
  numbers masked (``mask_text``); ids, dates and amounts in it stay readable. It cannot find names or
  street addresses, which is why reasons never quote values in the first place.
- Errors are described by field path and error kind (``describe``), never by the value that was wrong:
  the text of ``int()``'s ``ValueError``, a ``KeyError`` of a looked-up value or pydantic's
  ``Value error, ...`` quotes the payload.
"""

from __future__ import annotations

import json
import linecache
import re
from collections.abc import Iterable
from typing import Any, get_args
from urllib.parse import quote_plus, unquote_plus

from pydantic import ValidationError
from pydantic_core.core_schema import ErrorType

from shared.errors import UnusableValue

MASK = "***"

# (a local part starts where a run of its characters starts: linear time on a long run without "@")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")

# Phone numbers in free text. The text is read left to right as a sequence of things kept as they are
# (ids, dates, amounts) and runs of digit groups; each run is then split into phone numbers.
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15  # E.164: a longer number is an id (an order or a platform's, 820982911946154508)
# 2024-01-15, 2024.01.15, 15-01-2024, 15.01.2024: never part of a phone number
_DATE = r"(?:\d{4}[-.]\d{1,2}[-.]\d{1,2}|\d{1,2}[-.]\d{1,2}[-.]\d{4})(?!\d)"
# an amount: 598.00, 12345678.9 (one or two decimals; 555.123.4567 is not one)
_DECIMAL = r"\d+\.\d{1,2}(?!\.?\d)"
# an ARN (an IAM denial names one): its account id is no phone number
_ARN = r"(?<![0-9A-Za-z_-])arn:aws[a-z-]*:[0-9A-Za-z_:/.+=,@*-]*"
# a UUID (a message or request id), whose last group can be all digits
_UUID = r"(?<![0-9A-Za-z_-])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z_])"
# a word with an ASCII letter or "_" in it is an id, digits and all: SF1234567890123, E2026112110301501,
# pi_3MtwBwLkdIwHu7ix28a3tqPa, T10 of 2026-11-20T10 (letters of other scripts are not: 电话13912345678);
# a dash ends a word (Mei-13912345678 holds a phone number)
_ID_WORD = r"(?<![0-9A-Za-z_])[0-9A-Za-z_]*[A-Za-z_][0-9A-Za-z_]*"
# ... unless the letters only label the phone number glued to them: Tel13912345678, mobile-13912345678
_LABEL = r"(?<![0-9A-Za-z_-])(?i:tel(?:ephone)?|(?:cell|mobile)?phone|mobile|mob|cell|fax)[-_]?(?=\+?\d)"
# a group of a number as people write it: digits (not glued to a letter, not a date or an amount), or
# an area code in brackets; groups are joined by a space, a dash or a dot (up to three of them)
_GROUP = rf"(?:\(\d{{1,5}}\)|(?!{_DATE}|{_DECIMAL})\d+(?![\dA-Za-z_]))"
_NUMBERS = rf"\+?{_GROUP}(?:(?:[ \u00a0\u3000.-]{{1,3}}|(?<=\))){_GROUP})*"
_SCAN = re.compile(rf"(?P<kept>{_ARN}|{_UUID}|{_LABEL}|{_ID_WORD}|{_DATE}|{_DECIMAL})|(?P<numbers>{_NUMBERS})")
_DIGIT_GROUP = re.compile(r"\d+")


def mask_text(text: str) -> str:
    """Free text: ``alice@example.com`` -> ``a***@example.com``; each phone number -> ``***`` and its last
    4 digits, wherever it stands (``+86 139 1234 5678 2024-01-15`` -> ``***5678 2024-01-15``,
    ``13912345678 13912345679`` -> ``***5678 ***5679``).

    A phone number is one of: a run of 7 to 15 digits; ``+``, a country code and groups (as many as fit
    15 digits: ``+86 139 1234 5678``, ``+1 (555) 123-4567``); groups shorter than 7 digits written apart
    that add up to 7 to 15 (``139 1234 5678``, ``010-1234-5678``, ``(021) 5555-1234``). Kept as they
    are: a run of more than 15 digits (an order or a platform id, which operators need to find the
    record), a word with ASCII letters in it (``SF1234567890123``), a UUID, an ARN, dates, times and
    amounts.
    Where it cannot tell (``1001 1002``, a 10-digit epoch), it masks.
    """
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _SCAN.sub(lambda m: m.group() if m.group("kept") is not None else _mask_phones(m.group()), text)


def _mask_phones(run: str) -> str:
    """A run of digit groups with each phone number in it masked."""
    groups = [(g.start(), g.end()) for g in _DIGIT_GROUP.finditer(run)]
    pieces: list[str] = []
    done = i = 0
    while i < len(groups):
        j = _number_end(groups, i, international=i == 0 and run.startswith("+"))
        if MIN_PHONE_DIGITS <= sum(end - start for start, end in groups[i:j]) <= MAX_PHONE_DIGITS:
            start, end = (groups[i][0] if i else 0), groups[j - 1][1]  # the first one with its "+" or "("
            if start > 0 and run[start - 1] == "(":
                start -= 1
            if run[end : end + 1] == ")":
                end += 1
            pieces += [run[done:start], MASK + re.sub(r"\D", "", run[start:end])[-4:]]
            done = end
        i = j
    return "".join(pieces) + run[done:]


def _number_end(groups: list[tuple[int, int]], i: int, international: bool) -> int:
    """Where the number that starts at group ``i`` ends (the index after its last group): ``+`` and a
    country code take the groups that follow as long as they fit 15 digits; a run of 7 digits or more is
    a number by itself; shorter groups are one number as long as they fit 15 digits together."""

    def size(k: int) -> int:
        return groups[k][1] - groups[k][0]

    if not international and size(i) >= MIN_PHONE_DIGITS:
        return i + 1
    j = i
    digits = 0
    while j < len(groups) and digits + size(j) <= MAX_PHONE_DIGITS and (international or size(j) < MIN_PHONE_DIGITS):
        digits += size(j)
        j += 1
    return max(j, i + 1)  # "+" and more than 15 digits: an id


# Field names are compared lower-cased without "_", "-" or spaces: ``receiver_name``, ``receiverName``
# and ``ReceiverName`` are one name.
PERSONAL_FIELDS = frozenset(
    {
        # names
        "name", "firstname", "lastname", "fullname", "givenname", "familyname", "middlename", "surname",
        "nickname", "realname", "username", "contactname", "customername", "buyername", "buyernick",
        "fansnickname", "recipientname", "sendername", "billingname", "shippingname", "cardholdername",
        "consignee", "contact", "contactperson", "requestername",
        # phones, e-mails
        "phone", "phonenumber", "mobile", "mobilephone", "mobileno", "tel", "telephone", "fax",
        "email", "emailaddress", "contactemail", "receiptemail", "customeremail", "buyeremail",
        "buyerphone", "buyermobile", "customerphone", "contactphone", "telno", "telnumber", "faxno",
        "contactno", "contactnumber", "cardno", "cardnumber", "bankcardno", "bankaccount",
        # addresses (objects named like an address are masked whole, below)
        "street", "street1", "street2", "streetaddress", "address1", "address2", "address3",
        "addressline1", "addressline2", "addressline3", "line1", "line2", "line3",
        "city", "zip", "zipcode", "postcode", "postalcode", "latitude", "longitude",
        # identity documents, network identity, birth dates
        "idcard", "idcardno", "idnumber", "idno", "nationalid", "identitycard", "identitynumber", "certno",
        "passport", "passportno", "ssn", "taxid", "birthday", "birthdate", "dateofbirth", "dob",
        "ip", "browserip", "clientip",
    }
)  # fmt: skip
# Any field whose name contains one of these is personal data too (``receiver_tel``, ``post_receiver``,
# ``shipping_address`` with all it holds, ``buyer_email``, ``mask_post_tel``).
PERSONAL_PARTS = ("address", "addr", "receiver", "recipient", "phone", "mobile", "email", "telephone", "posttel")
# Under a field named like an id, a reference, a number, an amount or a time, a string that is one token
# (no spaces; ASCII letters, digits and ``_-:.#/``) is kept as it is: ``"assignee_id": "1512863381481"``,
# ``"AmazonOrderId": "114-3941689-8772232"``, ``"admin_graphql_api_id": "gid://shopify/Return/945000954"``,
# Kuaidi100's ``"nu"``, ``"total_fee"``, ``"update_time"``, a stock movement's ``"ref"``. Every other string
# is free text: a phone number under ``note_attributes[].value`` or in ``tags`` is masked.
ID_FIELD_ENDINGS = (
    "id", "ids", "no", "number", "nu", "sn", "code", "ref", "reference", "key", "sku",
    "amount", "fee", "price", "total", "time", "version", "count", "qty", "quantity",
)  # fmt: skip
_TOKEN = re.compile(r"[A-Za-z0-9_\-:.#/]+")


def _normal(key: str) -> str:
    return re.sub(r"[\s_-]", "", key).lower()


def is_personal_field(key: str) -> bool:
    name = _normal(key)
    return name in PERSONAL_FIELDS or any(part in name for part in PERSONAL_PARTS)


def _erase(value: Any) -> Any:
    """Everything under a personal field: strings and numbers masked, structure, nulls and flags kept."""
    if isinstance(value, dict):
        return {k: _erase(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_erase(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    return MASK


def _embedded(text: str) -> str | None:
    """A string that holds a JSON object or array (an envelope's webhook body; Youzan's ``msg``, which is
    URL-encoded) masked the same way and encoded as it was; ``None`` for any other string."""
    stripped = text.strip()
    encoded = stripped[:3].upper() in ("%7B", "%5B")
    if not (encoded or stripped.startswith(("{", "["))):
        return None
    try:
        document = json.loads(unquote_plus(stripped) if encoded else stripped)
    except (ValueError, RecursionError):
        return None
    if encoded:
        return quote_plus(json.dumps(mask_document(document), ensure_ascii=False, separators=(",", ":")))
    return json.dumps(mask_document(document), ensure_ascii=False)


def mask_document(value: Any, key: str | None = None) -> Any:
    """A parsed JSON document with every personal field masked and every other string masked as free
    text, except a single token under a field named like an id or an amount; ids, amounts, dates,
    numbers, flags and nulls untouched. ``key`` is the name of the field that holds ``value`` (for the
    items of a list, the list's)."""
    if key is not None and is_personal_field(key):
        return _erase(value)
    if isinstance(value, dict):
        return {k: mask_document(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_document(v, key) for v in value]
    if isinstance(value, str):
        inner = _embedded(value)
        if inner is not None:
            return inner
        if key is not None and _TOKEN.fullmatch(value) and _normal(key).endswith(ID_FIELD_ENDINGS):
            return value
        return mask_text(value)
    return value


def mask_json(text: str) -> str:
    """A JSON document masked by field (valid JSON out); text that is not JSON gets the free-text regex."""
    try:
        document = json.loads(text)
        return json.dumps(mask_document(document), ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or too deep / too large a number to parse
        return mask_text(text)


# --- errors: field paths and kinds, never values ---------------------------------------------------------

# Builtin errors whose text quotes the value they choked on (int("..."), {...}["..."], Decimal("...")).
VALUE_QUOTING: tuple[type[BaseException], ...] = (
    LookupError,
    ValueError,
    TypeError,
    ArithmeticError,
    AttributeError,
    UnicodeError,
)
# pydantic-core's own error types whose message can quote the input (or a validator's text about it);
# for these, and for custom error types, the reason gives the kind only.
_QUOTING_KINDS = frozenset(
    {
        "value_error",
        "assertion_error",
        "union_tag_invalid",
        "get_attribute_error",
        "iteration_error",
        "mapping_type",
        "datetime_object_invalid",
        "no_such_attribute",
    }
)
_CORE_KINDS = frozenset(get_args(ErrorType))
# A field name as payloads spell them (a dict key from the payload that looks otherwise is shown as "*")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_DIGIT_RUN = re.compile(r"\d{5}")


def _field(part: Any) -> str:
    if isinstance(part, int):
        return str(part)
    text = str(part)
    return text if _FIELD_NAME.fullmatch(text) and not _DIGIT_RUN.search(text) else "*"


def field_path(loc: Iterable[Any]) -> str:
    return ".".join(_field(p) for p in loc) or "(root)"


def _problem(error: Any) -> str:
    kind = str(error["type"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, UnusableValue):
        return cause.problem
    if kind in _QUOTING_KINDS or kind not in _CORE_KINDS:
        return kind
    return str(error["msg"])


def validation_problems(exc: ValidationError) -> list[str]:
    """``lines.0.quantity: Input should be a valid integer, ...`` for each error: path and kind only."""
    return [f"{field_path(e['loc'])}: {_problem(e)}" for e in exc.errors(include_input=False, include_url=False)]


def _causes(error: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current = error.__cause__ or error.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


# A key that came from data (a payload's value looked up in a mapping table, a name from config) is
# quoted only in the shape of a field name (lower-case snake, kebab or camel case: ``entity_type``,
# ``webhook-id``, ``orderStatus``) or of a status code (upper-case words joined by "_": ``WAIT_GROUP``).
_KEY_FROM_DATA = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+|[A-Z][a-z0-9]*)*|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
MAX_KEY_FROM_DATA = 40


def _missing_key(error: KeyError) -> str | None:
    """The key of a ``KeyError`` if it can be shown (see ``describe``), else ``None``."""
    key = error.args[0] if len(error.args) == 1 else None
    if not isinstance(key, str) or _field(key) != key:
        return None
    if _written_in_code(key, error):
        return key
    return key if len(key) <= MAX_KEY_FROM_DATA and _KEY_FROM_DATA.fullmatch(key) else None


def _written_in_code(key: str, error: BaseException) -> bool:
    """Whether ``key`` is a string literal on the line of code that raised ``error``
    (``change["AmazonOrderId"]``): a name the code looks up, not a value of the payload."""
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    line = linecache.getline(frame.tb_frame.f_code.co_filename, frame.tb_lineno)
    return f'"{key}"' in line or f"'{key}'" in line


def describe(error: BaseException) -> str:
    """What went wrong, without the value that was wrong.

    A ``ValidationError``: its first problem (path and kind); ``UnusableValue``: its own words (they
    name a field); a ``KeyError``: ``missing field 'currency'`` when its key can be shown, else
    ``KeyError``; another builtin error that quotes values: its kind; anything else (our own errors, AWS
    errors): its text, where the text of a value-quoting error it wraps is replaced by that error's kind,
    and e-mails and phones masked.

    The key of a ``KeyError`` is a field name the code looked up, or a payload's value the code looked
    up in a mapping table (a status). It is shown when it is a string literal on the line that raised
    (``change["AmazonOrderId"]``: a name written in the code, whatever its case); otherwise it came from
    data and is shown only in the shape of a field name or of a status code (``entity_type``,
    ``orderStatus``, ``WAIT_GROUP``: an unknown status code tells the operator what to map), at most 40
    characters and without 5 digits in a row. Title case, Pascal case and single upper-case words
    (``Wang``, ``XiaomingWang``, ``WANG``) are how names are written: not shown, at the cost of an
    unknown Amazon status (``Pending``) shown as ``KeyError`` only. A single lower-case word from data
    (``currency``, but also a name typed in lower case) cannot be told from a field name and is shown.
    """
    if isinstance(error, ValidationError):
        return validation_problems(error)[0]
    if isinstance(error, UnusableValue):
        return str(error)
    if isinstance(error, KeyError):
        key = _missing_key(error)
        return "KeyError" if key is None else f"missing field {key!r}"
    if isinstance(error, VALUE_QUOTING):
        return type(error).__name__
    text = str(error)
    for cause in _causes(error):
        quoted = str(cause)
        if quoted and isinstance(cause, VALUE_QUOTING) and quoted in text:
            summary = describe(cause)
            if isinstance(cause, ValidationError):
                summary = f"ValidationError ({cause.error_count()}): " + "; ".join(validation_problems(cause))
            text = text.replace(quoted, summary)
    return mask_text(text)
