"""Registry of source adapters by the name used in ``/webhooks/{source}/{tenant}``."""

from __future__ import annotations

from shared.errors import UnknownSource
from shared.sources.aftership import AfterShip
from shared.sources.amazon import AmazonSpApi
from shared.sources.base import Source
from shared.sources.douyin import Douyin
from shared.sources.inhouse import INHOUSE_SYSTEMS, StandardWebhooksSource
from shared.sources.kuaidi100 import Kuaidi100
from shared.sources.seventeen_track import SeventeenTrack
from shared.sources.shopify import Shopify
from shared.sources.stripe import Stripe
from shared.sources.woocommerce import WooCommerce
from shared.sources.youzan import Youzan
from shared.sources.zendesk import Zendesk

ADAPTERS: tuple[Source, ...] = (
    Shopify(),
    Stripe(),
    AfterShip(),
    Kuaidi100(),
    SeventeenTrack(),
    Zendesk(),
    WooCommerce(),
    Youzan(),
    Douyin(),
    *(StandardWebhooksSource(name) for name in INHOUSE_SYSTEMS),
)
SOURCES: dict[str, Source] = {adapter.name: adapter for adapter in ADAPTERS}
"""Sources that call ``/webhooks/{source}/{tenant}``."""

AMAZON = AmazonSpApi()
NORMALISERS: dict[str, Source] = {**SOURCES, AMAZON.name: AMAZON}
"""Every source whose deliveries reach the inbox: the webhook sources and the queue-fed ones (Amazon)."""


def get_source(name: str, enabled: frozenset[str]) -> Source:
    if name not in enabled or name not in SOURCES:
        raise UnknownSource(f"no webhook source named {name!r} is enabled here")
    return SOURCES[name]
