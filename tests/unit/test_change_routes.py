"""publish routes ``entity.changed`` itself: the patterns it evaluates (``shared.routing``) must choose
exactly the queues EventBridge's rules would have. moto's implementation of EventBridge's matching is
the independent oracle, over every environment's routes and changes of every kind."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from moto.events.models import EventPattern as MotoPattern

from infra.config import load_environment
from infra.wiring import DOMAINS, ResourceRefs, change_routes, function_environment, routes
from shared.constants import DETAIL_ENTITY_CHANGED, EVENT_SOURCE, Env
from shared.errors import ConfigurationError
from shared.routing import ChangeRoute, EventPattern, PatternError
from shared.settings import PublishSettings

ENVIRONMENTS = ("dev", "staging", "prod")
TYPES = ("order", "customer", "after_sales_case", "shipment", "ticket", "stock")
SOURCES = ("shopify", "crm", "erp", "zendesk", "wms", "customer-sms")
IDS = ("shopify:1", "crm:9", "B2B-7", "zendesk:ticket:3")


def events() -> list[dict[str, Any]]:
    return [
        {
            "source": EVENT_SOURCE,
            "detail-type": DETAIL_ENTITY_CHANGED,
            "detail": {
                "tenant": "demo",
                "entity_type": t,
                "entity_id": i,
                "version": 3,
                "origin_source": s,
                "changed": {"status": "open"},
            },
        }
        for t, s, i in itertools.product(TYPES, SOURCES, IDS)
    ]


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_change_route_chooses_what_eventbridge_would(name: str) -> None:
    cfg = load_environment(name)
    checked = 0
    for route in change_routes(cfg):
        ours, theirs = ChangeRoute(queue="q", pattern=route.pattern), MotoPattern.load(json.dumps(route.pattern))
        for event in events():
            assert ours.matches(event) == theirs.matches_event(event), (route.purpose, event["detail"])
            checked += ours.matches(event)
    assert checked > 0  # some changes go somewhere


def test_the_dev_routes_send_an_order_to_its_targets_but_not_back_to_where_it_came_from() -> None:
    cfg = load_environment("dev")
    order_from = {
        s: {r.purpose for r in change_routes(cfg) if ChangeRoute(queue="q", pattern=r.pattern).matches(e)}
        for e in events()
        if e["detail"]["entity_type"] == "order" and e["detail"]["entity_id"] == "shopify:1"
        for s in [e["detail"]["origin_source"]]
    }
    assert {"deliver-crm", "deliver-erp"} <= order_from["shopify"]
    assert "deliver-crm" not in order_from["crm"] and "deliver-erp" in order_from["crm"]  # no echo
    assert all("automation" not in purposes for purposes in order_from.values())  # orders are not automated


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": ["x"]}, {"a": "x"}, True),
        ({"a": ["x"]}, {"a": ["y", "x"]}, True),  # an array: one element matching
        ({"a": ["x"]}, {}, False),
        ({"a": [1]}, {"a": 1.0}, True),  # numbers compare as numbers
        ({"a": [None]}, {"a": None}, True),
        ({"a": [{"prefix": "sh"}]}, {"a": "shopify"}, True),
        ({"a": [{"prefix": "sh"}]}, {"a": 5}, False),
        ({"a": [{"anything-but": ["x", "y"]}]}, {"a": "z"}, True),
        ({"a": [{"anything-but": ["x", "y"]}]}, {"a": "x"}, False),
        ({"a": [{"anything-but": "x"}]}, {}, False),  # absent: only exists:false matches
        ({"a": [{"anything-but": {"prefix": "x"}}]}, {"a": "xy"}, False),
        ({"a": [{"anything-but": {"prefix": "x"}}]}, {"a": "yx"}, True),
        ({"a": [{"exists": False}]}, {}, True),
        ({"a": [{"exists": True}]}, {"a": None}, True),
        ({"d": {"a": ["x"], "b": [{"prefix": "1"}]}}, {"d": {"a": "x", "b": "12"}}, True),
        ({"d": {"a": ["x"], "b": [{"prefix": "1"}]}}, {"d": {"a": "x", "b": "21"}}, False),
        ({"d": {"a": ["x"]}}, {"d": "x"}, False),
    ],
)
def test_each_operator_agrees_with_eventbridge(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert EventPattern(pattern).matches(event) is expected
    assert MotoPattern.load(json.dumps(pattern)).matches_event(event) is expected


def test_a_boolean_is_not_a_number() -> None:
    """JSON's ``true`` is not ``1`` to EventBridge; moto (Python: ``True == 1``) is no oracle here."""
    assert not EventPattern({"a": [True]}).matches({"a": 1})
    assert not EventPattern({"a": [1]}).matches({"a": True})
    assert EventPattern({"a": [True]}).matches({"a": True})


