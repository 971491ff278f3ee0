"""The test harness, like the sandbox, lets the functions reach exactly its fake servers on loopback."""

from __future__ import annotations

import os

from tests.integration.conftest import Stack


def test_the_functions_may_reach_exactly_the_fake_servers_ports(stack: Stack) -> None:
    # the shops' and platforms' APIs: Shopify, Taobao, Woo, and Stripe's, Zendesk's and AfterShip's lists
    fakes = (stack.target, stack.robot, stack.shop, stack.top, stack.woo, *stack.lists.values())
    ports = sorted({s.server.server_port for s in fakes})
    assert os.environ["ALLOWED_LOOPBACK_PORTS"] == ",".join(map(str, ports))
    assert "ALLOW_HTTP_TARGETS" not in os.environ
