"""Sample webhooks from ``events/``: loaded relative to this file, signed like the platform would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from shared import signing
from shared.sources import (
    aftership,
    douyin,
    inhouse,
    kuaidi100,
    seventeen_track,
    shopify,
    stripe,
    woocommerce,
    youzan,
    zendesk,
)

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"

SIGNERS: dict[str, Callable[[str, bytes, dict[str, str]], dict[str, str]]] = {
    "shopify": lambda secret, body, headers: {shopify.SIGNATURE_HEADER: shopify.sign(secret, body)},
    "stripe": lambda secret, body, headers: {stripe.SIGNATURE_HEADER: stripe.sign(secret, body, int(time.time()))},
    "aftership": lambda secret, body, headers: {aftership.AFTERSHIP_SIGNATURE: aftership.aftership_sign(secret, body)},
    "17track": lambda secret, body, headers: {
        seventeen_track.SEVENTEEN_SIGNATURE: seventeen_track.seventeen_sign(secret, body)
    },
    "kuaidi100": lambda secret, body, headers: {},  # signed inside the form body, see kuaidi100_form
    "zendesk": lambda secret, body, headers: _zendesk(secret, body),
    "woocommerce": lambda secret, body, headers: {woocommerce.WC_SIGNATURE: woocommerce.woocommerce_sign(secret, body)},
    # Youzan and Douyin secrets are "<app id>:<secret>" pairs
    "youzan": lambda secret, body, headers: {youzan.YOUZAN_SIGNATURE: _pair_sign("md5", secret, body)},
    "douyin": lambda secret, body, headers: {
        douyin.DOUYIN_SIGNATURE: _pair_sign(headers.get("sign-method", "md5"), secret, body)
    },
    **{system: lambda secret, body, headers: _standard(secret, body, headers) for system in inhouse.INHOUSE_SYSTEMS},
}


def _pair_sign(method: str, pair: str, body: bytes) -> str:
    app_id, secret = pair.split(":", 1)
    return douyin.DOUYIN_SIGNERS[method](app_id, secret, body)


def _standard(secret: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """Standard Webhooks: the sample names its webhook-id; the timestamp is now."""
    webhook_id, timestamp = headers.get("webhook-id", "msg_sample"), str(int(time.time()))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signing.standard_sign(secret, webhook_id, timestamp, body),
    }


def _zendesk(secret: str, body: bytes) -> dict[str, str]:
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        zendesk.ZENDESK_TIMESTAMP: timestamp,
        zendesk.ZENDESK_SIGNATURE: zendesk.zendesk_sign(secret, timestamp, body),
    }


def kuaidi100_form(salt: str, param: str, tampered_param: str | None = None) -> bytes:
    """Kuaidi100 posts ``param`` (JSON) and ``sign`` = uppercase MD5(param + salt) as form fields."""
    sign = kuaidi100.kuaidi100_sign(salt, param)
    return urlencode({"param": tampered_param or param, "sign": sign}).encode()


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
    if source == "kuaidi100" and body is None:
        body = kuaidi100_form(secret, json.dumps(sample["body"], ensure_ascii=False, separators=(",", ":")))
    raw = body_bytes(sample) if body is None else body
    headers = {**sample["headers"], **header_overrides}
    headers.update(SIGNERS[source](secret, raw, headers))
    return SignedWebhook(name=name, source=source, headers=headers, body=raw)
