"""Readers of the lookup API: bearer keys found by name, compared in constant time with every key of the
reader's secret, for its own tenant only; every refusal the same 401 for the client."""

from __future__ import annotations

from typing import Any

import pytest

from shared.constants import reader_secret_name
from shared.errors import ConfigurationError
from shared.read import readers
from shared.read.readers import Reader, Refusal, authenticate, parse_reader_secret, secret_fetcher

AGENT_KEY = "demo-agent." + "k" * 40
OLD_KEY = "demo-agent." + "o" * 40
SECRETS: dict[str, dict[str, Any]] = {
    "demo-agent": {"tenant": "demo", "role": "agent", "keys": [AGENT_KEY]},
    "demo-rotating": {
        "tenant": "demo",
        "role": "supervisor",
        "keys": ["demo-rotating." + "n" * 40, "demo-rotating." + "o" * 40],
    },
}


def fetch(name: str) -> dict[str, Any] | None:
    return SECRETS.get(name)


def test_a_valid_key_of_the_tenants_reader_is_that_reader() -> None:
    assert authenticate(f"Bearer {AGENT_KEY}", "demo", fetch) == Reader("demo-agent", "demo", "agent")


@pytest.mark.parametrize(
    ("header", "tenant", "detail", "reader"),
    [
        (None, "demo", "missing_header", None),
        ("", "demo", "missing_header", None),
        ("   ", "demo", "missing_header", None),
        (AGENT_KEY, "demo", "malformed_header", None),  # no scheme
        (f"Basic {AGENT_KEY}", "demo", "malformed_header", None),
        ("Bearer", "demo", "malformed_header", None),
        ("Bearer demo-agent", "demo", "malformed_header", None),  # no dot, no random part
        ("Bearer demo-agent.", "demo", "malformed_header", None),
        ("Bearer Demo-Agent.xyz", "demo", "malformed_header", None),  # names are lower case
        ("Bearer ../etc.passwd", "demo", "malformed_header", None),
        (f"Bearer {AGENT_KEY} extra", "demo", "malformed_header", None),
        ("Bearer démo.agent", "demo", "malformed_header", None),
        ("Bearer demo-agent.kkk\x00", "demo", "malformed_header", None),
        ("Bearer demo-agent." + "k" * 600, "demo", "malformed_header", None),  # over 512 characters
        (b"Bearer demo-agent.kkkk", "demo", "malformed_header", None),  # not text
        (12345, "demo", "malformed_header", None),
        ("Bearer nobody." + "k" * 40, "demo", "unknown_reader", "nobody"),
        ("Bearer demo-agent." + "x" * 40, "demo", "wrong_key", "demo-agent"),
        (f"Bearer {AGENT_KEY[:-1]}", "demo", "wrong_key", "demo-agent"),  # one character short
        (f"Bearer {AGENT_KEY}k", "demo", "wrong_key", "demo-agent"),
        (f"Bearer {AGENT_KEY}", "other", "wrong_tenant", "demo-agent"),
    ],
)
def test_every_refusal_is_the_same_401_with_a_precise_internal_detail(
    header: object, tenant: str, detail: str, reader: str | None
) -> None:
    refusal = authenticate(header, tenant, fetch)
    assert refusal == Refusal(detail=detail, reader=reader)  # type: ignore[arg-type]
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.reason) == (401, "unauthorized")


def test_the_scheme_is_case_insensitive_and_surrounding_spaces_do_not_matter() -> None:
    assert authenticate(f"  bearer  {AGENT_KEY} ", "demo", fetch) == Reader("demo-agent", "demo", "agent")


def test_during_a_rotation_both_keys_are_accepted() -> None:
    for key in SECRETS["demo-rotating"]["keys"]:
        assert authenticate(f"Bearer {key}", "demo", fetch) == Reader("demo-rotating", "demo", "supervisor")
    assert authenticate("Bearer demo-rotating." + "x" * 40, "demo", fetch) == Refusal("wrong_key", "demo-rotating")


def test_the_key_is_compared_in_constant_time_with_every_key_even_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = readers.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(readers.hmac, "compare_digest", spy)
    new, old = SECRETS["demo-rotating"]["keys"]
    assert authenticate(f"Bearer {new}", "demo", fetch) == Reader("demo-rotating", "demo", "supervisor")
    assert compared == [(new.encode(), new.encode()), (new.encode(), old.encode())]


def test_the_reader_secret_is_fetched_by_the_name_in_the_key() -> None:
    asked: list[str] = []
    secrets = {reader_secret_name("aftersync/dev", "demo-agent"): SECRETS["demo-agent"]}

    def get_json(name: str) -> dict[str, Any] | None:
        asked.append(name)
        return secrets.get(name)

    assert authenticate(f"Bearer {AGENT_KEY}", "demo", secret_fetcher(get_json, "aftersync/dev")) == Reader(
        "demo-agent", "demo", "agent"
    )
    assert asked == ["aftersync/dev/readers/demo-agent"]


@pytest.mark.parametrize(
    "secret",
    [
        {"tenant": "demo", "role": "agent", "keys": []},  # no key
        {"tenant": "demo", "role": "agent", "keys": ["demo-agent.short"]},  # under 32 characters
        {"tenant": "demo", "role": "admin", "keys": [AGENT_KEY]},  # no such role
        {"tenant": "", "role": "agent", "keys": [AGENT_KEY]},
        {"role": "agent", "keys": [AGENT_KEY]},  # no tenant
        {"tenant": "demo", "role": "agent", "keys": AGENT_KEY},  # a string, not a list
        {"tenant": "demo", "role": "agent", "keys": [AGENT_KEY], "admin": True},  # an unknown field
        {"tenant": "demo", "role": "agent", "keys": ["someone-else." + "k" * 40]},  # not this reader's key
        {"tenant": 7, "role": "agent", "keys": [AGENT_KEY]},  # no coercion
    ],
)
def test_a_secret_that_is_not_a_valid_reader_secret_refuses(secret: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_reader_secret("demo-agent", secret)
    assert authenticate(f"Bearer {AGENT_KEY}", "demo", lambda _: secret) == Refusal(
        "reader_secret_invalid", "demo-agent"
    )


def test_a_secret_that_is_not_a_json_object_refuses_and_an_aws_error_propagates() -> None:
    def not_an_object(name: str) -> dict[str, Any] | None:
        raise ConfigurationError(f"secret {name!r} must hold a JSON object")

    assert authenticate(f"Bearer {AGENT_KEY}", "demo", not_an_object) == Refusal("reader_secret_invalid", "demo-agent")

    def outage(name: str) -> dict[str, Any] | None:
        raise TimeoutError("secrets manager unreachable")

    with pytest.raises(TimeoutError):  # a 5xx for the client, not a 401: the key may be fine
        authenticate(f"Bearer {AGENT_KEY}", "demo", outage)
