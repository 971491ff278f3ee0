"""The test harness, like the sandbox, lets the functions reach exactly its fake servers on loopback."""

from __future__ import annotations

import os

from tests.integration.conftest import Stack


def test_the_functions_may_reach_exactly_the_fake_servers_ports(stack: Stack) -> None:
    ports = sorted({s.server.server_port for s in (stack.target, stack.robot, stack.shop)})
    assert os.environ["ALLOWED_LOOPBACK_PORTS"] == ",".join(map(str, ports))
    assert "ALLOW_HTTP_TARGETS" not in os.environ
