"""Masking of personal data in free text and in JSON documents (issue 13, finding 7, review):
each phone number is masked wherever it stands, ids, dates and amounts stay readable, and a JSON
document's strings are free text unless they are ids."""

from __future__ import annotations

import pytest

from shared.masking import mask_text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # next to other digit groups: each phone is its own
        ("+86 139 1234 5678 2024-01-15", "***5678 2024-01-15"),
        ("contacts 13912345678 13912345679", "contacts ***5678 ***5679"),
        ("13912345678 820982911946154508", "***5678 820982911946154508"),
        ("+86 13912345678 13912345679", "***5678 ***5679"),
        ("2024-01-15 13912345678 10:30", "2024-01-15 ***5678 10:30"),
        # as people write them
        ("call 139 1234 5678 or 010-1234-5678", "call ***5678 or ***5678"),
        ("(021) 5555-1234", "***1234"),
        ("+1 (555) 123-4567", "***4567"),
        ("+86-139-1234-5678", "***5678"),
        ("+8613912345678", "***5678"),
        ("派件员 王小明 电话13912345678", "派件员 王小明 电话***5678"),
        ("tel:13912345678, Tel13912345678", "tel:***5678, Tel***5678"),
        ("ends in 13912345678.", "ends in ***5678."),
        ("１３９１２３４５６７８", "***５６７８"),
        ("1234567", "***4567"),
    ],
)
def test_each_phone_number_is_masked_wherever_it_stands(text: str, shown: str) -> None:
    assert mask_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "order 820982911946154508 at 2026-11-20T10:00:00+08:00",
        "2024-01-15 10:00:00, 15.01.2024 - 20.01.2024",
        "total 598.00 CNY, refund 12345678.90",
        "tracking SF1234567890123, tid E20261121103015012300001",
        "message 123e4567-e89b-12d3-a456-426614174000",
        "pi_3MtwBwLkdIwHu7ix28a3tqPa gid://shopify/Order/820982911946154508",
        "errcode 93000 for #1001",
    ],
)
def test_ids_dates_times_and_amounts_stay_readable(text: str) -> None:
    assert mask_text(text) == text
