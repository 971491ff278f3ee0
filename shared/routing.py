"""EventBridge event patterns, evaluated in the function that sends the event.

publish sends each ``entity.changed`` straight to the queues that want it (a target's deliver queue,
the automation queue) instead of putting it on the bus for a rule per queue to route: the bus charged
$1.00 a million entries and each rule's SendMessage into its queue, for a fan-out decided by a handful
of patterns known at deploy time. The patterns stay the ones ``infra.wiring.change_routes`` writes, in
EventBridge's syntax, and this module evaluates them with EventBridge's semantics for the operators it
accepts (checked against moto's implementation of EventBridge in the tests):

- a nested object matches the event's object of that name, field by field (every field must match);
- a list is a set of alternatives: a scalar (string, number, boolean, null) equals the event's value,
  or, where the event's value is an array, one of its elements;
- ``{"prefix": "..."}``: a string that starts with it;
- ``{"anything-but": value | [values] | {"prefix": "..."}}``: a present value that is none of them;

and, as in EventBridge (its event-ruler), where the event's value is an array, the alternative matches
when one of the array's elements does;
- ``{"exists": true | false}``: the field is present, or absent.

A field the event lacks matches only ``{"exists": false}``. Any other operator is refused when the
pattern is read (``PatternError``), so a pattern this code would misjudge never gets deployed quietly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

_ABSENT = object()
_SCALARS = (str, int, float, bool, type(None))


class PatternError(ValueError):
    """A pattern this module does not evaluate (an operator or shape EventBridge may accept, we do not)."""


@dataclass(frozen=True)
class EventPattern:
    """A checked pattern; ``matches(event)`` with the event as EventBridge would see it (``source``,
    ``detail-type``, ``detail`` as a JSON object)."""

    pattern: Mapping[str, Any]

    def __post_init__(self) -> None:
        _check(self.pattern, "")

    def matches(self, event: Mapping[str, Any]) -> bool:
        return _object_matches(self.pattern, event)


def _check(pattern: Any, where: str) -> None:
    if not isinstance(pattern, Mapping) or not pattern:
        raise PatternError(f"{where or 'the pattern'}: must be a non-empty object")
    for name, value in pattern.items():
        path = f"{where}.{name}" if where else name
        if isinstance(value, Mapping):
            _check(value, path)
        elif isinstance(value, list) and value:
            for alternative in value:
                _check_alternative(alternative, path)
        else:
            raise PatternError(f"{path}: must be an object or a non-empty array")


def _check_alternative(alternative: Any, path: str) -> None:
    if isinstance(alternative, _SCALARS):
        return
    if not isinstance(alternative, Mapping) or len(alternative) != 1:
        raise PatternError(f"{path}: an alternative is a value or an object of one operator")
    (operator, argument), *_ = alternative.items()
    if operator == "prefix" and isinstance(argument, str):
        return
    if operator == "exists" and isinstance(argument, bool):
        return
    if operator == "anything-but":
        if isinstance(argument, _SCALARS):
            return
        if isinstance(argument, list) and argument and all(isinstance(a, _SCALARS) for a in argument):
            return
        if isinstance(argument, Mapping) and list(argument) == ["prefix"] and isinstance(argument["prefix"], str):
            return
    raise PatternError(f"{path}: operator {operator!r} with {type(argument).__name__} is not evaluated here")


def _object_matches(pattern: Mapping[str, Any], event: Any) -> bool:
    for name, value in pattern.items():
        field = event.get(name, _ABSENT) if isinstance(event, Mapping) else _ABSENT
        if isinstance(value, Mapping):
            if not _object_matches(value, field):
                return False
        elif not any(_alternative_matches(a, field) for a in value):
            return False
    return True


def _values(field: Any) -> Sequence[Any]:
    return field if isinstance(field, list) else [field]


def _equal(a: Any, b: Any) -> bool:
    """EventBridge compares JSON values: ``true`` is not ``1``."""
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _alternative_matches(alternative: Any, field: Any) -> bool:
    if isinstance(alternative, Mapping):
        (operator, argument), *_ = alternative.items()
        if operator == "exists":
            return (field is not _ABSENT) == argument
        if field is _ABSENT:
            return False
        if operator == "prefix":
            return any(isinstance(v, str) and v.startswith(argument) for v in _values(field))
        if isinstance(argument, Mapping):  # anything-but a prefix
            return any(not (isinstance(v, str) and v.startswith(argument["prefix"])) for v in _values(field))
        excluded = argument if isinstance(argument, list) else [argument]
        return any(not any(_equal(v, x) for x in excluded) for v in _values(field))
    if field is _ABSENT:
        return False
    return any(_equal(v, alternative) for v in _values(field))


class ChangeRoute(BaseModel):
    """Where publish sends the changes a pattern matches: ``queue`` (its URL), as a bus rule with that
    pattern and that queue as its target would have. Read from publish's environment (``CHANGE_ROUTES``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str
    pattern: dict[str, Any]

    @field_validator("pattern")
    @classmethod
    def _evaluable(cls, pattern: dict[str, Any]) -> dict[str, Any]:
        EventPattern(pattern)  # PatternError (a ValueError): the variable names it at the cold start
        return pattern

    def matches(self, event: Mapping[str, Any]) -> bool:
        return _object_matches(self.pattern, event)  # checked when read
