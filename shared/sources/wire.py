"""Bounded readers for what arrives on the wire: timestamps in signature headers and JSON bodies.

Python's own parsers have edges a sender can reach: ``int()`` refuses more than 4,300 digits
(ValueError), ``str.isdigit()`` accepts ``²`` and other non-ASCII digits that ``int()`` then refuses,
``json.loads`` recurses once per nesting level (RecursionError at ~1,000) and accepts ``NaN`` and
``Infinity``. Every reader here turns those into the typed rejection the caller names, so no input
can raise past the API's error mapping.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from shared.errors import MalformedPayload, SignatureInvalid

MAX_TIMESTAMP_DIGITS = 12  # epoch seconds until the year 33658
MAX_DEPTH = 64  # platforms nest a handful of levels; anything this deep is not one of their payloads
MAX_INTEGER_DIGITS = 40  # ids are ≤ 20 digits; DynamoDB numbers hold 38
_SURROGATE = re.compile("[\ud800-\udfff]")


def epoch_seconds(value: str | None, header: str) -> int:
    """Epoch seconds from a signature header's timestamp: 1 to 12 ASCII digits, or ``SignatureInvalid``."""
    text = (value or "").strip()
    if not (0 < len(text) <= MAX_TIMESTAMP_DIGITS and text.isascii() and text.isdigit()):
        raise SignatureInvalid(f"{header} must be epoch seconds: 1 to {MAX_TIMESTAMP_DIGITS} ASCII digits")
    return int(text)


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise _Refused(f"an integer has more than {MAX_INTEGER_DIGITS} digits")
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number is too large to represent")
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


class _Refused(ValueError):
    """Raised inside the parser's hooks; reported as MalformedPayload."""


def loads(text: str | bytes, what: str = "body") -> Any:
    """Strict JSON (RFC 8259, UTF-8) nested at most ``MAX_DEPTH`` levels; ``MalformedPayload`` saying
    what is wrong otherwise. ``what`` names the part in the message (``body``, ``param``, ``msg``)."""
    try:
        document = text.decode("utf-8") if isinstance(text, bytes) else text
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        value = json.loads(document, parse_int=_integer, parse_float=_number, parse_constant=_constant)
    except _Refused as exc:
        raise MalformedPayload(f"{what} is not usable JSON: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise MalformedPayload(f"{what} is nested deeper than {MAX_DEPTH} levels") from exc
    _check(value, what)
    return value


def _check(value: Any, what: str) -> None:
    """Nesting depth and strings, walked without recursion (a recursive walk would itself hit the limit).

    JSON's grammar lets ``\\ud800`` name half of a UTF-16 pair: the string it makes is no Unicode text,
    so it could not be stored, queued or archived."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise MalformedPayload(f"{what} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is no text")
        elif isinstance(node, dict | list):
            if level >= MAX_DEPTH:
                raise MalformedPayload(f"{what} is nested deeper than {MAX_DEPTH} levels")
            children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            pending.extend((child, level + 1) for child in children)
