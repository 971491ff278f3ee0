"""The one Logger, Tracer and Metrics of every function (service name and namespace from env)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="aftersync")
tracer = Tracer(service="aftersync")
metrics = Metrics(namespace="Aftersync", service="aftersync")


def mask_email(value: str | None) -> str | None:
    """``alice@example.com`` -> ``a***@example.com`` (for logs; never log a raw address)."""
    if not value or "@" not in value:
        return None if value is None else "***"
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str | None) -> str | None:
    """Keep the last 4 digits only."""
    if not value:
        return value
    digits = [c for c in value if c.isdigit()]
    return "***" + "".join(digits[-4:]) if len(digits) > 4 else "***"
