"""Masking of personal data in what operators see (DLQ views): e-mail addresses and phone numbers."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A run of 7+ digits, possibly with spaces, dashes or a leading +, as phone numbers are written
_PHONE = re.compile(r"\+?\d[\d\s-]{5,}\d")


def mask(text: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``; ``+86 139 1234 5678`` -> ``***5678``."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group())[-4:], text)
