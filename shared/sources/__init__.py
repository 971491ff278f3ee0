"""Registry of source adapters by the name used in ``/webhooks/{source}/{tenant}``.

Each adapter's module is imported the first time its name is looked up, not when the registry is:
a function admitting or normalising one source's deliveries loads that source's adapter (its parser,
mapping files and models), not all of them, and naming the sources (``set(SOURCES)``, ``in``) loads
none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

from shared.errors import UnknownSource

if TYPE_CHECKING:
    from shared.sources.amazon import AmazonSpApi
    from shared.sources.base import Source

    AMAZON: AmazonSpApi

INHOUSE = "shared.sources.inhouse:StandardWebhooksSource"
# name -> "module:factory"; an in-house system's adapter is the Standard Webhooks one, made with its name
WEBHOOK_ADAPTERS: dict[str, str] = {
    "shopify": "shared.sources.shopify:Shopify",
    "stripe": "shared.sources.stripe:Stripe",
    "aftership": "shared.sources.aftership:AfterShip",
    "kuaidi100": "shared.sources.kuaidi100:Kuaidi100",
    "17track": "shared.sources.seventeen_track:SeventeenTrack",
    "zendesk": "shared.sources.zendesk:Zendesk",
    "woocommerce": "shared.sources.woocommerce:WooCommerce",
    "youzan": "shared.sources.youzan:Youzan",
    "douyin": "shared.sources.douyin:Douyin",
    **dict.fromkeys(("erp", "oms", "wms", "crm", "callcenter", "pos"), INHOUSE),  # inhouse.INHOUSE_SYSTEMS
}
QUEUE_ADAPTERS: dict[str, str] = {"amazon": "shared.sources.amazon:AmazonSpApi"}
# sources only ever pulled (reconcile): normalised like the others, never reachable as a webhook
PULL_ADAPTERS: dict[str, str] = {"taobao": "shared.sources.taobao:Taobao"}


class Registry(Mapping[str, "Source"]):
    """Adapters by name, each made (and its module imported) on first lookup, then kept."""

    def __init__(self, factories: Mapping[str, str]) -> None:
        self._factories = dict(factories)

    def __getitem__(self, name: str) -> Source:
        path = self._factories[name]  # KeyError: no such source here
        if name not in _made:
            module, factory = path.split(":")
            make = getattr(import_module(module), factory)
            # two threads may both make it: adapters hold no state, the first one made is kept
            _made.setdefault(name, make(name) if path == INHOUSE else make())
        return _made[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories


_made: dict[str, Source] = {}  # one adapter per name, shared by both registries

SOURCES: Mapping[str, Source] = Registry(WEBHOOK_ADAPTERS)
"""Sources that call ``/webhooks/{source}/{tenant}``."""

NORMALISERS: Mapping[str, Source] = Registry({**WEBHOOK_ADAPTERS, **QUEUE_ADAPTERS, **PULL_ADAPTERS})
"""Every source whose deliveries reach the inbox: the webhook sources, the queue-fed ones (Amazon) and
the pulled ones (Taobao/Tmall)."""


def get_source(name: str, enabled: frozenset[str]) -> Source:
    if name not in enabled or name not in SOURCES:
        raise UnknownSource(f"no webhook source named {name!r} is enabled here")
    return SOURCES[name]


def __getattr__(name: str) -> Any:
    if name == "AMAZON":  # the queue-fed source, for the function that takes its notifications
        return NORMALISERS["amazon"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
