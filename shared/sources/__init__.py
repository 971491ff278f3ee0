"""Registry of source adapters by the name used in ``/webhooks/{source}/{tenant}``."""

from __future__ import annotations

from shared.errors import UnknownSource
from shared.sources.base import Source
from shared.sources.helpdesk_and_shops import WooCommerce, Zendesk
from shared.sources.logistics import AfterShip, Kuaidi100
from shared.sources.shopify import Shopify
from shared.sources.stripe import Stripe

SOURCES: dict[str, Source] = {
    s.name: s for s in (Shopify(), Stripe(), AfterShip(), Kuaidi100(), Zendesk(), WooCommerce())
}


def get_source(name: str, enabled: frozenset[str]) -> Source:
    if name not in enabled or name not in SOURCES:
        raise UnknownSource(f"no webhook source named {name!r} is enabled here")
    return SOURCES[name]
