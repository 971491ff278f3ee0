"""Sample webhooks from ``events/``: loaded relative to this file, signed like the platform would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.sources import shopify, stripe

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"

SIGNERS: dict[str, Callable[[str, bytes, dict[str, str]], dict[str, str]]] = {
    "shopify": lambda secret, body, headers: {shopify.SIGNATURE_HEADER: shopify.sign(secret, body)},
    "stripe": lambda secret, body, headers: {stripe.SIGNATURE_HEADER: stripe.sign(secret, body, int(time.time()))},
}


@dataclass(frozen=True)
class SignedWebhook:
    name: str
    source: str
    headers: dict[str, str]
    body: bytes


def load_sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def body_bytes(sample: dict[str, Any]) -> bytes:
    """Compact JSON, as the platforms send it."""
    return json.dumps(sample["body"], separators=(",", ":"), ensure_ascii=False).encode()


def signed(name: str, secret: str, body: bytes | None = None, **header_overrides: str) -> SignedWebhook:
    sample = load_sample(name)
    source = name.split("_", 1)[0]
    raw = body_bytes(sample) if body is None else body
    headers = {**sample["headers"], **header_overrides}
    headers.update(SIGNERS[source](secret, raw, headers))
    return SignedWebhook(name=name, source=source, headers=headers, body=raw)