@pytest.mark.parametrize(
    "pattern",
    [
        {},
        {"a": "x"},
        {"a": []},
        {"a": [{"numeric": [">", 1]}]},
        {"a": [{"suffix": "x"}]},
        {"a": [{"prefix": "x", "exists": True}]},
        {"a": [{"anything-but": {"suffix": "x"}}]},
        {"a": [["x"]]},
    ],
)
def test_a_pattern_it_would_misjudge_is_refused_when_read(pattern: dict[str, Any]) -> None:
    with pytest.raises(PatternError):
        EventPattern(pattern)


def test_publish_reads_its_routes_from_the_environment_and_names_a_bad_one() -> None:
    cfg = load_environment("dev")
    refs = ResourceRefs(
        **{name: f"x-{name}" for name in ResourceRefs.__dataclass_fields__}
        | {"domain_queue_urls": {domain: f"https://q/{domain}" for domain in DOMAINS}}
        | {"change_queue_urls": {r.queue_purpose: f"https://q/{r.queue_purpose}" for r in change_routes(cfg)}}
    )
    environ = function_environment("publish", cfg, refs)
    settings = PublishSettings.from_env(environ)
    assert [(r.queue, r.pattern) for r in settings.change_routes] == [
        (f"https://q/{r.queue_purpose}", r.pattern) for r in change_routes(cfg)
    ]
    assert Env.EVENT_BUS not in environ  # publish does not touch the bus
    wrong = json.dumps([{"queue": "https://q/x", "pattern": {"detail": {"entity_id": [{"suffix": "1"}]}}}])
    with pytest.raises(ConfigurationError, match="CHANGE_ROUTES"):
        PublishSettings.from_env({**environ, Env.CHANGE_ROUTES: wrong})


def test_the_bus_keeps_only_the_observation_rules() -> None:
    for name in ENVIRONMENTS:
        patterns = [r.pattern for r in routes(load_environment(name))]
        assert all(p["detail-type"][0].endswith(".observed") for p in patterns)
        assert not {r.purpose for r in routes(load_environment(name))} & {
            r.purpose for r in change_routes(load_environment(name))
        }


def test_every_function_s_variables_fit_lambda_s_4_kb_and_too_many_routes_are_refused_at_synth() -> None:
    from infra.constructs.compute import check_environment_sizes
    from infra.wiring import LAMBDA_ENVIRONMENT_BYTES, deployed_environment_bytes, deployed_functions

    for name in ENVIRONMENTS:
        cfg = load_environment(name)
        check_environment_sizes(cfg)  # every shipped environment fits
        assert deployed_environment_bytes("publish", cfg) < LAMBDA_ENVIRONMENT_BYTES // 2, name
    dev = load_environment("dev")
    crm = next(t for t in dev.targets if t.name == "crm")
    many = dev.model_copy(
        update={
            "targets": (*dev.targets, *(crm.model_copy(update={"name": f"shop-system-{n:02d}"}) for n in range(14)))
        }
    )
    assert "publish" in deployed_functions(many)
    with pytest.raises(
        ConfigurationError, match=r"the publish function's variables would take \d+ bytes, over Lambda's 4096"
    ):
        check_environment_sizes(many)
