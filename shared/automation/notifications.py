"""Customer notifications for after-sales steps: SMS (SNS) and e-mail (SES) from templates.

Templates are data (``shared/automation/notification_templates.json``), per tenant (falling back to
``default``) and language (zh-CN and en at least), one per case status worth telling a customer.
The contact is the one on the case's order; phone numbers go out in E.164. Contacts are personal
data: they are never logged, and what is recorded of a sent notification is its channel, template
and message id.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from shared.identity.resolver import normalise_email, normalise_phone

_TEMPLATES = Path(__file__).with_name("notification_templates.json")


@cache
def templates() -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    data: dict[str, dict[str, dict[str, dict[str, str]]]] = json.loads(_TEMPLATES.read_text(encoding="utf-8"))
    for tenant, languages in data.items():
        for language, by_status in languages.items():
            for status, template in by_status.items():
                for part in ("subject", "text"):
                    names = {f for _, f, _, _ in string.Formatter().parse(template[part]) if f}
                    unknown = names - PLACEHOLDERS
                    if unknown:
                        raise ValueError(f"template {tenant}/{language}/{status}.{part}: unknown {sorted(unknown)}")
    return data


PLACEHOLDERS = frozenset({"case_id", "order_number", "amount", "currency"})


@dataclass(frozen=True)
class Notification:
    channel: str  # "sms" | "email"
    to: str
    subject: str
    text: str
    template: str  # tenant/language/status, for the record


def compose(
    tenant: str, language: str, status: str, values: dict[str, Any], phone: str | None, email: str | None, region: str
) -> list[Notification]:
    """The notifications for a case that reached ``status`` (none when no template or no contact)."""
    owner = tenant if tenant in templates() else "default"
    if language not in templates()[owner]:  # a language the tenant has no templates in: English
        owner, language = ("default", language) if language in templates()["default"] else ("default", "en")
    template = templates()[owner][language].get(status)
    if template is None:
        return []
    filled = {k: values.get(k) if values.get(k) is not None else "-" for k in PLACEHOLDERS}
    subject, text = template["subject"].format(**filled), template["text"].format(**filled)
    name = f"{owner}/{language}/{status}"
    found = []
    e164 = normalise_phone(phone, region)
    if e164:
        found.append(Notification("sms", e164, subject, text, name))
    address = normalise_email(email)
    if address:
        found.append(Notification("email", address, subject, text, name))
    return found
