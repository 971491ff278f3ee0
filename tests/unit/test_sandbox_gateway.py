"""The sandbox's API gateway answers a failed invocation 502 as API Gateway does, and tells the operator
why on stderr (the reason, the method and the path; never the body or a header)."""

from __future__ import annotations

import http.client
import threading
from typing import Any

from infra.sandbox.environments import InvocationError
from infra.sandbox.http_servers import gateway


def test_a_failed_invocation_is_answered_502_and_its_reason_is_printed(capfd: Any) -> None:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        raise InvocationError("ingest timed out")

    server = gateway("127.0.0.1", 0, invoke)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request(
            "POST", "/webhooks/shopify/acme?x=1", body=b'{"phone": "13800000000"}', headers={"X-Secret": "s3cr3t"}
        )
        response = connection.getresponse()
        assert (response.status, response.read()) == (502, b'{"message": "Internal server error"}')
    finally:
        server.shutdown()
        server.server_close()
    err = capfd.readouterr().err
    assert "gateway: POST /webhooks/shopify/acme answered 502: ingest timed out\n" in err
    assert "13800000000" not in err and "s3cr3t" not in err and "x=1" not in err
