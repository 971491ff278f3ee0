"""Hostile tests of the lookup's masking and cursor (pure): each failed on main 80d71ee."""

from __future__ import annotations

import base64
import json

import pytest

from shared.read.lookup import InvalidLookup, decode_cursor
from shared.read.masking import mask_for

PHONE, EMAIL = "13800138000", "li.lei@example.com"


@pytest.mark.parametrize(
    "document",
    [
        {"phone": {"number": PHONE}},  # a phone field holding an object
        {"customer_phone": [{"value": PHONE, "type": "mobile"}]},
        {"emails": [{"value": EMAIL, "primary": True}]},  # an e-mail field holding objects
        {"changes": [{"field": "phone", "after": {"number": PHONE}}]},  # a change's value, an object
    ],
)
def test_an_agent_never_sees_a_phone_or_e_mail_held_in_an_object_under_its_field(document: object) -> None:
    # the object's own keys ("number", "value") are no personal field: the outer field decides
    masked = json.dumps(mask_for("agent", document))
    assert PHONE not in masked and EMAIL not in masked


def test_a_cursor_of_deeply_nested_json_is_an_invalid_lookup_not_a_recursion_error() -> None:
    cursor = base64.urlsafe_b64encode(b"[" * 2000).decode()
    with pytest.raises(InvalidLookup, match="cursor is not one this lookup gave out"):
        decode_cursor(cursor, "demo", "cus_1")
