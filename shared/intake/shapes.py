"""Payload shapes and schema drift: which field paths (with their JSON types) a source's payloads of one
topic carry, and what a payload brings that the known shape did not have.

A payload's shape is its set of field paths, never a value: nested objects dotted (``customer.email``),
array elements as ``[]`` (``line_items[].sku``, ``tags[]``), each path with the JSON types it held
(``object``, ``array``, ``string``, ``number``, ``boolean``, ``null``). Keys that are data rather than
names (a map keyed by ids, phone numbers, e-mails, dates, SKUs) are collapsed into one ``*`` segment
(``metadata.*``), so the shape has no personal data and a map of a thousand ids is one path:

- a key is a *name* when it is ASCII, starts with a letter or ``_``, holds only letters, digits, ``_``
  and ``-``, is at most ``MAX_KEY_CHARS`` long, has no run of 4 or more digits (an id, a phone number, a
  year) and is not a long hex string (a hash, a UUID without dashes); anything else is data;
- an object with more than ``MAX_KEYS_PER_OBJECT`` keys has all of them collapsed (a map, whatever its
  keys look like).

A hostile payload cannot blow the shape up: extraction stops descending at ``MAX_DEPTH`` levels and
after ``MAX_PAYLOAD_PATHS`` paths (the shape is then *truncated* and says nothing about what is
missing), a path longer than ``MAX_PATH_CHARS`` is cut, a known shape holds at most
``MAX_SHAPE_PATHS`` paths and one payload reports at most ``MAX_DRIFTS_PER_PAYLOAD`` drifts.

Drift, once the known shape has a baseline of ``baseline`` payloads (before that, payloads only teach
the shape and nothing is reported):

- ``new``: a path the known shape has never had;
- ``type``: a path that held only ``A`` (besides null) now holds ``B`` (``null`` itself is no change: a
  field that is sometimes null is optional, not another type);
- ``missing``: an *always present* path is absent while its parent is there (an object with keys, an
  array with elements). A path is always present when it was in every one of at least ``baseline``
  payloads since it was first seen (its count reaches ``baseline`` and it was never absent). A path
  found absent before that is *optional* from then on and never reported missing; one reported missing
  becomes optional too, so a drift is reported once.

Counts saturate at ``baseline``: once every path of a shape is at ``baseline`` (or optional), a payload
of the same shape changes nothing, so it costs no write (``fold`` says whether anything changed).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

MAX_DEPTH = 10
MAX_PAYLOAD_PATHS = 600
MAX_SHAPE_PATHS = 1000
MAX_PATH_CHARS = 160
MAX_KEY_CHARS = 64
MAX_KEYS_PER_OBJECT = 200
MAX_DRIFTS_PER_PAYLOAD = 20
DATA_KEY = "*"
ITEMS = "[]"

DriftKind = Literal["new", "missing", "type"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_DIGIT_RUN = re.compile(r"[0-9]{4}")
_HEX = re.compile(r"^[0-9a-fA-F\-]{16,}$")


@lru_cache(maxsize=4096)  # a source's payloads repeat their keys: the hot path decides each once
def is_name(key: str) -> bool:
    """Whether an object key names a field (kept in the path) rather than carrying data (collapsed)."""
    return (
        len(key) <= MAX_KEY_CHARS
        and key.isascii()
        and _NAME.match(key) is not None
        and _DIGIT_RUN.search(key) is None
        and _HEX.match(key) is None
    )


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # not from a JSON parser; named, never shown by value


_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
_TYPES[type(None)] = "null"


@dataclass
class Shape:
    """One payload's paths and their types; ``filled``: the containers that had something in them (a
    path under one of those that is absent is really absent); ``truncated``: a cap was reached."""

    paths: dict[str, set[str]] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    truncated: bool = False


def shape_of(payload: Any) -> Shape:
    """The shape of a parsed JSON payload (the root is the path ``""``, never reported)."""
    shape = Shape()
    _walk(payload, "", 0, shape)
    return shape


@lru_cache(maxsize=8192)
def _join(parent: str, segment: str) -> str:
    if segment == ITEMS:
        return f"{parent}{ITEMS}"
    return f"{parent}.{segment}" if parent else segment


def _note(shape: Shape, path: str, kind: str) -> bool:
    """Record ``path`` as holding ``kind``; False when the payload's cap is reached."""
    if len(path) > MAX_PATH_CHARS:
        path = path[:MAX_PATH_CHARS]
        shape.truncated = True
    types = shape.paths.get(path)
    if types is None:
        if len(shape.paths) >= MAX_PAYLOAD_PATHS:
            shape.truncated = True
            return False
        shape.paths[path] = types = set()
    types.add(kind)
    return True


def _walk(value: Any, path: str, depth: int, shape: Shape) -> None:
    kind = _TYPES.get(type(value)) or json_type(value)
    if path and not _note(shape, path, kind):
        return
    if kind not in ("object", "array") or not value:
        return
    if depth >= MAX_DEPTH:
        shape.truncated = True
        return
    shape.filled.add(path)
    if kind == "array":
        child = _join(path, ITEMS)
        for item in value:
            _walk(item, child, depth + 1, shape)
            if shape.truncated and len(shape.paths) >= MAX_PAYLOAD_PATHS:
                return
        return
    collapse = len(value) > MAX_KEYS_PER_OBJECT
    for key, item in value.items():
        segment = key if not collapse and isinstance(key, str) and is_name(key) else DATA_KEY
        _walk(item, _join(path, segment), depth + 1, shape)
        if shape.truncated and len(shape.paths) >= MAX_PAYLOAD_PATHS:
            return


def parent_of(path: str) -> str:
    """The container a path is in: ``a.b`` -> ``a``, ``a[]`` -> ``a``, ``a[].b`` -> ``a[]``, ``a`` -> ``""``."""
    if path.endswith(ITEMS):
        return path[: -len(ITEMS)]
    cut = path.rfind(".")
    return path[:cut] if cut >= 0 else ""


@dataclass(frozen=True)
class Drift:
    """One change a payload brought: a path, its kind, and the types before and after (never values)."""

    path: str
    kind: DriftKind
    was: tuple[str, ...] = ()
    now: tuple[str, ...] = ()


@dataclass
class Known:
    """What a (source, topic)'s accepted payloads have shown: each path's types, how many payloads it
        was in (saturating at the baseline), the paths seen absent (optional), and the payloads counted
        (saturating at the baseline too). ``rev`` is the stored item's revision token, for conditional writes
    (``None``: not stored yet)."""

    types: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    optional: set[str] = field(default_factory=set)
    payloads: int = 0
    rev: str | None = None

    def copy(self) -> Known:
        return Known(
            {p: set(t) for p, t in self.types.items()},
            dict(self.counts),
            set(self.optional),
            self.payloads,
            self.rev,
        )

    def same_as(self, other: Known) -> bool:
        return (self.types, self.counts, self.optional, self.payloads) == (
            other.types,
            other.counts,
            other.optional,
            other.payloads,
        )

    def always_present(self, path: str, baseline: int) -> bool:
        return path not in self.optional and self.counts.get(path, 0) >= baseline

    def to_document(self) -> dict[str, Any]:
        """JSON-able, sorted (stable bytes for the same shape)."""
        return {
            "types": {p: sorted(t) for p, t in sorted(self.types.items())},
            "counts": {p: c for p, c in sorted(self.counts.items())},
            "optional": sorted(self.optional),
            "payloads": self.payloads,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any], rev: str | None) -> Known:
        return cls(
            {str(p): set(t) for p, t in document.get("types", {}).items()},
            {str(p): int(c) for p, c in document.get("counts", {}).items()},
            set(document.get("optional", [])),
            int(document.get("payloads", 0)),
            rev,
        )


def fold(known: Known, shape: Shape, baseline: int) -> list[Drift]:
    """Teach ``known`` (in place) what one payload shows and return its drifts (none during the
    baseline; at most ``MAX_DRIFTS_PER_PAYLOAD``, the rest still learned). Deterministic: the same
    known shape and payload give the same drifts, whichever container folds them."""
    established = known.payloads >= baseline
    drifts: list[Drift] = []
    for path in sorted(shape.paths):
        seen = shape.paths[path]
        before = known.types.get(path)
        if before is None:
            if len(known.types) >= MAX_SHAPE_PATHS:
                continue  # the shape is full: nothing more is learned (or reported) of this topic
            known.types[path] = set(seen)
            known.counts[path] = 1
            if established:
                drifts.append(Drift(path, "new", (), tuple(sorted(seen))))
            continue
        fresh = seen - before
        if fresh:
            if established and fresh - {"null"} and before - {"null"}:
                drifts.append(Drift(path, "type", tuple(sorted(before)), tuple(sorted(before | seen))))
            before |= fresh
        if path not in known.optional and known.counts.get(path, 0) < baseline:
            known.counts[path] = known.counts.get(path, 0) + 1
    if not shape.truncated:
        for path in sorted(set(known.types) - set(shape.paths) - known.optional):
            if parent_of(path) not in shape.filled:
                continue  # its object is absent, null or empty: nothing says the field went
            if established and known.always_present(path, baseline):
                drifts.append(Drift(path, "missing", tuple(sorted(known.types[path])), ()))
            known.optional.add(path)
            known.counts.pop(path, None)
    if known.payloads < baseline:
        known.payloads += 1
    return drifts[:MAX_DRIFTS_PER_PAYLOAD]


def describe_drifts(drifts: Iterable[Drift]) -> list[str]:
    """One line per drift, as the warning and the CLI show them."""
    lines = []
    for d in drifts:
        if d.kind == "new":
            lines.append(f"new: {d.path} ({'|'.join(d.now)})")
        elif d.kind == "missing":
            lines.append(f"missing: {d.path} (was always present)")
        else:
            lines.append(f"type: {d.path} {'|'.join(d.was)} -> {'|'.join(d.now)}")
    return lines
